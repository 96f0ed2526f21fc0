"""The GPU measurements still missing, in one run of about 8 minutes on one H100 or H200.

    pip install -e ".[bench]"          # and JAX for CUDA
    python -m benchmarks.gpu_suite --out results.jsonl
        [--parts torch,roofline,inference,batch] [--minutes 7.5]
        [--hbm-tbps 3.35] [--peak-tflops 989]
    python -m benchmarks.gpu_suite --out tiny.jsonl --tiny   # every part, tiny, on a CPU: a
                                                             # check of the script, no result

Parts, each written as JSON lines to --out (one per row) and summed up in a table at the end:

- `torch`: the PyTorch reference tuned step by step, each setting its own row, beside the
  JAX step in float32 and bfloat16 (2D 256² and 3D 64³, U-Net width 16, batch 16): eager
  float32 (`torch_eager_fp32`); + `cudnn.benchmark`; + channels_last; + AMP bfloat16;
  + `torch.compile(mode="max-autotune")`. Each row keeps the settings of the row before
  it. Within a case the JAX steps and the eager rows alternate (`compare_torch.alternate`),
  and the compiled step alternates with the JAX bfloat16 step after every eager row of
  every case is written, so that a slow compilation costs only its own rows. Every PyTorch
  row has `jax_over_this`, the best JAX step of its alternation over it.
- `roofline`: the JAX bfloat16 step at widths 16 and 64 (both cases), with XLA's bytes per
  step (`benchmarks.roofline`) over the step time against the HBM bandwidth
  (`hbm_fraction`) and the FLOP/s against the dense bfloat16 peak (`bf16_peak_fraction`).
  Every JAX row, those of `torch` too, has these columns.
- `inference`: a 512³ box predicted by tiles through `fieldnet.inference.predict_field`
  (`benchmarks.inference`, the default-width U-Net; bfloat16, then float32; 256³ cores,
  batch 1, or 128³ cores, batch 2, where those run out of memory), in seconds, voxels/s
  and the network's FLOPs per voxel (XLA's count of its forward pass).
- `batch`: the JAX bfloat16 step at batch 16, 32, 64, ... until the device runs out of
  memory (XLA's RESOURCE_EXHAUSTED), in samples/s, and the largest batch that ran.

Then `summary` rows: JAX over the best PyTorch row per case (target ≥ 1.2), the memory
roofline fraction at width 16 (≥ 0.5), the bfloat16 peak fraction at width 64 (≥ 0.4)
and the 512³ box's seconds (≤ 10, against a published 10.9 s on an A100 in FP16 for a JAX
port of the map2map emulator).

Every row has `part`, `row`, `case` and `status`: "ok" (a measurement), "error" (with
`error`, and no measured values) or "skipped" (with `reason`: PyTorch missing, the time
limit). Each part runs in its own process with a share of the time left of `--minutes`
(what a part leaves unused goes to the parts after it): a part stops starting new rows
when what is left would not cover them, and one still running at its
limit is stopped, its rows so far kept and an error row added; a part that fails adds an
error row and the next part runs. The processes share a JAX compilation cache (a
temporary folder, or `JAX_COMPILATION_CACHE_DIR`), so a step another part compiled
already loads from it. The `torch` part does not preallocate JAX's device memory
(PyTorch shares the device); the `batch` part lets JAX take 90% of it.

Peaks come from `jax.devices()[0].device_kind` (`roofline.PEAKS`: H100 SXM, H100 PCIe,
H200, ...); `--hbm-tbps` and `--peak-tflops` (dense bfloat16) override them, and an
unknown device without them gets null fractions. `--tiny` runs every part on small shapes
(2D 32², 3D 16³, a one-level U-Net, depth 0, of width 4 and 8, a 64³ box, batches 2 and 4)
and skips `torch.compile`, whose compilation takes minutes on a CPU; its rows check the
script and are no measurement. Without PyTorch the PyTorch rows are "skipped", the JAX rows still
run, and FLOPs come from XLA's count instead of PyTorch's (`flop_count`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fieldnet import cli

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("torch", "roofline", "inference", "batch")
# each part's share of the time left when it starts, over the parts still to run (time a
# part leaves unused goes to those after it)
SHARES = {"torch": 0.45, "roofline": 0.12, "inference": 0.13, "batch": 0.30}
MIN_PART_S = 10.0  # below this a part is not started: its process alone needs seconds
# environment of each part's process, where the caller has not set it
PART_ENV = {"torch": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
            "batch": {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.90"}}
TARGETS = {"jax_over_best_torch": (">=", 1.2), "hbm_fraction": (">=", 0.5),
           "bf16_peak_fraction": (">=", 0.4), "tiled_seconds": ("<=", 10.0)}
PUBLISHED_TILED = "10.9 s on an A100 in FP16 (a JAX port of the map2map emulator)"
NO_TORCH = "PyTorch is not installed (pip install -e '.[bench]')"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures: `FULL` on a GPU, `TINY` to check the script on a CPU.

    Attributes:
        tiny: Rows of this plan are a check, not a measurement.
        cases: The 2D and the 3D case (`compare_torch.CASES`).
        batch: Batch of the `torch` part and first batch of the sweep.
        width, depth: The U-Net of the `torch` part, the sweep and the narrow roofline rows.
        wide_width: The wide roofline rows' width.
        roofline: (case, width, batch) of each roofline row.
        repeats, steps: Timed rounds, and steps per round, of every step timing.
        torch_compile: Whether the `torch.compile` rows run.
        box: Side of the tiled 3D box.
        tiles: (core size, tiles per forward pass) of the tiled pass, largest first: the
            next is tried when one runs out of device memory (the larger, the less of the
            halo is computed twice).
        inference_repeats: Timed passes of the box (the fastest counts).
        sweep_cap: Largest batch the sweep tries (None: until out of memory).
        sweep_repeats, sweep_steps: The sweep's timing (its large batches take long).
    """

    tiny: bool
    cases: tuple[str, str]
    batch: int
    width: int
    depth: int
    wide_width: int
    roofline: tuple[tuple[str, int, int], ...]
    repeats: int
    steps: int
    torch_compile: bool
    box: int
    tiles: tuple[tuple[int, int], ...]
    inference_repeats: int
    sweep_cap: int | None
    sweep_repeats: int
    sweep_steps: int


