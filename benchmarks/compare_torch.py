"""Side-by-side training-step throughput: fieldnet (JAX) against the same U-Net in PyTorch.

    pip install -e ".[bench]"          # on a CPU-only machine: pip install torch==2.13.0
    python -m benchmarks.compare_torch [--cases 2d64,2d128,2d256,3d32,3d64] [--batch 8]
        [--repeats 7] [--steps 3] [--dtype float32|bfloat16] [--torch-compile] [--bare]
        [--out results.jsonl]

One process builds both models with the same parameters (checked: same parameter count, same
forward output), then alternates timed repeats of the JAX and the PyTorch training steps
(forward + backward + clipped AdamW update, MSE loss, same batch), so both see the same
machine load. On the CPU, 2D and 3D cases also time the JAX step with XLA's own convolutions
and gradients (`FIELDNET_CPU_CONV_VJP=0`, see `fieldnet.nn.ops`) in the same alternation,
and report the CPU forms' speedup (`cpu_vjp_speedup`). With `--torch-compile`, the same
PyTorch step with the model under `torch.compile` (a copy with its own optimizer) is one
more contender in the alternation, reported beside eager PyTorch (`torch_compile_*` keys).
With `--bare`, one more JAX contender is the same U-Net's convolutions with the least work
around them (`bare_unet`: no norms, ReLU, zero padding): its step bounds from below what any
change to the norms, activations and periodic padding can make of the JAX step, so
`bare_over_best_torch` says how much of the gap is the convolutions' own (`jax_bare_*` keys).
Per case it prints a JSON line: samples/s of each (median over repeats), `jax_over_torch`
(the throughput ratio; > 1 means JAX is faster), FLOPs per step counted from the
architecture (forward + backward convolutions and matrix products), the achieved FLOP/s and,
on a GPU with a known peak (`benchmarks.roofline`), MFU.

The PyTorch side runs channels_last (model and data; `torch_unet.channels_last`) on every
device and, on the GPU for bfloat16, autocast (AMP); the JAX side runs `dtype="bfloat16"`
compute with float32 parameters. `--batch-sweep 8,16,32` instead times JAX alone at several
batches (the scaling data for `benchmarks.scaling_plot`); a batch that does not fit in memory
ends the sweep with an `out_of_memory` row. PyTorch is imported only to run
a comparison, so `--help` and the batch sweep work without it.

Both sides use every core the process may run on (`cores` in the output): XLA:CPU's flags
(`--xla_cpu_multi_thread_eigen=false`, `intra_op_parallelism_threads=1`) do not keep it to
one thread, so a one-core comparison pins the process (`taskset -c 0`) with
`OMP_NUM_THREADS=1`, rather than limiting PyTorch's threads alone.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Iterable, Iterator

import jax
import numpy as np
from flax import nnx

from benchmarks import roofline
from benchmarks.train_step import step_runner
from fieldnet import cli, models, train
from fieldnet.eval.inference import jitted_forward
from fieldnet.nn import ops

CASES = {"2d32": (2, 32), "2d64": (2, 64), "2d128": (2, 128), "2d256": (2, 256),
         "2d512": (2, 512), "3d16": (3, 16), "3d32": (3, 32), "3d64": (3, 64),
         "3d128": (3, 128)}


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _torch():
    """PyTorch, or a one-line exit saying how to install it."""
    try:
        import torch
    except ImportError:
        raise SystemExit("python -m benchmarks.compare_torch: PyTorch is not installed; "
                         "pip install torch==2.13.0 (the `bench` extra)") from None
    return torch


@dataclasses.dataclass(frozen=True)
class TorchSetup:
    """How the PyTorch training step runs: the usual speed settings, each on or off.

    Attributes:
        channels_last: Model and data in the channels-last memory format (2D and 3D), where
            cuDNN and oneDNN pick their NHWC / NDHWC convolutions (`torch_unet.channels_last`).
        amp_bf16: The forward pass under `torch.autocast` to bfloat16 (AMP), the loss in
            float32.
        cudnn_benchmark: `torch.backends.cudnn.benchmark` during this step's calls: cuDNN
            times its algorithms for each new shape and keeps the fastest.
        compile_mode: The model under `torch.compile(mode=compile_mode)` ("default",
            "max-autotune", ...); None runs it eagerly.
    """

    channels_last: bool = True
    amp_bf16: bool = False
    cudnn_benchmark: bool = False
    compile_mode: str | None = None


def torch_step(model, batch: int, shape, setup: TorchSetup, device: str):
    """`run(steps)`: that many PyTorch training steps of `model`, moved to `device` (forward,
    MSE loss, backward, global-norm clipping and AdamW with fieldnet's defaults, its own
    optimizer) on one fixed random batch of `shape` fields, run as `setup` says, waiting
    for the last. A compiled model compiles in its first calls."""
    torch = _torch()
    from benchmarks import torch_unet

    cfg = train.default_config()
    layout = torch_unet.channels_last if setup.channels_last else (lambda value: value)
    model = layout(model.to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    step_model = (model if setup.compile_mode is None
                  else torch.compile(model, mode=setup.compile_mode))
    # these modes replay CUDA graphs, whose outputs the next replay overwrites
    graphs = setup.compile_mode in ("reduce-overhead", "max-autotune")
    g = torch.Generator().manual_seed(1)
    x = layout(torch.randn((batch, 1, *shape), generator=g).to(device))
    y = layout(torch.randn((batch, 1, *shape), generator=g).to(device))
    amp = (torch.autocast(device, dtype=torch.bfloat16) if setup.amp_bf16
           else contextlib.nullcontext())

    def one() -> torch.Tensor:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = torch.nn.functional.mse_loss(step_model(x).float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return loss

    def run(steps: int) -> None:
        torch.backends.cudnn.benchmark = setup.cudnn_benchmark
        for _ in range(steps):
            loss = one()
        loss.item()  # waits for the device

    return run


def step_flops(torch_model, batch: int, shape) -> float:
    """Forward + backward FLOPs of one training step (convolutions and matrix products),
    counted by PyTorch's FLOP counter at batch 1 on a copy of the model on the meta device:
    from the shapes alone, nothing is computed. The count is linear in the batch."""
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(torch_model).to("meta")
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros((1, 1, *shape), device="meta")).sum().backward()
    return float(counter.get_total_flops()) * batch


def twin_models(ndim: int, width: int, depth: int, dtype: str):
    """(fieldnet U-Net computing in `dtype`, the PyTorch U-Net with its parameters, their
    relative output difference): checked to be the same function, equal parameter counts
    and outputs within 1e-4 in float32."""
    from benchmarks import torch_unet

    jm = models.UNet(1, 1, ndim, width=width, depth=depth, dtype=dtype, rngs=nnx.Rngs(0))
    tm = torch_unet.load_from_jax(torch_unet.UNet(1, 1, ndim, width=width, depth=depth), jm)
    n_jax, n_torch = models.layers.param_count(jm), torch_unet.param_count(tm)
    if n_jax != n_torch:
        raise RuntimeError(f"parameter counts differ: JAX {n_jax}, PyTorch {n_torch}")
    # the check runs in float32: the model itself, or its float32 twin (same seed)
    reference = jm if models.DTYPES[dtype] is None else models.UNet(
        1, 1, ndim, width=width, depth=depth, rngs=nnx.Rngs(0))
    diff = check_same_function(reference, tm, (16,) * ndim)
    if diff > 1e-4:
        raise RuntimeError(f"the two models disagree: relative difference {diff:.2e}")
    return jm, tm, diff


def bare_unet(ndim: int, width: int, depth: int, dtype: str):
    """The benchmarks' U-Net with the same convolutions (shapes, FLOPs) and the least work
    between them that the model offers: no norms, ReLU, zero padding."""
    return models.UNet(1, 1, ndim, width=width, depth=depth, dtype=dtype, norm="none",
                       act="relu", padding="zero", rngs=nnx.Rngs(0))


def check_same_function(jax_model, torch_model, shape) -> float:
    """Relative difference of the two models' outputs on one random field."""
    torch = _torch()
    x = np.random.default_rng(0).normal(size=(1, *shape, 1)).astype(np.float32)
    with jax.default_matmul_precision("highest"):  # no TF32 on a GPU for this check
        yj = np.asarray(jitted_forward(jax_model)(x))  # one compilation, not one per op
    with torch.no_grad():
        yt = torch_model(torch.from_numpy(np.moveaxis(x, -1, 1))).numpy()
    return float(np.abs(yj - np.moveaxis(yt, 1, -1)).max() / np.abs(yj).max())


