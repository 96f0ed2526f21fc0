"""Side-by-side training-step throughput: fieldnet (JAX) against the same U-Net in PyTorch.

    pip install -e ".[bench]"          # on a CPU-only machine: pip install torch==2.13.0
    python -m benchmarks.compare_torch [--cases 2d64,2d128,2d256,3d32,3d64] [--batch 8]
        [--repeats 7] [--steps 3] [--dtype float32|bfloat16] [--torch-compile]
        [--out results.jsonl]

One process builds both models with the same parameters (checked: same parameter count, same
forward output), then alternates timed repeats of the JAX and the PyTorch training steps
(forward + backward + clipped AdamW update, MSE loss, same batch), so both see the same
machine load. On the CPU, 2D and 3D cases also time the JAX step with XLA's own convolutions
and gradients (`FIELDNET_CPU_CONV_VJP=0`, see `fieldnet.nn.ops`) in the same alternation,
and report the CPU forms' speedup (`cpu_vjp_speedup`). With `--torch-compile`, the same
PyTorch step with the model under `torch.compile` (a copy with its own optimizer) is one
more contender in the alternation, reported beside eager PyTorch (`torch_compile_*` keys).
Per case it prints a JSON line: samples/s of each (median over repeats), `jax_over_torch`
(the throughput ratio; > 1 means JAX is faster), FLOPs per step counted from the
architecture (forward + backward convolutions and matrix products), the achieved FLOP/s and,
on a GPU with a known peak, MFU.

The PyTorch side runs channels_last (model and data; `torch_unet.channels_last`) on every
device and, on the GPU for bfloat16, autocast (AMP); the JAX side runs `dtype="bfloat16"`
compute with float32 parameters. `--batch-sweep 8,16,32` instead times JAX alone at several
batches (the scaling data for `benchmarks.scaling_plot`). PyTorch is imported only to run
a comparison, so `--help` and the batch sweep work without it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator

import jax
import numpy as np
from flax import nnx

from benchmarks.train_step import step_runner
from fieldnet import cli, models, train
from fieldnet.nn import ops

CASES = {"2d64": (2, 64), "2d128": (2, 128), "2d256": (2, 256), "2d512": (2, 512),
         "3d32": (3, 32), "3d64": (3, 64), "3d128": (3, 128)}
# Dense peak FLOP/s by device name fragment: (float32 without tensor cores, bfloat16).
PEAKS = {"H100": (67e12, 989e12), "H200": (67e12, 989e12), "A100": (19.5e12, 312e12)}


def _torch():
    """PyTorch, or a one-line exit saying how to install it."""
    try:
        import torch
    except ImportError:
        raise SystemExit("python -m benchmarks.compare_torch: PyTorch is not installed; "
                         "pip install torch==2.13.0 (the `bench` extra)") from None
    return torch


def _torch_step(model, batch: int, shape, dtype: str, device: str, compile_: bool):
    torch = _torch()
    from benchmarks import torch_unet

    cfg = train.default_config()
    gpu = device == "cuda"
    model = torch_unet.channels_last(model.to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    step_model = torch.compile(model) if compile_ else model
    g = torch.Generator().manual_seed(1)
    x = torch_unet.channels_last(torch.randn((batch, 1, *shape), generator=g).to(device))
    y = torch_unet.channels_last(torch.randn((batch, 1, *shape), generator=g).to(device))
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if gpu and dtype == "bfloat16"
           else contextlib.nullcontext())

    def one() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = torch.nn.functional.mse_loss(step_model(x).float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return loss

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = one()
        loss.item()  # waits for the device

    return run


def step_flops(torch_model, batch: int, shape) -> float:
    """Forward + backward FLOPs of one training step, counted on the CPU at batch 1 (convolution
    and matrix-product FLOPs are linear in the batch)."""
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros((1, 1, *shape))
    counter = FlopCounterMode(display=False)
    with counter:
        torch_model(x).sum().backward()
    torch_model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()) * batch


def check_same_function(jax_model, torch_model, shape) -> float:
    """Relative difference of the two models' outputs on one random field."""
    torch = _torch()
    x = np.random.default_rng(0).normal(size=(1, *shape, 1)).astype(np.float32)
    with jax.default_matmul_precision("highest"):  # no TF32 on a GPU for this check
        yj = np.asarray(jax_model(x))
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


