"""Loader throughput: training samples per second out of `FieldDataset.batches`.

    python -m benchmarks.loader_throughput                      # the cases below, all loaders
    python -m benchmarks.loader_throughput --cases 3d,3d-raw --loader thread,grain --workers 0,1,2
    python -m benchmarks.loader_throughput --path FILE.h5 --input density --target temperature

Without --path it writes files of random log-normal fields to a temporary folder (--cases):

- 2d: 64 maps of 256², gzip, one chunk per map; 64² crops, batch --batch (16);
- 3d: 8 boxes of 128³, gzip in 64³ chunks (the format's default layout); 64³ crops, batch 16;
- 3d-raw: the same boxes uncompressed in --chunk³ chunks (`h5format` chunks= and
  compress=False), the layout for fast random 3D crops.

Every combination of --loader and --workers (the thread loader at 0 workers only) is measured
in one process, in turn, --repeats times; each row is the median. A measurement opens a fresh
stream, discards its first workers + 2 batches (worker start-up, caches) and times the next
--steps; the consumer does no work, so this is the loader's ceiling. Each row also gives the
CPU time per sample (user + system, from /proc on Linux), of this process (which receives
every batch) and of its workers: on a machine without idle cores, where more workers cannot
run faster, it says how many cores a rate needs (samples/s × CPU s/sample), and the main
process's share bounds what any number of workers can deliver. 3D 64³ rows also give
the ratio to 357 samples/s, the H100 training step of the default 3D U-Net (64³, bfloat16,
batch 16; BENCHMARKS.md, "GPU: training step"). HDF5's chunk cache is sized to one crop
(`fieldnet.data.source`), so these small files do not fit in it and the numbers hold for
large files too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fieldnet import cli, data
from fieldnet.data import h5format
from fieldnet.data.loader import LOADERS

# samples/s of the default 3D U-Net's training step at 64³, bfloat16, batch 16, on an H100
GPU_STEP_3D64 = 357.0
CASES = {"2d": "64 maps of 256², gzip, one chunk per map",
         "3d": "8 boxes of 128³, gzip 64³ chunks",
         "3d-raw": "8 boxes of 128³, uncompressed {chunk}³ chunks"}


def make_file(path: Path, ndim: int, size: int, samples: int, per_sim: int,
              **layout) -> Path:
    rng = np.random.default_rng(0)
    rho = np.exp(rng.normal(size=(samples, *[size] * ndim))).astype(np.float32)
    return h5format.write_arrays(path, {"density": rho, "temperature": 1e4 * rho**0.6},
                                 ndim=ndim, box_size=25.0, source="loader benchmark",
                                 sim_index=np.arange(samples) // per_sim,
                                 units={"density": "1", "temperature": "K"}, **layout)


def case_file(name: str, folder: Path, chunk: int) -> Path:
    if name == "2d":
        return make_file(folder / "bench2d.h5", ndim=2, size=256, samples=64, per_sim=4)
    if name == "3d":
        return make_file(folder / "bench3d.h5", ndim=3, size=128, samples=8, per_sim=1)
    return make_file(folder / "bench3d_raw.h5", ndim=3, size=128, samples=8, per_sim=1,
                     chunks=(chunk,) * 3, compress=False)


def cpu_seconds() -> np.ndarray:
    """CPU time so far (user + system) of this process and of its live children (the
    workers), [main, workers]; NaN where /proc does not exist (not Linux)."""
    total = np.zeros(2)
    for i, pid in [(0, "self"), *((1, c.pid) for c in multiprocessing.active_children())]:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return np.full(2, np.nan)
        fields = stat.rsplit(")", 1)[1].split()   # after the command name, which may hold spaces
        total[i] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(ds: data.FieldDataset, loader: str, workers: int, batch: int, steps: int,
            seed: int) -> tuple[float, np.ndarray]:
    """Samples/s and CPU seconds per sample [main, workers] of one fresh stream, after its
    first workers + 2 batches."""
    ds.config.loader, ds.config.workers = loader, workers
    warm = workers + 2
    with ds.batches("train", batch, seed=seed, num_steps=warm + steps) as batches:
        for _ in range(warm):
            next(batches)
        start, cpu = time.perf_counter(), cpu_seconds()
        for _ in range(steps):
            next(batches)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return steps * batch / elapsed, cpu / (steps * batch)


def run_case(label: str, config, batch: int, combos: list[tuple[str, int]], steps: int,
             repeats: int) -> None:
    start = time.perf_counter()
    ds = data.FieldDataset(config)
    setup = time.perf_counter() - start
    results: dict[tuple[str, int], list[tuple[float, np.ndarray]]] = {c: [] for c in combos}
    try:
        for repeat in range(repeats):
            for loader, workers in combos:   # in turn, so that all see the same load
                results[loader, workers].append(measure(ds, loader, workers, batch, steps,
                                                        seed=repeat))
    finally:
        ds.close()
    gpu = ds.ndim == 3 and config.crop_size == 64
    for (loader, workers), measured in results.items():
        values = [rate for rate, _ in measured]
        rate = statistics.median(values)
        main, worker = np.median([c for _, c in measured], axis=0) * 1e3
        line = (f"loader_throughput {label} crop={config.crop_size} batch={batch} "
                f"prefetch={config.prefetch} loader={loader} workers={workers}: "
                f"{rate:.0f} samples/s (median of {repeats}, {min(values):.0f}-"
                f"{max(values):.0f}; {batch / rate * 1e3:.1f} ms/batch; CPU ms/sample "
                f"{main + worker:.2f} = main {main:.2f} + workers {worker:.2f})")
        if gpu:
            line += f" = {rate / GPU_STEP_3D64:.2f}x the GPU step ({GPU_STEP_3D64:.0f} samples/s)"
        print(line, flush=True)
    print(f"loader_throughput {label}: setup incl. normalizer fit {setup:.2f} s", flush=True)


def _names(parser, flag: str, text: str, known) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        parser.error(f"{flag} takes comma-separated names from {sorted(known)}, got {text!r}")
    return names


def _counts(parser, flag: str, text: str) -> list[int]:
    try:
        counts = [int(n) for n in text.split(",")]
    except ValueError:
        counts = [-1]
    if min(counts) < 0:
        parser.error(f"{flag} takes comma-separated integers ≥ 0, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m benchmarks.loader_throughput", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", help="measure this file instead of generated ones")
    p.add_argument("--input", default="density")
    p.add_argument("--target", default="temperature")
    p.add_argument("--cases", default="2d,3d,3d-raw", help="generated files, comma-separated")
    p.add_argument("--crop", type=cli.positive_int, default=64, help="crop of 2d and --path")
    p.add_argument("--batch", type=cli.positive_int, default=16)
    p.add_argument("--chunk", type=cli.positive_int, default=32,
                   help="chunk edge of the 3d-raw file (≤ 128)")
    p.add_argument("--loader", default="thread,grain", help="loaders, comma-separated")
    p.add_argument("--workers", default="0,1,2", help="grain worker counts, comma-separated")
    p.add_argument("--prefetch", type=cli.non_negative_int, default=2)
    p.add_argument("--steps", type=cli.positive_int, default=20, help="timed batches")
    p.add_argument("--repeats", type=cli.positive_int, default=3)
    args = p.parse_args(argv)
    cases = _names(p, "--cases", args.cases, CASES)
    loaders = _names(p, "--loader", args.loader, LOADERS)
    workers = _counts(p, "--workers", args.workers)
    combos = [(loader, w) for loader in loaders for w in workers
              if loader == "grain" or w == 0]
    if not combos:
        p.error("--loader thread runs in this process: its --workers must include 0")
    if args.chunk > 128:
        p.error(f"--chunk {args.chunk} is larger than the 128³ boxes")

    def config(path, crop):
        c = data.default_config()
        c.update(path=str(path), input_field=args.input, target_field=args.target,
                 crop_size=crop, prefetch=args.prefetch)
        return c

    if args.path:
        run_case(Path(args.path).name, config(args.path, args.crop), args.batch, combos,
                 args.steps, args.repeats)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in cases:
            path = case_file(name, Path(tmp), args.chunk)
            label = f"{name} ({CASES[name].format(chunk=args.chunk)})"
            run_case(label, config(path, args.crop if name == "2d" else 64), args.batch,
                     combos, args.steps, args.repeats)
    return 0


if __name__ == "__main__":
    cli.run(main)