FULL = Plan(tiny=False, cases=("2d256", "3d64"), batch=16, width=16, depth=3, wide_width=64,
            roofline=(("2d256", 16, 16), ("2d256", 64, 16), ("3d64", 16, 16), ("3d64", 64, 8)),
            repeats=5, steps=5, torch_compile=True, box=512, tiles=((256, 1), (128, 2)),
            inference_repeats=2, sweep_cap=None, sweep_repeats=3, sweep_steps=2)
TINY = Plan(tiny=True, cases=("2d32", "3d16"), batch=2, width=4, depth=0, wide_width=8,
            roofline=(("2d32", 4, 2), ("2d32", 8, 2), ("3d16", 4, 2), ("3d16", 8, 2)),
            repeats=2, steps=1, torch_compile=False, box=64, tiles=((32, 2),),
            inference_repeats=1, sweep_cap=4, sweep_repeats=1, sweep_steps=1)

# each row adds one setting to the row before it
TORCH_LADDER = {"torch_eager_fp32": dict(channels_last=False),
                "torch_cudnn_benchmark": dict(channels_last=False, cudnn_benchmark=True),
                "torch_channels_last": dict(cudnn_benchmark=True),
                "torch_amp_bf16": dict(cudnn_benchmark=True, amp_bf16=True)}
TORCH_COMPILED = ("torch_compile_max_autotune",
                  dict(cudnn_benchmark=True, amp_bf16=True, compile_mode="max-autotune"))
