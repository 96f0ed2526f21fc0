"""Tiled full-field inference: pixels/s and peak memory, and the tiled-vs-whole check.

    python -m benchmarks.inference [--cases 2d1024,3d256] [--tile 128] [--batch 4]

Each case runs in its own process (peak RSS, and on a GPU peak device memory, are per
process). The model is the default
U-Net (width 16, depth 3); throughput does not depend on its weights. With --check, a
512² field (8x the default 64² training crops) is also predicted whole, and the largest
relative difference is printed.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from fieldnet import cli

CASES = {"2d512": (2, 512), "2d1024": (2, 1024), "3d64": (3, 64), "3d128": (3, 128),
         "3d256": (3, 256)}


def inference_model(ndim: int, dtype: str = "float32", depth: int = 3):
    """The benchmark's U-Net: the default job's (width 16, `channel_mult` (1, 2, 4, 4)),
    computing in `dtype`; `depth` below 3 keeps the first multipliers (a small test model)."""
    from flax import nnx

    from fieldnet import models

    return models.UNet(1, 1, ndim, width=16, depth=depth,
                       channel_mult=(1, 2, 4, 4)[:depth + 1], dtype=dtype, rngs=nnx.Rngs(0))


def run_case(ndim: int, size: int, tile: int, batch: int, check: bool, repeats: int = 1,
             dtype: str = "float32", depth: int = 3) -> dict:
    import jax
    import jax.numpy as jnp

    from fieldnet.eval.inference import predict_field

    model = inference_model(ndim, dtype, depth)
    field = np.random.default_rng(0).normal(size=(*([size] * ndim), 1)).astype(np.float32)
    tile = min(tile, size)
    predict_field(model, field[(slice(0, tile),) * ndim], tile, batch)  # compile
    seconds = []
    for _ in range(repeats):  # the fastest pass: the first also warms caches and allocators
        start = time.perf_counter()
        tiled = predict_field(model, field, tile, batch)
        seconds.append(time.perf_counter() - start)
    seconds = min(seconds)
    result = {"case": f"{ndim}D {size}^{ndim}", "tile": tile, "batch": batch, "repeats": repeats,
              "dtype": dtype,
              "matmul_precision": str(jax.config.jax_default_matmul_precision),
              "pixels_per_s": size**ndim / seconds, "seconds": seconds,
              "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
              "device": jax.devices()[0].device_kind}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:  # accelerators: the device memory high-water mark
        result["peak_device_gib"] = stats["peak_bytes_in_use"] / 2**30
    if check:
        whole = np.asarray(model(jnp.asarray(field)[None]))[0]
        result["max_rel_diff_vs_whole"] = float(np.abs(tiled - whole).max()
                                                / np.abs(whole).max())
    return result


def main():
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="2d1024,3d256")
    parser.add_argument("--tile", type=cli.positive_int, default=128)
    parser.add_argument("--batch", type=cli.positive_int, default=4)
    parser.add_argument("--repeats", type=cli.positive_int, default=1,
                        help="timed passes; the fastest")
    parser.add_argument("--check", action="store_true", help="compare with a whole-field run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(*CASES[args.one], args.tile, args.batch, args.check,
                                  args.repeats)))
        return
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {sorted(CASES)}")
        cmd = [sys.executable, "-m", "benchmarks.inference", "--one", name, "--tile",
               str(args.tile), "--batch", str(args.batch), "--repeats", str(args.repeats)]
        cmd += ["--check"] if args.check else []
        print(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip(),
              flush=True)


if __name__ == "__main__":
    main()
