"""Throughput of one U-Net training step (forward + backward + AdamW update).

    python -m benchmarks.train_step [--cases 2d128,3d32] [--batch 8] [--repeats 5] [--dtype float32]

Prints samples/s per case (median over repeats, after a compile/warm-up step) for the
default U-Net (width 16, depth 3, periodic). This is the consumption rate the data loader
has to keep up with (compare `python -m benchmarks.loader_throughput`).
"""

import json
import platform
import statistics
import time

import jax
import numpy as np
from flax import nnx

from fieldnet import cli, models, train

CASES = {"2d64": (2, 64), "2d128": (2, 128), "2d256": (2, 256), "3d32": (3, 32), "3d64": (3, 64)}


def step_runner(model, batch: int, shape, seed: int = 0):
    """`run(steps)`: that many fieldnet training steps of `model` (AdamW on the default
    schedule, MSE loss, data-parallel mesh) on one fixed random batch of `shape` fields,
    waiting for the last. The step is compiled here, ahead of time, and `run.compiled` is
    that executable: its `cost_analysis()` is XLA's count of the FLOPs and bytes of one
    step (`benchmarks.roofline`), without a second compilation."""
    setup = train.setup_training(model, train.default_config(), train.get_loss("mse"))
    rng = np.random.default_rng(seed)
    full = (batch, *shape, 1)
    b = setup.global_batch({"x": rng.normal(size=full).astype(np.float32),
                            "y": rng.normal(size=full).astype(np.float32)})
    window = setup.empty_window()
    box = {"state": setup.state}
    compiled = setup.steps.train.lower(setup.state, b, window, 0).compile()

    def run(steps: int) -> None:
        for step in range(steps):
            box["state"], _, loss, _ = compiled(box["state"], b, window, step)
        loss.block_until_ready()

    run.compiled = compiled
    return run


def time_case(ndim: int, size: int, batch: int, repeats: int, steps: int, dtype: str) -> dict:
    model = models.UNet(1, 1, ndim, width=16, depth=3, dtype=dtype, rngs=nnx.Rngs(0))
    run = step_runner(model, batch, (size,) * ndim)
    run(1)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        rates.append(steps * batch / (time.perf_counter() - start))
    return {"case": f"{ndim}D {size}^{ndim}", "batch": batch, "dtype": dtype,
            "samples_per_s": statistics.median(rates), "device": str(jax.devices()[0]),
            "n_devices": jax.device_count(), "machine": platform.processor() or platform.machine()}


def main():
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="2d128,3d32")
    parser.add_argument("--batch", type=cli.positive_int, default=8)
    parser.add_argument("--repeats", type=cli.positive_int, default=5)
    parser.add_argument("--steps", type=cli.positive_int, default=3, help="steps per timed repeat")
    parser.add_argument("--dtype", default="float32", choices=sorted(models.DTYPES))
    args = parser.parse_args()
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {sorted(CASES)}")
        print(json.dumps(time_case(*CASES[name], args.batch, args.repeats, args.steps,
                                   args.dtype)), flush=True)


if __name__ == "__main__":
    main()