COMPILE_ESTIMATE_S = 60.0  # time asked for the first torch.compile case, before one is known


class Clock:
    """The time left of a budget, from now."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds

    def share(self, parts: int) -> Clock:
        """A clock with 1/parts of the time left."""
        return Clock(max(self.left(), 0.0) / parts)


def _num(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]


def guarded(base: dict, measure: Callable[[], list[dict]]) -> list[dict]:
    """The rows of `measure()`, each `base` plus status "ok" plus its values; if it raises,
    one row `base` with status "error" and the error instead, no measured value in it."""
    try:
        rows = measure()
    except Exception as err:  # noqa: BLE001 - a failed row is recorded and the suite goes on
        return [{**base, "status": "error", "error": _error_text(err)}]
    return [{**base, "status": "ok", **row} for row in rows]


def skipped(base: dict, reason: str) -> dict:
    return {**base, "status": "skipped", "reason": reason}


def _out_of_time(clock: Clock, need: float) -> str:
    return f"time limit: {max(clock.left(), 0):.0f} s left, this needs about {need:.0f} s"


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---- measurements (in a part's own process) ----

def step_columns(run, s_per_step: float, batch: int, flops: float | None,
                 peaks) -> dict:
    """The values of a JAX step row: rates, and the roofline columns from XLA's cost
    analysis of the compiled step (`run.compiled`). `flops` None: XLA's count."""
    from benchmarks import roofline

    cost = roofline.cost_of(run.compiled)
    moved = roofline.cost_value(cost, "bytes accessed")
    flop_count = "architecture"
    if flops is None:
        flops, flop_count = roofline.cost_value(cost, "flops"), "xla"
    flop_rate = None if flops is None else flops / s_per_step
    byte_rate = None if moved is None else moved / s_per_step
    return {"samples_per_s": _num(batch / s_per_step), "s_per_step": _num(s_per_step),
            "gflop_per_step": _num(flops and flops / 1e9), "flop_count": flop_count,
            "tflop_per_s": _num(flop_rate and flop_rate / 1e12),
            "gb_per_step": _num(moved and moved / 1e9),
            "hbm_tbps_achieved": _num(byte_rate and byte_rate / 1e12),
            "hbm_fraction": _num(roofline.fraction(byte_rate, peaks.hbm_bytes_per_s)),
            "bf16_peak_fraction": _num(roofline.fraction(flop_rate, peaks.bf16_flop_per_s))}


