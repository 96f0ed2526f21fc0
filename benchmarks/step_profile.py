"""Where the time of one U-Net training step goes: forward, backward and update, and within
them the convolutions (forward, input gradient, kernel gradient) and the periodic-padding
copies.

    python -m benchmarks.step_profile [--case 2d128] [--batch 8] [--repeats 5] [--trace]

Builds the benchmarks' U-Net (width 16, depth 3, periodic), records the shapes of every
convolution (`fieldnet.nn.ops.conv_nd`) and padding (`fieldnet.nn.padding.pad_spatial`)
of one forward pass, then times, each compiled on its own (median of `--repeats` after a
warm-up): the whole training step, the forward loss, forward + backward, the optimizer
update, and per recorded call its forward convolution, its two VJPs and the padding.
Prints one JSON object: the milliseconds of each part and the convolutions' GFLOP/s. The
parts are timed outside the step, so they do not add up to it exactly (XLA fuses
element-wise work into its neighbours inside the step); they show the proportions.

With `--trace`, it instead runs `--repeats` whole training steps under XLA's profiler
(`jax.profiler.trace`) and prints the milliseconds per step of each kind of operation the
compiled step runs (XLA's operation names without their numeric suffix: `ynn_fusion`,
`transpose_copy_fusion`, ...). They do not add up to the step: the event of one of XLA's
own convolutions covers only its dispatch (a 3D kernel gradient that takes tens of
milliseconds shows under 1 ms), while its work runs on the thread pool, where other
operations may run beside it. `unattributed_ms`, the step's time less the operations',
is mostly those convolutions.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import platform
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.train_step import CASES, step_runner
from fieldnet import cli, models, train
from fieldnet.nn import layers, ops


def _median_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


@contextlib.contextmanager
def _recording_calls():
    """Records (x shape, kernel shape, stride, dilation) of every conv_nd call and
    (x shape, pads) of every periodic pad_spatial call made by the layers."""
    convs, pads = [], []
    conv_nd, pad_spatial = layers.conv_nd, layers.pad_spatial

    def recorded_conv(x, kernel, stride=1, dilation=1):
        convs.append((x.shape, kernel.shape, stride, dilation))
        return conv_nd(x, kernel, stride, dilation)

    def recorded_pad(x, widths, padding):
        if padding == "periodic" and widths != (0, 0):
            pads.append((x.shape, widths))
        return pad_spatial(x, widths, padding)

    layers.conv_nd, layers.pad_spatial = recorded_conv, recorded_pad
    try:
        yield convs, pads
    finally:
        layers.conv_nd, layers.pad_spatial = conv_nd, pad_spatial


def _conv_flops(x_shape, k_shape, stride: int) -> float:
    out = [(s - k) // stride + 1 for s, k in zip(x_shape[1:-1], k_shape[:-2], strict=True)]
    return 2.0 * x_shape[0] * np.prod(out) * np.prod(k_shape)


def profile(name: str, batch: int, repeats: int) -> dict:
    ndim, size = CASES[name]
    shape = (batch,) + (size,) * ndim + (1,)
    model = models.UNet(1, 1, ndim, width=16, depth=3, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    batch_arrays = {"x": x, "y": jnp.asarray(rng.normal(size=shape).astype(np.float32))}
    with _recording_calls() as (convs, pads):
        model(x[:1])  # shapes at batch 1; the batch axis is set below
    convs = [((batch,) + xs[1:], ks, s, d) for xs, ks, s, d in convs]
    pads = [((batch,) + xs[1:], w) for xs, w in pads]

    graphdef, _, state = train.split_model(model)
    state = jax.tree.map(jnp.copy, state)  # the step below donates the model's own buffers
    loss = train.get_loss("mse")
    run = step_runner(model, batch, shape[1:-1], seed=1)
    run(1)
    step_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(1)
        step_times.append(time.perf_counter() - start)

    def forward(params, rest, b):
        return loss(nnx.merge(graphdef, params, rest), b)

    fwd = jax.jit(forward)
    fwd_bwd = jax.jit(jax.value_and_grad(forward))
    tx = train.optimizer(train.default_config())

    def update(params, grads, opt_state):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    parts = {"step_ms": 1e3 * statistics.median(step_times),
             "forward_ms": _median_ms(fwd, state["params"], state["rest"], batch_arrays,
                                      repeats=repeats),
             "forward_backward_ms": _median_ms(fwd_bwd, state["params"], state["rest"],
                                               batch_arrays, repeats=repeats),
             "update_ms": _median_ms(jax.jit(update), state["params"], state["params"],
                                     tx.init(state["params"]), repeats=repeats)}

    totals = {"conv_forward_ms": 0.0, "conv_input_grad_ms": 0.0, "conv_kernel_grad_ms": 0.0,
              "pad_ms": 0.0}
    flops = 0.0
    for xs, ks, stride, dilation in convs:
        a = jnp.asarray(rng.normal(size=xs).astype(np.float32))
        k = jnp.asarray(rng.normal(size=ks).astype(np.float32))

        def conv(a, k, stride=stride, dilation=dilation):
            return ops.conv_nd(a, k, stride, dilation)

        g = jax.block_until_ready(jax.jit(conv)(a, k))
        input_grad = jax.jit(lambda a, k, g, conv=conv: jax.vjp(lambda a: conv(a, k), a)[1](g))
        kernel_grad = jax.jit(lambda a, k, g, conv=conv: jax.vjp(lambda k: conv(a, k), k)[1](g))
        totals["conv_forward_ms"] += _median_ms(jax.jit(conv), a, k, repeats=repeats)
        totals["conv_input_grad_ms"] += _median_ms(input_grad, a, k, g, repeats=repeats)
        totals["conv_kernel_grad_ms"] += _median_ms(kernel_grad, a, k, g, repeats=repeats)
        flops += _conv_flops(xs, ks, stride)
    for xs, widths in pads:
        a = jnp.asarray(rng.normal(size=xs).astype(np.float32))
        pad = jax.jit(lambda a, widths=widths: layers.pad_spatial(a, widths, "periodic"))
        totals["pad_ms"] += _median_ms(pad, a, repeats=repeats)
    rates = {f"{k[:-3]}_gflop_per_s": round(flops / (v * 1e-3) / 1e9, 1)
             for k, v in totals.items() if k.startswith("conv")}
    return {"case": name, "batch": batch, "convs": len(convs), "pads": len(pads),
            "conv_gflop_forward": round(flops / 1e9, 2),
            **{k: round(v, 1) for k, v in {**parts, **totals}.items()}, **rates,
            "device": jax.devices()[0].device_kind, "jax": jax.__version__,
            "machine": platform.machine()}


def instruction_names(hlo_text: str) -> set[str]:
    """The instruction names of a compiled module's HLO text (`compiled.as_text()`)."""
    return set(re.findall(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", hlo_text, re.MULTILINE))


def operation_times(run, repeats: int, operations: set[str]) -> dict[str, float]:
    """{operation kind: milliseconds per call of `run()`}, from XLA's trace of `repeats`
    calls (after one untraced call), largest first. Only trace events named after one of
    `operations` (`instruction_names` of the compiled module) count: the runtime's own
    events and Python's frames do not. A kind is an instruction name without its numeric
    suffix."""
    run()
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(repeats):
                run()
        (path,) = Path(trace_dir).rglob("perfetto_trace.json.gz")
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    micros: Counter = Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in operations:
            micros[re.sub(r"\.\d+$", "", e["name"])] += e.get("dur", 0)
    return {kind: round(us / 1e3 / repeats, 2) for kind, us in micros.most_common()}


def trace_profile(name: str, batch: int, repeats: int) -> dict:
    """The training step's operation times by kind (`operation_times`) and its wall time."""
    ndim, size = CASES[name]
    model = models.UNet(1, 1, ndim, width=16, depth=3, rngs=nnx.Rngs(0))
    run = step_runner(model, batch, (size,) * ndim, seed=1)
    times = operation_times(lambda: run(1), repeats,
                            instruction_names(run.compiled.as_text()))
    step_ms = _median_ms(lambda: run(1), repeats=repeats)  # untraced, for comparison
    operations_ms = sum(times.values())
    return {"case": name, "batch": batch, "step_ms": round(step_ms, 1),
            "operations_ms": round(operations_ms, 1),
            "unattributed_ms": round(step_ms - operations_ms, 1), "by_kind_ms": times,
            "device": jax.devices()[0].device_kind, "jax": jax.__version__,
            "machine": platform.machine()}


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="2d128", choices=sorted(CASES))
    parser.add_argument("--batch", type=cli.positive_int, default=8)
    parser.add_argument("--repeats", type=cli.positive_int, default=5)
    parser.add_argument("--trace", action="store_true",
                        help="operation times by kind from XLA's trace of whole steps")
    args = parser.parse_args(argv)
    measure = trace_profile if args.trace else profile
    print(json.dumps(measure(args.case, args.batch, args.repeats)))


if __name__ == "__main__":
    main()
