"""Wall time and peak memory of `data_tools.snapshot` against the number of particles.

    python -m benchmarks.snapshot_memory                     # 64^3 and 256^3 particles, --grid 128
    python -m benchmarks.snapshot_memory --particles 32,64 --grid 64 --files 2

For each particle count n (per side) it writes a synthetic multi-file snapshot of n^3
dark-matter and n^3 gas particles (uniform random positions, Gaussian velocities, gas with
internal energies and electron abundances; `tests.snapshot_files`, in --files files under a
temporary folder, one file at a time), imports it at --grid (3D) in a subprocess, and
reports the subprocess's wall time and peak resident memory (`resource.getrusage`,
RUSAGE_CHILDREN, of a fresh parent per run, so each number is that run's own). Reading is
chunked (--chunk particles at a time, within one file), so the peak should be set by the
grid and the chunk, not by the particle count. A file smaller than a chunk reads in one
smaller chunk, so compare counts whose chunks are full: 128^3 in 2 files fills them as
256^3 in 8 files does,

    python -m benchmarks.snapshot_memory --particles 128 --files 2
    python -m benchmarks.snapshot_memory --particles 256 --chunk 262144   # a quarter chunk
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fieldnet import cli
from tests.snapshot_files import write_file

BOX = 100.0  # Mpc/h
# Runs the command given as arguments; prints its wall time and peak RSS as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"returncode": code, "wall_s": wall, "peak_rss_mib": peak / 1024}))
"""


def write_synthetic(folder: Path, n: int, files: int, seed: int = 0) -> Path:
    """n^3 dark-matter and n^3 gas particles in `files` files; returns the folder."""
    folder.mkdir(parents=True)
    total = n**3
    rng = np.random.default_rng(seed)
    counts = np.diff(np.linspace(0, total, files + 1).astype(np.int64))
    for k, m in enumerate(counts):
        dm = {"positions": rng.uniform(0, BOX, (m, 3)), "velocities": rng.normal(0, 300, (m, 3)),
              "masses": 5e8}
        gas = {"positions": rng.uniform(0, BOX, (m, 3)), "velocities": rng.normal(0, 300, (m, 3)),
               "masses": 1e8, "internal_energy": 10 ** rng.uniform(1, 5, m),
               "electron_abundance": rng.uniform(1.0, 1.16, m)}
        write_file(folder / f"snap_000.{k}.hdf5", totals={0: total, 1: total}, dm=dm, gas=gas,
                   file_index=k, n_files=files, box=BOX, redshift=0.0)
        del dm, gas
    return folder


def measure(snapshot: Path, out: Path, grid: int, chunk: int) -> dict:
    command = [sys.executable, "-m", "data_tools.snapshot", str(snapshot), "--out", str(out),
               "--grid", str(grid), "--chunk", str(chunk), "--quiet", "--overwrite"]
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True,
                            text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["returncode"]:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m benchmarks.snapshot_memory",
                           description=__doc__.splitlines()[0])
    p.add_argument("--particles", default="64,256",
                   help="particles per side of each snapshot, comma-separated")
    p.add_argument("--grid", type=cli.positive_int, default=128, help="cells per side")
    p.add_argument("--files", type=cli.positive_int, default=8, help="files per snapshot")
    p.add_argument("--chunk", type=cli.positive_int, default=2**20,
                   help="particles read at a time")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    sizes = [cli.positive_int(s) for s in args.particles.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="snapshot-memory-") as tmp:
        for n in sizes:
            start = time.perf_counter()
            folder = write_synthetic(Path(tmp) / f"snapdir_{n}", n, args.files)
            written = time.perf_counter() - start
            run = measure(folder, Path(tmp) / f"out_{n}.h5", args.grid, args.chunk)
            bytes_on_disk = sum(f.stat().st_size for f in folder.iterdir())
            rows.append({"particles_per_type": n**3, "grid": args.grid, "chunk": args.chunk,
                         "files": args.files, "snapshot_gib": bytes_on_disk / 2**30,
                         "write_s": written, "import_wall_s": run["wall_s"],
                         "peak_rss_mib": run["peak_rss_mib"]})
            for f in folder.iterdir():
                f.unlink()
            print(f"{n}^3 DM + {n}^3 gas ({bytes_on_disk / 2**30:.2f} GiB in {args.files} "
                  f"files) -> {args.grid}^3: {run['wall_s']:.1f} s, peak RSS "
                  f"{run['peak_rss_mib']:.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    cli.run(main)