def _torch_columns(torch, settings: dict, s_per_step: float, batch: int, flops: float,
                   jax_best: tuple[str, float], device: str) -> dict:
    from benchmarks.compare_torch import TorchSetup

    setup = TorchSetup(**settings)
    return {"framework": "torch", "dtype": "bfloat16" if setup.amp_bf16 else "float32",
            **dataclasses.asdict(setup),
            "samples_per_s": _num(batch / s_per_step), "s_per_step": _num(s_per_step),
            "gflop_per_step": _num(flops / 1e9), "flop_count": "architecture",
            "tflop_per_s": _num(flops / s_per_step / 1e12),
            "jax_over_this": _num(s_per_step / jax_best[1]), "jax_best": jax_best[0],
            "torch_device": device, "torch": torch.__version__,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def _torch_ladder(plan: Plan, case: str, peaks, torch) -> list[dict]:
    """One alternation: the JAX steps (float32, bfloat16) and the eager PyTorch rows."""
    from flax import nnx

    from benchmarks import compare_torch
    from benchmarks.train_step import step_runner
    from fieldnet import models

    ndim, size = compare_torch.CASES[case]
    shape, batch = (size,) * ndim, plan.batch
    if torch is None:
        jm32, tm, diff = models.UNet(1, 1, ndim, width=plan.width, depth=plan.depth,
                                     rngs=nnx.Rngs(0)), None, None
    else:
        jm32, tm, diff = compare_torch.twin_models(ndim, plan.width, plan.depth, "float32")
    jm16 = models.UNet(1, 1, ndim, width=plan.width, depth=plan.depth, dtype="bfloat16",
                       rngs=nnx.Rngs(0))
    runs = {"jax_float32": step_runner(jm32, batch, shape, seed=1),
            "jax_bfloat16": step_runner(jm16, batch, shape, seed=1)}
    device = None
    if torch is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for name, settings in TORCH_LADDER.items():
            runs[name] = compare_torch.torch_step(copy.deepcopy(tm), batch, shape,
                                                  compare_torch.TorchSetup(**settings), device)
    for run in runs.values():
        run(2)  # warm-up; cudnn.benchmark times its algorithms here
    seconds = compare_torch.alternate(runs, plan.repeats, plan.steps)
    flops = None if tm is None else compare_torch.step_flops(tm, batch, shape)
    jax_best = min(((n, s) for n, s in seconds.items() if n.startswith("jax")),
                   key=lambda item: item[1])
    rows = [{"row": name, "framework": "jax", "dtype": name.removeprefix("jax_"),
             "batch": batch, "width": plan.width, "depth": plan.depth,
             **step_columns(runs[name], seconds[name], batch, flops, peaks),
             "max_output_diff": _num(diff)} for name in ("jax_float32", "jax_bfloat16")]
    if torch is not None:
        rows += [{"row": name, "batch": batch, "width": plan.width, "depth": plan.depth,
                  **_torch_columns(torch, settings, seconds[name], batch, flops, jax_best,
                                   device)} for name, settings in TORCH_LADDER.items()]
    return rows


def _torch_compiled(plan: Plan, case: str, torch) -> list[dict]:
    """One alternation: the JAX bfloat16 step and PyTorch under torch.compile."""
    from benchmarks import compare_torch
    from benchmarks.train_step import step_runner

    ndim, size = compare_torch.CASES[case]
    shape, batch = (size,) * ndim, plan.batch
    jm16, tm, _ = compare_torch.twin_models(ndim, plan.width, plan.depth, "bfloat16")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name, settings = TORCH_COMPILED
    runs = {"jax_bfloat16": step_runner(jm16, batch, shape, seed=1)}
    runs["jax_bfloat16"](2)
    flops = compare_torch.step_flops(tm, batch, shape)
    start = time.perf_counter()
    runs[name] = compare_torch.torch_step(tm, batch, shape,
                                          compare_torch.TorchSetup(**settings), device)
    runs[name](3)  # compiles the forward and the backward, records the CUDA graphs
    compile_s = time.perf_counter() - start
    seconds = compare_torch.alternate(runs, plan.repeats, plan.steps)
    return [{"row": name, "batch": batch, "width": plan.width, "depth": plan.depth,
             **_torch_columns(torch, settings, seconds[name], batch, flops,
                              ("jax_bfloat16", seconds["jax_bfloat16"]), device),
             "compile_s": _num(compile_s)}]


def part_torch(plan: Plan, clock: Clock, peaks) -> Iterator[dict]:
    torch = _torch_or_none()
    if torch is not None and plan.tiny:
        torch.set_num_threads(1)  # on shared CPU cores its threads can stall (BENCHMARKS.md)
    for case in plan.cases:
        yield from guarded({"part": "torch", "row": "ladder", "case": case},
                           lambda case=case: _torch_ladder(plan, case, peaks, torch))
        if torch is None:
            for name in TORCH_LADDER:
                yield skipped({"part": "torch", "row": name, "case": case}, NO_TORCH)
    name = TORCH_COMPILED[0]
    compile_s = None
    for case in plan.cases:
        base = {"part": "torch", "row": name, "case": case}
        if not plan.torch_compile:
            yield skipped(base, "--tiny: torch.compile(mode='max-autotune') takes minutes "
                                "to compile on a CPU; not run")
            continue
        if torch is None:
            yield skipped(base, NO_TORCH)
            continue
        need = COMPILE_ESTIMATE_S if compile_s is None else 1.5 * compile_s
        if not clock.allows(need):
            yield skipped(base, _out_of_time(clock, need))
            continue
        start = time.monotonic()
        yield from guarded(base, lambda case=case: _torch_compiled(plan, case, torch))
        compile_s = time.monotonic() - start


def _roofline_row(plan: Plan, case: str, width: int, batch: int, peaks, torch) -> list[dict]:
    from flax import nnx

    from benchmarks import compare_torch
    from benchmarks.train_step import step_runner
    from fieldnet import models

    ndim, size = compare_torch.CASES[case]
    shape = (size,) * ndim
    model = models.UNet(1, 1, ndim, width=width, depth=plan.depth, dtype="bfloat16",
                        rngs=nnx.Rngs(0))
    run = step_runner(model, batch, shape, seed=1)
    run(2)
    seconds = compare_torch.alternate({"jax": run}, plan.repeats, plan.steps)["jax"]
    flops = None
    if torch is not None:
        from benchmarks import torch_unet

        flops = compare_torch.step_flops(torch_unet.UNet(1, 1, ndim, width=width,
                                                         depth=plan.depth), batch, shape)
    return [{"framework": "jax", "dtype": "bfloat16", "batch": batch, "width": width,
             "depth": plan.depth, **step_columns(run, seconds, batch, flops, peaks)}]


def part_roofline(plan: Plan, clock: Clock, peaks) -> Iterator[dict]:
    torch = _torch_or_none()
    last = 0.0
    for case, width, batch in plan.roofline:
        base = {"part": "roofline", "row": f"jax_bfloat16_w{width}", "case": case}
        if not clock.allows(1.5 * last):
            yield skipped(base, _out_of_time(clock, 1.5 * last))
            continue
        start = time.monotonic()
        yield from guarded(base, lambda c=case, w=width, b=batch:
                           _roofline_row(plan, c, w, b, peaks, torch))
        last = time.monotonic() - start


def network_flop_per_voxel(model, size: int) -> float | None:
    """XLA's count of the model's forward FLOPs on one periodic (size,)*ndim field, per voxel
    (the same for any size: every layer's work is proportional to the voxels)."""
    import jax
    import numpy as np
    from flax import nnx

    from benchmarks import roofline

    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((1, *(size,) * model.ndim, model.in_channels), np.float32)
    lowered = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, x)
    flops = roofline.cost_value(roofline.cost_of(lowered), "flops")
    return None if flops is None else flops / size**model.ndim