@contextlib.contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _timed(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def alternate(runs: dict, repeats: int, steps: int) -> dict[str, float]:
    """Seconds per step of each contender (`run(steps)` callables, warmed up): the median
    over `repeats` rounds, each round timing `steps` steps of every contender in turn, so
    that all see the same machine load."""
    times = {contender: [] for contender in runs}
    for _ in range(repeats):
        for contender, run in runs.items():
            times[contender].append(_timed(run, steps))
    return {contender: statistics.median(t) / steps for contender, t in times.items()}


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is an allocation failure: XLA's RESOURCE_EXHAUSTED (device memory),
    PyTorch's out-of-memory error, or the host's MemoryError."""
    text = str(err)
    return (isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text
            or "out of memory" in text.lower())


def compare(name: str, batch: int, repeats: int, steps: int, dtype: str,
            compile_: bool, width: int = 16, depth: int = 3, bare: bool = False) -> dict:
    torch = _torch()

    ndim, size = CASES[name]
    shape = (size,) * ndim
    jm, tm, diff = twin_models(ndim, width, depth, dtype)
    flops = step_flops(tm, batch, shape)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = {"jax": step_runner(jm, batch, shape, seed=1)}
    runs["jax"](1)  # warm-up
    if ndim in (2, 3) and ops.cpu_vjp_enabled():
        # the same step with XLA's convolutions (the CPU forms are chosen while tracing)
        with _environment(FIELDNET_CPU_CONV_VJP="0"):
            runs["jax_xla_vjp"] = step_runner(models.UNet(1, 1, ndim, width=width, depth=depth,
                                                        dtype=dtype, rngs=nnx.Rngs(0)),
                                            batch, shape, seed=1)
            runs["jax_xla_vjp"](1)
    if bare:
        runs["jax_bare"] = step_runner(bare_unet(ndim, width, depth, dtype), batch, shape,
                                       seed=1)
        runs["jax_bare"](1)
    amp = device == "cuda" and dtype == "bfloat16"
    if compile_:  # a copy: its own parameters and optimizer state
        runs["torch_compile"] = torch_step(copy.deepcopy(tm), batch, shape,
                                           TorchSetup(amp_bf16=amp, compile_mode="default"),
                                           device)
        runs["torch_compile"](2)  # compiles the forward and the backward
    runs["torch"] = torch_step(tm, batch, shape, TorchSetup(amp_bf16=amp), device)
    runs["torch"](2)  # warm-up
    rates = {contender: batch / seconds
             for contender, seconds in alternate(runs, repeats, steps).items()}
    jax_rate, torch_rate = rates["jax"], rates["torch"]
    jax_flops = flops * jax_rate / batch
    result = {"case": name, "batch": batch, "dtype": dtype, "width": width,
              "params": models.layers.param_count(jm),
              "jax_samples_per_s": round(jax_rate, 3), "torch_samples_per_s": round(torch_rate, 3),
              "jax_over_torch": round(jax_rate / torch_rate, 3),
              "gflop_per_step": round(flops / 1e9, 2),
              "jax_tflop_per_s": round(jax_flops / 1e12, 4),
              "torch_tflop_per_s": round(flops * torch_rate / batch / 1e12, 4),
              "max_output_diff": diff, "torch_compile": compile_,
              **({"jax_xla_vjp_samples_per_s": round(rates["jax_xla_vjp"], 3),
                  "cpu_vjp_speedup": round(jax_rate / rates["jax_xla_vjp"], 3)}
                 if "jax_xla_vjp" in rates else {}),
              **({"torch_compile_samples_per_s": round(rates["torch_compile"], 3),
                  "jax_over_torch_compile": round(jax_rate / rates["torch_compile"], 3),
                  "torch_compile_tflop_per_s": round(
                      flops * rates["torch_compile"] / batch / 1e12, 4)}
                 if "torch_compile" in rates else {}),
              **({"jax_bare_samples_per_s": round(rates["jax_bare"], 3),
                  "bare_over_best_torch": round(rates["jax_bare"] / max(
                      rates.get("torch_compile", 0.0), torch_rate), 3)}
                 if "jax_bare" in rates else {}),
              "jax_device": jax.devices()[0].device_kind, "torch_device": device,
              "jax": jax.__version__, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cores": usable_cores(),
              "machine": platform.machine()}
    peaks = roofline.device_peaks(jax.devices()[0].device_kind)
    peak = peaks.bf16_flop_per_s if dtype == "bfloat16" else peaks.fp32_flop_per_s
    if peak is not None:
        result["jax_mfu"] = round(jax_flops / peak, 4)
        result["torch_mfu"] = round(flops * torch_rate / batch / peak, 4)
    return result


def batch_sweep(name: str, batches: Iterable[int], repeats: int, steps: int, dtype: str,
                width: int = 16, depth: int = 3) -> Iterator[dict]:
    """JAX step time against batch size (and, across cases, against pixels), row by row.

    An allocation failure (`is_out_of_memory`) ends the sweep with a row that says so
    (`"out_of_memory": true`, no timings); any other error propagates. `batches` may be
    endless (doubling until memory runs out)."""
    ndim, size = CASES[name]
    for batch in batches:
        run = None
        try:
            run = step_runner(models.UNet(1, 1, ndim, width=width, depth=depth, dtype=dtype,
                                          rngs=nnx.Rngs(0)), batch, (size,) * ndim, seed=1)
            run(1)
            error = None
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            error = " ".join(str(err).split())[:200]
        if error is not None:  # outside the handler, whose traceback holds the step's buffers
            del run
            yield {"case": name, "batch": batch, "dtype": dtype, "width": width,
                   "out_of_memory": True, "error": error}
            return
        t = statistics.median(_timed(run, steps) for _ in range(repeats))
        del run  # its buffers go before the next batch allocates
        yield {"case": name, "batch": batch, "dtype": dtype, "width": width,
               "pixels": size**ndim, "s_per_step": round(t / steps, 5),
               "jax_samples_per_s": round(steps * batch / t, 3)}


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="2d64,2d128,2d256,3d32,3d64")
    parser.add_argument("--batch", type=cli.positive_int, default=8)
    parser.add_argument("--repeats", type=cli.positive_int, default=7)
    parser.add_argument("--steps", type=cli.positive_int, default=3, help="steps per timed repeat")
    parser.add_argument("--dtype", default="float32", choices=sorted(models.DTYPES))
    parser.add_argument("--width", type=cli.positive_int, default=16,
                        help="U-Net base width (depth 3)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="also time PyTorch under torch.compile, beside eager")
    parser.add_argument("--bare", action="store_true",
                        help="also time the JAX step of the U-Net's bare convolutions")
    parser.add_argument("--batch-sweep", default="", help="e.g. 8,16,32: JAX alone")
    parser.add_argument("--out", default="", help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {sorted(CASES)}")
        if args.batch_sweep:
            rows = batch_sweep(name, [int(b) for b in args.batch_sweep.split(",")],
                               args.repeats, args.steps, args.dtype, args.width)
        else:
            rows = [compare(name, args.batch, args.repeats, args.steps, args.dtype,
                            args.torch_compile, width=args.width, bare=args.bare)]
        for row in rows:
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
