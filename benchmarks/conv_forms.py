"""Equal formulations of the U-Net's convolutions and their two gradients, timed side by side.

    python -m benchmarks.conv_forms [--case 2d128] [--batch 8] [--repeats 5] [--only fwd,ig,kg]
        [--forms xla,cpu]

Records the (input, kernel, stride) of every convolution of one forward pass of the
benchmarks' U-Net (width 16, depth 3, periodic), and for each distinct shape times every
formulation of the forward convolution (`fwd`), its input gradient (`ig`) and its kernel
gradient (`kg`) that computes the same sum, each compiled on its own, the formulations
alternating within each repeat (median of `--repeats`). Prints one JSON line per shape:
milliseconds per formulation. `fieldnet.nn.ops` picks its CPU forms from these timings.

Forms (channels-last x, kernel (*spatial, in, out), VALID):
- `xla`: `lax.conv_general_dilated` and its autodiff VJPs.
- `cpu`: what `fieldnet.nn.ops.conv_nd` does on the CPU now (`conv2d_cpu`, `conv3d_cpu`).
- `transposed`: the forward written as the input gradient of a convolution with the kernel
  flipped and its channels swapped (`ops.transposed_conv`); for the input gradient, the
  plain convolution of the padded cotangent with the flipped, swapped kernel.
- `full`: padded by k - 1 on every axis and the centre kept (what `jax.vjp` of the full
  convolution gives).
- `oi`: the same convolution with the kernel passed as (*spatial, out, in) (layout only).
- `nchw`: channels-first input and (out, in, *spatial) kernel, transposed around.
- `transposed_vjp` (input gradient): `jax.vjp` of the transposed form.
- `depth_sliced` (3D input gradient): `jax.vjp` of `ops.depth_sliced_conv`.
- `taps`: one matrix product per kernel tap on shifted slices, summed or stacked.
- `im2col`: the shifted slices concatenated along channels, one matrix product.
"""

from __future__ import annotations

import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.step_profile import _recording_calls
from benchmarks.train_step import CASES
from fieldnet import cli, models
from fieldnet.nn import ops

_LETTERS = "dhw"


def _shifted(x, taps, out):
    """Slices x[:, t0:t0+out0, ...] for every kernel tap t, in kernel order."""
    return [x[(slice(None),) + tuple(slice(t, t + o) for t, o in zip(tap, out, strict=True))]
            for tap in np.ndindex(*taps)]


def _cpu(ndim: int):
    return ops.conv2d_cpu if ndim == 2 else ops.conv3d_cpu


def fwd_forms(ndim: int) -> dict:
    s = _LETTERS[-ndim:]

    def taps(x, w):
        out = [n - k + 1 for n, k in zip(x.shape[1:-1], w.shape[:-2], strict=True)]
        ws = w.reshape((-1,) + w.shape[-2:])
        return sum(jnp.einsum(f"n{s}c,co->n{s}o", xs, ws[i])
                   for i, xs in enumerate(_shifted(x, w.shape[:-2], out)))

    def im2col(x, w):
        out = [n - k + 1 for n, k in zip(x.shape[1:-1], w.shape[:-2], strict=True)]
        cols = jnp.concatenate(_shifted(x, w.shape[:-2], out), axis=-1)
        return cols @ w.reshape((-1, w.shape[-1]))

    def oi(x, w):
        dn = (f"N{s.upper()}C", f"{s.upper()}OI", f"N{s.upper()}C")
        return jax.lax.conv_general_dilated(x, jnp.swapaxes(w, -1, -2), (1,) * ndim, "VALID",
                                            dimension_numbers=dn)

    def nchw(x, w):
        xc = jnp.moveaxis(x, -1, 1)
        wc = jnp.moveaxis(w, (-1, -2), (0, 1))
        y = jax.lax.conv_general_dilated(xc, wc, (1,) * ndim, "VALID")
        return jnp.moveaxis(y, 1, -1)

    def full(x, w):  # padded by k - 1 on every axis, the centre kept: jax.vjp's form
        k = w.shape[:-2]
        y = jax.lax.conv_general_dilated(x, w, (1,) * ndim, [(t - 1, t - 1) for t in k],
                                         dimension_numbers=ops.dimension_numbers(ndim))
        return y[(slice(None),) + tuple(slice(t - 1, n - (t - 1))
                                        for t, n in zip(k, y.shape[1:-1], strict=True))]

    return {"xla": ops.xla_conv, "cpu": _cpu(ndim), "transposed": ops.transposed_conv,
            "full": full, "oi": oi, "nchw": nchw, "taps": taps, "im2col": im2col}