def _tiled_row(plan: Plan, dtype: str, tile: int, batch: int) -> dict:
    from benchmarks import inference

    result = inference.run_case(3, plan.box, tile, batch, check=False,
                                repeats=plan.inference_repeats, dtype=dtype, depth=plan.depth)
    per_voxel = network_flop_per_voxel(inference.inference_model(3, depth=plan.depth), tile)
    rate = result["pixels_per_s"]
    return {"dtype": dtype, "box": plan.box, "tile": result["tile"],
            "tile_batch": result["batch"], "repeats": result["repeats"],
             "seconds": _num(result["seconds"]), "voxels_per_s": _num(rate),
            "kflop_per_voxel": _num(per_voxel and per_voxel / 1e3),
            "useful_tflop_per_s": _num(per_voxel and per_voxel * rate / 1e12),
            "matmul_precision": result["matmul_precision"],
            "peak_device_gib": _num(result.get("peak_device_gib")),
            "published": PUBLISHED_TILED}


def part_inference(plan: Plan, clock: Clock, peaks) -> Iterator[dict]:
    from benchmarks.compare_torch import is_out_of_memory

    last = 0.0
    for dtype in ("bfloat16", "float32"):
        base = {"part": "inference", "row": f"tiled_{dtype}", "case": f"3d{plan.box}"}
        if not clock.allows(1.5 * last):
            yield skipped(base, _out_of_time(clock, 1.5 * last))
            continue
        start = time.monotonic()
        for tile, batch in plan.tiles:
            try:
                row = _tiled_row(plan, dtype, tile, batch)
            except Exception as err:  # noqa: BLE001 - an error row; out of memory: a smaller tile
                yield {**base, "status": "error", "tile": tile, "tile_batch": batch,
                       "error": _error_text(err)}
                if is_out_of_memory(err):
                    continue
                break
            yield {**base, "status": "ok", **row}
            break
        last = time.monotonic() - start


