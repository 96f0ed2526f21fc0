"""Loader throughput: training samples per second out of `FieldDataset.batches`.

    python -m benchmarks.loader_throughput                 # 2D 64^2 crops and a 3D case
    python -m benchmarks.loader_throughput --path FILE.h5 --input density --target temperature

Without --path it writes small files of random log-normal fields to a temporary folder:
2D, 64 maps of 256^2 (64^2 crops, batch 16); 3D, 8 boxes of 128^3 (64^3 crops, batch 4).
Crops are random, periodic and augmented, as in training; the consumer does no work, so
this is the loader's ceiling. HDF5's chunk cache is sized to one crop (see data_source),
so these small files do not fit in it and the numbers hold for large files too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fieldnet import cli, data
from fieldnet.data import h5format


def make_file(path: Path, ndim: int, size: int, samples: int, per_sim: int) -> Path:
    rng = np.random.default_rng(0)
    rho = np.exp(rng.normal(size=(samples, *[size] * ndim))).astype(np.float32)
    return h5format.write_arrays(path, {"density": rho, "temperature": 1e4 * rho**0.6},
                                 ndim=ndim, box_size=25.0, source="loader benchmark",
                                 sim_index=np.arange(samples) // per_sim,
                                 units={"density": "1", "temperature": "K"})


def measure(config, batch_size: int, steps: int, label: str) -> float:
    start = time.perf_counter()
    ds = data.FieldDataset(config)
    setup = time.perf_counter() - start
    with ds.batches("train", batch_size, seed=0, num_steps=steps + 2) as batches:
        next(batches), next(batches)   # thread and caches warm
        start = time.perf_counter()
        for _ in range(steps):
            next(batches)
        elapsed = time.perf_counter() - start
    ds.close()
    rate = steps * batch_size / elapsed
    print(f"loader_throughput {label} crop={config.crop_size} batch={batch_size} "
          f"prefetch={config.prefetch}: {rate:.0f} samples/s "
          f"({elapsed / steps * 1e3:.1f} ms/batch; setup incl. normalizer fit {setup:.2f} s)")
    return rate


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m benchmarks.loader_throughput",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", help="measure this file instead of generated ones")
    p.add_argument("--input", default="density")
    p.add_argument("--target", default="temperature")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--prefetch", type=int, default=2)
    args = p.parse_args(argv)

    def config(path, crop):
        c = data.default_config()
        c.update(path=str(path), input_field=args.input, target_field=args.target,
                 crop_size=crop, prefetch=args.prefetch)
        return c

    if args.path:
        measure(config(args.path, args.crop), args.batch, args.steps, Path(args.path).name)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        file2d = make_file(Path(tmp) / "bench2d.h5", ndim=2, size=256, samples=64, per_sim=4)
        measure(config(file2d, args.crop), args.batch, args.steps, "2d")
        file3d = make_file(Path(tmp) / "bench3d.h5", ndim=3, size=128, samples=8, per_sim=1)
        measure(config(file3d, 64), 4, max(args.steps // 2, 5), "3d")
    return 0


if __name__ == "__main__":
    cli.run(main)