def ig_forms(ndim: int) -> dict:
    fwd = fwd_forms(ndim)

    def pulled(conv):
        def ig(x, w, g):
            return jax.vjp(lambda a: conv(a, w), x)[1](g)[0]
        return ig

    def padded(conv):
        def ig(x, w, g):
            k = w.shape[:-2]
            gp = jnp.pad(g, [(0, 0)] + [(t - 1, t - 1) for t in k] + [(0, 0)])
            flipped = jnp.swapaxes(jnp.flip(w, tuple(range(ndim))), -1, -2)
            return conv(gp, flipped)
        return ig

    forms = {"xla": pulled(ops.xla_conv), "cpu": pulled(_cpu(ndim)),
             "transposed": padded(ops.xla_conv),
             "padded_transposed": padded(ops.transposed_conv),
             "transposed_vjp": pulled(ops.transposed_conv), "nchw": pulled(fwd["nchw"])}
    if ndim == 3:
        forms["depth_sliced"] = pulled(ops.depth_sliced_conv)
    return forms


def kg_forms(ndim: int) -> dict:
    s = _LETTERS[-ndim:]
    fwd = fwd_forms(ndim)

    def pulled(conv):
        def kg(x, w, g):
            return jax.vjp(lambda k: conv(x, k), w)[1](g)[0]
        return kg

    def taps(x, w, g):
        parts = [jnp.einsum(f"n{s}c,n{s}o->co", xs, g)
                 for xs in _shifted(x, w.shape[:-2], g.shape[1:-1])]
        return jnp.stack(parts).reshape(w.shape)

    def im2col(x, w, g):
        cols = jnp.concatenate(_shifted(x, w.shape[:-2], g.shape[1:-1]), axis=-1)
        return jnp.einsum(f"n{s}k,n{s}o->ko", cols, g).reshape(w.shape)

    return {"xla": pulled(ops.xla_conv), "cpu": pulled(_cpu(ndim)),
            "transposed": pulled(ops.transposed_conv), "nchw": pulled(fwd["nchw"]),
            "taps": taps, "im2col": im2col}


def _without_cotangent(conv):
    return lambda x, w, g: conv(x, w)


def _time_forms(forms: dict, args, repeats: int) -> dict:
    fns = {name: jax.jit(f) for name, f in forms.items()}
    for f in fns.values():
        jax.block_until_ready(f(*args))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - start)
    return {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()}


def conv_shapes(name: str, batch: int) -> list[tuple]:
    """Distinct stride-1 (input shape, kernel shape) of the U-Net's convolutions, with counts."""
    ndim, size = CASES[name]
    model = models.UNet(1, 1, ndim, width=16, depth=3, rngs=nnx.Rngs(0))
    with _recording_calls() as (convs, _):
        model(jnp.zeros((1,) + (size,) * ndim + (1,)))
    counts: dict = {}
    for xs, ks, stride, dilation in convs:
        if stride == 1 and dilation == 1:
            key = ((batch,) + xs[1:], ks)
            counts[key] = counts.get(key, 0) + 1
    return [(xs, ks, n) for (xs, ks), n in counts.items()]


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="2d128", choices=sorted(CASES))
    parser.add_argument("--batch", type=cli.positive_int, default=8)
    parser.add_argument("--repeats", type=cli.positive_int, default=5)
    parser.add_argument("--only", default="fwd,ig,kg")
    parser.add_argument("--forms", default="", help="e.g. xla,cpu: only these forms")
    args = parser.parse_args(argv)
    ndim = CASES[args.case][0]
    rng = np.random.default_rng(0)
    kinds = {"fwd": fwd_forms, "ig": ig_forms, "kg": kg_forms}
    for xs, ks, count in conv_shapes(args.case, args.batch):
        x = jnp.asarray(rng.normal(size=xs).astype(np.float32))
        w = jnp.asarray(rng.normal(size=ks).astype(np.float32))
        g = jax.block_until_ready(ops.xla_conv(x, w))
        row = {"x": xs, "kernel": ks, "count": count,
               "gflop": round(2 * g.size * int(np.prod(ks[:-1])) / 1e9, 3)}
        for kind in args.only.split(","):
            forms = kinds[kind](ndim)
            if args.forms:
                forms = {k: f for k, f in forms.items() if k in args.forms.split(",")}
            if kind == "fwd":
                forms = {k: _without_cotangent(f) for k, f in forms.items()}
            row[kind] = _time_forms(forms, (x, w, g), args.repeats)
        row["machine"] = platform.machine()
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