def _sweep_case(plan: Plan, case: str, clock: Clock) -> Iterator[dict]:
    from benchmarks import compare_torch

    doubling = (plan.batch * 2**k for k in itertools.count())
    if plan.sweep_cap is not None:
        doubling = itertools.takewhile(lambda b: b <= plan.sweep_cap, doubling)
    sweep = compare_torch.batch_sweep(case, doubling, plan.sweep_repeats, plan.sweep_steps,
                                      "bfloat16", width=plan.width, depth=plan.depth)
    largest, stopped, extra = None, f"batch cap {plan.sweep_cap} (--tiny)", {}
    start = time.monotonic()
    while True:
        batch = largest * 2 if largest else plan.batch
        base = {"part": "batch", "row": f"batch_{batch}", "case": case}
        try:
            row = next(sweep, None)
        except Exception as err:  # noqa: BLE001 - not out of memory: an error row, then stop
            yield {**base, "status": "error", "error": _error_text(err)}
            stopped = f"error at batch {batch}"
            break
        if row is None:
            break
        if row.get("out_of_memory"):
            stopped, extra = f"out of memory at batch {row['batch']}", {"oom": row["error"]}
            break
        elapsed, start = time.monotonic() - start, time.monotonic()
        largest = row["batch"]
        yield {**base, "status": "ok", "dtype": "bfloat16", "batch": largest,
               "width": plan.width, "depth": plan.depth,
               "samples_per_s": _num(row["jax_samples_per_s"]),
               "s_per_step": _num(row["s_per_step"])}
        if not clock.allows(2 * elapsed):  # the next batch: about twice the work
            stopped = f"time limit before batch {2 * largest} ({_out_of_time(clock, 2 * elapsed)})"
            break
    sweep.close()
    memory = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.75 (JAX's default)")
    yield {"part": "batch", "row": "largest_batch", "case": case,
           "status": "ok" if largest else "error", "largest_batch": largest,
           "stopped_by": stopped, "jax_memory_fraction": memory, **extra,
           **({} if largest else {"error": f"no batch ran ({stopped})"})}


def part_batch(plan: Plan, clock: Clock, peaks) -> Iterator[dict]:
    for i, case in enumerate(plan.cases):
        yield from _sweep_case(plan, case, clock.share(len(plan.cases) - i))


PART_RUNS = {"torch": part_torch, "roofline": part_roofline, "inference": part_inference,
             "batch": part_batch}


def run_part(name: str, plan: Plan, out: Path, seconds: float, hbm_tbps: float | None,
             peak_tflops: float | None) -> None:
    """Runs one part here, appending its rows to `out` as each is measured."""
    clock = Clock(seconds)
    import jax

    from benchmarks import roofline

    kind = jax.devices()[0].device_kind
    peaks = roofline.device_peaks(kind, hbm_tbps, peak_tflops)
    common = {"tiny": plan.tiny, "device": kind, "jax": jax.__version__,
              "jax_matmul_precision": str(jax.config.jax_default_matmul_precision),
              "peak_hbm_tbps": peaks.hbm_tbps, "peak_bf16_tflops": peaks.bf16_tflops}
    for row in PART_RUNS[name](plan, clock, peaks):
        _append(out, {**row, **common})


# ---- the suite (one process per part) ----

def _append(out: Path, row: dict) -> None:
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")  # one write per row: a stopped part leaves whole rows


def _read_rows(out: Path, offset: int) -> list[dict]:
    with open(out, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _drop_partial_line(out: Path) -> None:
    """Cuts a row that a stopped process left half written."""
    data = out.read_bytes() if out.exists() else b""
    if data and not data.endswith(b"\n"):
        out.write_bytes(data[:data.rfind(b"\n") + 1])


def part_seconds(parts: list[str], seconds_left: float) -> float:
    """The first part's time: its share of what is left, over `parts` (it and those after)."""
    return seconds_left * SHARES[parts[0]] / sum(SHARES[p] for p in parts)


def part_command(name: str, args, out: Path, seconds: float) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.gpu_suite", "--part", name, "--out", str(out),
           "--seconds", f"{seconds:.1f}"]
    if args.tiny:
        cmd.append("--tiny")
    for flag, value in (("--hbm-tbps", args.hbm_tbps), ("--peak-tflops", args.peak_tflops)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def run_isolated(cmd: list[str], env: dict, seconds: float) -> tuple[int | None, str]:
    """(exit code, or None if stopped at `seconds`; the last lines it printed). The command
    runs in its own process group, so that stopping it also stops what it started
    (PyTorch's compile workers)."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            code = None
        finally:  # also on Ctrl-C; and the workers a finished part may leave behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        tail = log.read()[-3000:].decode(errors="replace")
    return code, tail


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_suite(args, out: Path) -> list[dict]:
    """Runs the parts one after the other, each in its own process; the rows written."""
    start = out.stat().st_size if out.exists() else 0
    with tempfile.TemporaryDirectory(prefix="gpu_suite_jax_cache_") as cache:
        shared = {"JAX_COMPILATION_CACHE_DIR": cache,
                  "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                  "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
        end = time.monotonic() + 60 * args.minutes
        for i, name in enumerate(args.parts):
            seconds = part_seconds(args.parts[i:], end - time.monotonic())
            base = {"part": name, "row": "part", "case": None, "status": "error",
                    "tiny": args.tiny}
            if seconds < MIN_PART_S:
                _append(out, skipped(base, "no time left (--minutes)"))
                continue
            env = {**shared, **PART_ENV.get(name, {}), **os.environ}
            started = time.monotonic()
            code, tail = run_isolated(part_command(name, args, out, seconds), env, seconds)
            print(f"part {name}: {time.monotonic() - started:.0f} s of its {seconds:.0f} s",
                  file=sys.stderr, flush=True)
            _drop_partial_line(out)
            if code is None:
                _append(out, {**base, "error": f"stopped at its time limit of {seconds:.0f} s "
                                               "(the rows before this one are complete)"})
            elif code != 0:
                _append(out, {**base, "error": f"exit code {code}: {_last_line(tail)}",
                              "log_tail": tail[-1500:]})
    rows = _read_rows(out, start)
    for row in summarize(rows, TINY if args.tiny else FULL, args.parts):
        _append(out, row)
        rows.append(row)
    return rows


def _target_row(name: str, case: str | None, value: float | None, source: dict | None,
                tiny: bool, missing: str) -> dict:
    base = {"part": "summary", "row": name, "case": case}
    if value is None:
        return {**skipped(base, missing), "tiny": tiny}
    op, target = TARGETS[name]
    met = value >= target if op == ">=" else value <= target
    return {**base, "status": "ok", "value": value, "target": f"{op} {target}",
            "meets_target": None if tiny else met, "from": source["row"], "tiny": tiny}


def summarize(rows: list[dict], plan: Plan, parts: list[str]) -> list[dict]:
    """The summary rows: each target against the measured rows it is read from."""
    ok = [r for r in rows if r.get("status") == "ok"]

    def pick(part, case, row_filter, key, best=max):
        found = [r for r in ok if r["part"] == part and r.get("case") == case
                 and row_filter(r) and r.get(key) is not None]
        return best(found, key=lambda r: r[key]) if found else None

    out = []
    for case in plan.cases:
        if "torch" in parts:
            best = pick("torch", case, lambda r: r.get("framework") == "torch", "samples_per_s")
            out.append(_target_row("jax_over_best_torch", case, best and best["jax_over_this"],
                                   best, plan.tiny, "no PyTorch row was measured"))
        if "roofline" in parts:
            for key, width in (("hbm_fraction", plan.width),
                               ("bf16_peak_fraction", plan.wide_width)):
                row = pick("roofline", case, lambda r, w=width: r.get("width") == w, key)
                out.append(_target_row(key, case, row and row[key], row, plan.tiny,
                                       f"no width-{width} row with a known device peak "
                                       "(--hbm-tbps, --peak-tflops)"))
    if "inference" in parts:
        row = pick("inference", f"3d{plan.box}", lambda r: True, "seconds", best=min)
        out.append(_target_row("tiled_seconds", f"3d{plan.box}", row and row["seconds"], row,
                               plan.tiny, "no tiled pass was measured"))
    return out


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def _note(row: dict) -> str:
    if row["status"] == "error":
        return "ERROR " + row["error"][:70]
    if row["status"] == "skipped":
        return "skipped: " + row["reason"][:70]
    if row["part"] == "summary":
        verdict = {True: "met", False: "NOT met", None: "not judged (--tiny)"}
        return f"{_format(row['value'])} (target {row['target']}: {verdict[row['meets_target']]})"
    if "largest_batch" in row:
        return f"largest batch {row['largest_batch']}; stopped by {row['stopped_by']}"
    if "seconds" in row:
        return f"{_format(row['seconds'])} s, {_format(row['kflop_per_voxel'])} kFLOP/voxel"
    if "jax_over_this" in row:
        return f"JAX {_format(row['jax_over_this'])}x this"
    fractions = [f"{label} {100 * row[key]:.1f}%" for label, key in
                 (("HBM", "hbm_fraction"), ("bf16 peak", "bf16_peak_fraction"))
                 if row.get(key) is not None]
    return ", ".join(fractions)


def table(rows: list[dict]) -> str:
    header = ("part", "case", "row", "samples/s", "TFLOP/s", "")
    lines = [header] + [(r["part"], _format(r.get("case")), r["row"],
                         _format(r.get("samples_per_s", r.get("voxels_per_s"))),
                         _format(r.get("tflop_per_s", r.get("useful_tflop_per_s"))), _note(r))
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
                     + "  " + line[-1] for line in lines)


def _parts(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PARTS]
    if unknown or not names:
        what = (f"unknown part {', '.join(map(repr, unknown))}" if unknown
                else f"no part in {text!r}")
        raise argparse.ArgumentTypeError(f"{what}; choose from {','.join(PARTS)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog="python -m benchmarks.gpu_suite",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="append the JSON lines (rows) to this file")
    parser.add_argument("--tiny", action="store_true",
                        help="every part on tiny shapes, on a CPU: checks the script")
    parser.add_argument("--parts", type=_parts, default=list(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--minutes", type=cli.positive_float, default=7.5,
                        help="time for all parts together, shared out by part")
    parser.add_argument("--hbm-tbps", type=cli.positive_float,
                        help="HBM bandwidth [TB/s] instead of the device table's")
    parser.add_argument("--peak-tflops", type=cli.positive_float,
                        help="dense bfloat16 peak [TFLOP/s] instead of the device table's")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=cli.positive_float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if not out.parent.is_dir():
        parser.error(f"--out {args.out}: folder {out.parent} does not exist")
    if out.is_dir():
        parser.error(f"--out {args.out} is a folder")
    plan = TINY if args.tiny else FULL
    if args.part:
        run_part(args.part, plan, out, args.seconds or 60 * args.minutes, args.hbm_tbps,
                 args.peak_tflops)
        return
    rows = run_suite(args, out)
    print(table(rows), flush=True)
    print(f"{len(rows)} rows appended to {args.out}"
          + (" (--tiny: a check of the script, not a measurement)" if args.tiny else ""))


if __name__ == "__main__":
    cli.run(main)