def compare(name: str, batch: int, repeats: int, steps: int, dtype: str,
            compile_: bool, width: int = 16, depth: int = 3) -> dict:
    torch = _torch()
    from benchmarks import torch_unet

    ndim, size = CASES[name]
    shape = (size,) * ndim
    jm = models.UNet(1, 1, ndim, width=width, depth=depth, dtype=dtype, rngs=nnx.Rngs(0))
    tm = torch_unet.load_from_jax(torch_unet.UNet(1, 1, ndim, width=width, depth=depth), jm)
    n_jax, n_torch = models.layers.param_count(jm), torch_unet.param_count(tm)
    if n_jax != n_torch:
        raise SystemExit(f"parameter counts differ: JAX {n_jax}, PyTorch {n_torch}")
    # the check runs in float32: the model itself, or its float32 twin (same seed)
    reference = jm if models.DTYPES[dtype] is None else models.UNet(
        1, 1, ndim, width=width, depth=depth, rngs=nnx.Rngs(0))
    diff = check_same_function(reference, tm, (16,) * ndim)
    if diff > 1e-4:
        raise SystemExit(f"the two models disagree: relative difference {diff:.2e}")
    flops = step_flops(tm, batch, shape)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = {"jax": step_runner(jm, batch, shape, seed=1)}
    runs["jax"](1)  # compile (the CPU convolution VJP is chosen while tracing)
    if ndim in (2, 3) and ops.cpu_vjp_enabled():
        with _environment(FIELDNET_CPU_CONV_VJP="0"):  # the same step with XLA's convolutions
            runs["jax_xla_vjp"] = step_runner(models.UNet(1, 1, ndim, width=width, depth=depth,
                                                        dtype=dtype, rngs=nnx.Rngs(0)),
                                            batch, shape, seed=1)
            runs["jax_xla_vjp"](1)
    if compile_:  # a copy: its own parameters and optimizer state
        runs["torch_compile"] = _torch_step(copy.deepcopy(tm), batch, shape, dtype, device,
                                            compile_=True)
        runs["torch_compile"](2)  # compiles the forward and the backward
    runs["torch"] = _torch_step(tm, batch, shape, dtype, device, compile_=False)
    runs["torch"](2)  # warm-up
    times = {contender: [] for contender in runs}
    for _ in range(repeats):   # alternating, so all see the same machine load
        for contender, run in runs.items():
            times[contender].append(_timed(run, steps))
    rates = {contender: steps * batch / statistics.median(t) for contender, t in times.items()}
    jax_rate, torch_rate = rates["jax"], rates["torch"]
    jax_flops = flops * jax_rate / batch
    result = {"case": name, "batch": batch, "dtype": dtype, "width": width, "params": n_jax,
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
              "jax_device": jax.devices()[0].device_kind, "torch_device": device,
              "jax": jax.__version__, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": platform.machine()}
    peak = next((p for k, p in PEAKS.items() if k in jax.devices()[0].device_kind), None)
    if peak is not None:
        result["jax_mfu"] = round(jax_flops / peak[dtype == "bfloat16"], 4)
        result["torch_mfu"] = round(flops * torch_rate / batch / peak[dtype == "bfloat16"], 4)
    return result


def batch_sweep(name: str, batches: list[int], repeats: int, steps: int, dtype: str,
                width: int = 16) -> Iterator[dict]:
    """JAX step time against batch size (and, across cases, against pixels), row by row."""
    ndim, size = CASES[name]
    for batch in batches:
        jm = models.UNet(1, 1, ndim, width=width, depth=3, dtype=dtype, rngs=nnx.Rngs(0))
        run = step_runner(jm, batch, (size,) * ndim, seed=1)
        try:
            run(1)
        except Exception as err:  # noqa: BLE001 - out of memory ends the sweep
            yield {"case": name, "batch": batch, "dtype": dtype, "error": str(err)[:200]}
            return
        t = statistics.median(_timed(run, steps) for _ in range(repeats))
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
                            args.torch_compile, width=args.width)]
        for row in rows:
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
