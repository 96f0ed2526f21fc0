"""The U-Net's training step with the layer norm's closed-form gradient against autodiff of
its formula, timed side by side.

    python -m benchmarks.norm_forms [--cases 2d128,3d32] [--batch 8] [--repeats 7]

`fieldnet.nn.layers.normalize_channels` gives the per-pixel layer norm a hand-written VJP.
This builds the benchmarks' U-Net (width 16, depth 3, periodic) twice, once as shipped and
once with the norm's plain formula (what `jax.grad` differentiates otherwise), compiles a
training step of each and times them alternating, one step per repeat, as the median of
`--repeats`. Prints one JSON line per case: milliseconds per step of each form and their
ratio.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time

import jax
from flax import nnx

from benchmarks.train_step import CASES, step_runner
from fieldnet import cli, models
from fieldnet.nn import layers


def plain_normalize(x, eps: float):
    """The layer norm's formula, differentiated by autodiff."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


@contextlib.contextmanager
def plain_norm():
    """Layer norms built and traced inside use `plain_normalize`."""
    shipped = layers.normalize_channels
    layers.normalize_channels = plain_normalize
    try:
        yield
    finally:
        layers.normalize_channels = shipped


def time_case(case: str, batch: int, repeats: int) -> dict:
    ndim, size = CASES[case]
    runners = {}
    for form, context in (("closed_form", contextlib.nullcontext), ("autodiff", plain_norm)):
        with context():
            model = models.UNet(1, 1, ndim, width=16, depth=3, rngs=nnx.Rngs(0))
            runners[form] = step_runner(model, batch, (size,) * ndim)
            runners[form](1)   # compile while the form is in place
    times = {form: [] for form in runners}
    for _ in range(repeats):
        for form, run in runners.items():
            start = time.perf_counter()
            run(1)
            times[form].append(time.perf_counter() - start)
    ms = {form: 1e3 * statistics.median(t) for form, t in times.items()}
    return {"case": case, "batch": batch, "repeats": repeats,
            **{f"{form}_ms": round(v, 1) for form, v in ms.items()},
            "speedup": round(ms["autodiff"] / ms["closed_form"], 3),
            "machine": platform.machine(), "devices": str(jax.devices()[0].device_kind)}


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m benchmarks.norm_forms",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="2d128,3d32")
    parser.add_argument("--batch", type=cli.positive_int, default=8)
    parser.add_argument("--repeats", type=cli.positive_int, default=7)
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"unknown case(s) {unknown}; choose from {sorted(CASES)}")
    for case in cases:
        print(json.dumps(time_case(case, args.batch, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
