"""The benchmark helpers: the PyTorch reference is the same function, the scaling fit, the
halofit benchmark's input checks."""

import os
import re

import numpy as np
import pytest
from flax import nnx

from benchmarks import scaling_plot
from fieldnet import models
from fieldnet.errors import FieldnetError


def test_scaling_exponent_recovers_a_power_law():
    rows = [{"case": f"2d{n}", "batch": b, "pixels": n * n, "s_per_step": 1e-6 * (n * n * b) ** 0.8}
            for n in (64, 128, 256) for b in (2, 8)]
    assert scaling_plot.scaling_exponent(rows) == pytest.approx(0.8, abs=1e-9)
    fig = scaling_plot.figure(rows)
    assert len(fig.axes[0].lines) == 3 + 1  # one line per case and the linear guide


@pytest.mark.parametrize("ndim,size", [(1, 32), (2, 16), (3, 8)])
def test_torch_reference_computes_the_same_function(ndim, size):
    torch = pytest.importorskip("torch")  # the `bench` extra
    from benchmarks import torch_unet

    jm = models.UNet(1, 1, ndim, width=4, depth=3, rngs=nnx.Rngs(3))
    tm = torch_unet.load_from_jax(torch_unet.UNet(1, 1, ndim, width=4, depth=3), jm)
    assert torch_unet.param_count(tm) == models.layers.param_count(jm)
    x = np.random.default_rng(0).normal(size=(2, *(size,) * ndim, 1)).astype(np.float32)
    want = np.asarray(jm(x))
    with torch.no_grad():
        got = np.moveaxis(tm(torch.from_numpy(np.moveaxis(x, -1, 1))).numpy(), 1, -1)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # a periodic shift commutes with both, so the padding is circular in the reference too
    with torch.no_grad():
        shifted = tm(torch.from_numpy(np.moveaxis(np.roll(x, 8, axis=1), -1, 1))).numpy()
    assert np.abs(np.moveaxis(shifted, 1, -1) - np.roll(got, 8, axis=1)).max() <= 1e-5
    # the same function in the channels-last memory format the benchmark times
    tm = torch_unet.channels_last(tm)
    xt = torch_unet.channels_last(torch.from_numpy(np.moveaxis(x, -1, 1)))
    with torch.no_grad():
        out = tm(xt)
    if ndim > 1:
        assert xt.stride()[1] == 1 and out.stride()[1] == 1  # channels are the fastest axis
    assert np.abs(np.moveaxis(out.numpy(), 1, -1) - want).max() <= 1e-5 * np.abs(want).max()


def test_compare_torch_help_lists_its_flags_without_torch(monkeypatch, capsys):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    for name in ("benchmarks.compare_torch", "benchmarks.torch_unet"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    compare_torch = importlib.import_module("benchmarks.compare_torch")
    with pytest.raises(SystemExit) as exit_info:
        compare_torch.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--cases", "--batch", "--repeats", "--steps", "--dtype", "--width",
                 "--torch-compile", "--bare", "--batch-sweep", "--out"):
        assert flag in out
    with pytest.raises(SystemExit, match="PyTorch is not installed; pip install torch"):
        compare_torch.main(["--cases", "2d64"])


def test_bare_unet_has_the_benchmarked_convolutions_and_nothing_between_them():
    """The `--bare` contender times the same convolutions (kernel shapes, in order) as the
    benchmarked U-Net, without its norms."""
    import jax
    from flax import nnx

    from benchmarks.compare_torch import bare_unet
    from fieldnet import models

    def kernels(model):
        leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
        return [(jax.tree_util.keystr(path), leaf.shape) for path, leaf in leaves
                if leaf.ndim >= 3]

    def norm_params(model):
        return [p for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
                if "norm" in jax.tree_util.keystr(p)]

    full = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    bare = bare_unet(2, 4, 2, "float32")
    assert kernels(bare) == kernels(full) and len(kernels(full)) > 10
    assert norm_params(full) and not norm_params(bare)
    assert (bare.padding, bare.act) == ("zero", "relu")


@pytest.mark.parametrize("module, args, message", [
    ("halofit", ["--box", "abc"], "comma-separated floats"),
    ("halofit", ["--steps", "10,0"], "must be positive"),
    ("halofit", ["--box", "64"], "below the fundamental"),
    ("halofit", ["--kmin", "0.5", "--kmax", "0.2"], "--kmin < --kmax"),
    ("halofit", ["--out", "/nonexistent-folder/x.jsonl"], "does not exist"),
    ("loader_throughput", ["--loader", "thread,grian"],
     "--loader takes comma-separated names from ['grain', 'thread'], got 'thread,grian'"),
    ("loader_throughput", ["--workers", "0,-1"],
     "--workers takes comma-separated integers ≥ 0, got '0,-1'"),
    ("loader_throughput", ["--workers", "two"],
     "--workers takes comma-separated integers ≥ 0, got 'two'"),
    ("loader_throughput", ["--cases", "4d"],
     "--cases takes comma-separated names from ['2d', '3d', '3d-raw']"),
    ("loader_throughput", ["--loader", "thread", "--workers", "2"],
     "its --workers must include 0"),
    ("loader_throughput", ["--chunk", "256"], "--chunk 256 is larger than the 128³ boxes"),
    ("loader_throughput", ["--steps", "0"], "expected a positive integer"),
])
def test_benchmark_refuses_bad_settings_before_running(capsys, module, args, message):
    """Every setting is checked before the first (minutes-long) run, file or worker."""
    import importlib

    benchmark = importlib.import_module(f"benchmarks.{module}")
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize("module, args", [
    ("benchmarks.step_profile", ["--repeats", "0"]),
    ("benchmarks.model_build", ["--repeats", "-1"]),
    ("benchmarks.train_step", ["--batch", "2.5"]),
])
def test_benchmark_settings_that_are_not_positive_are_one_line(module, args):
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "expected a positive integer" in lines[0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs affinity")
def test_compare_torch_reports_the_cores_a_pinned_process_may_use():
    """A process pinned to one core (as `taskset -c 0` does) reports one core, so a row
    says whether both sides ran on one core or on all of them."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from benchmarks.compare_torch import usable_cores; print(usable_cores())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1"]


def test_step_profile_reads_operation_times_from_xlas_trace():
    """`--trace` sums the compiled module's operations in XLA's trace by kind: a jitted
    function's fused element-wise work shows up as its fusion, per call, and the runtime's
    own events (argument handling, buffer waits) are not counted."""
    import jax
    import jax.numpy as jnp

    from benchmarks import step_profile

    f = jax.jit(lambda x: jnp.tanh(x) * 2.0 + 1.0)
    x = jnp.ones((256, 1024))
    names = step_profile.instruction_names(f.lower(x).compile().as_text())
    assert names and all(" " not in n for n in names)
    times = step_profile.operation_times(lambda: f(x).block_until_ready(), 2, names)
    assert times and all(v >= 0 for v in times.values())
    assert set(times) <= {re.sub(r"\.\d+$", "", n) for n in names}
    assert any("fusion" in kind for kind in times), times


# ---- benchmarks.gpu_suite: the run that measures what is still missing on a GPU ----

def _rows(path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def _positive(value) -> bool:
    return isinstance(value, float | int) and np.isfinite(value) and value > 0


def test_gpu_suite_tiny_runs_every_part_on_the_cpu_with_finite_positive_rates(tmp_path, capsys):
    pytest.importorskip("torch")  # the `bench` extra; without it the PyTorch rows are skipped
    from benchmarks import gpu_suite

    out = tmp_path / "tiny.jsonl"
    gpu_suite.main(["--out", str(out), "--tiny", "--hbm-tbps", "0.02", "--peak-tflops", "0.5"])
    rows = _rows(out)
    assert all({"part", "row", "case", "status"} <= row.keys() for row in rows)
    assert not [row for row in rows if row["status"] == "error"]
    by = {(row["part"], row["row"], row["case"]): row for row in rows}
    jax_keys = ("samples_per_s", "tflop_per_s", "gb_per_step", "hbm_tbps_achieved",
                "hbm_fraction", "bf16_peak_fraction")
    for case in ("2d32", "3d16"):
        for name in ("jax_float32", "jax_bfloat16"):
            row = by[("torch", name, case)]
            assert row["status"] == "ok" and row["tiny"] is True
            assert all(_positive(row[key]) for key in jax_keys), row
        for name in gpu_suite.TORCH_LADDER:
            row = by[("torch", name, case)]
            assert row["status"] == "ok" and row["framework"] == "torch"
            assert all(_positive(row[k]) for k in ("samples_per_s", "tflop_per_s",
                                                   "jax_over_this")), row
        compiled = by[("torch", "torch_compile_max_autotune", case)]
        assert compiled["status"] == "skipped" and "--tiny" in compiled["reason"]
        for width in (4, 8):
            row = by[("roofline", f"jax_bfloat16_w{width}", case)]
            assert row["width"] == width and all(_positive(row[key]) for key in jax_keys), row
        assert all(_positive(by[("batch", f"batch_{b}", case)]["samples_per_s"]) for b in (2, 4))
        largest = by[("batch", "largest_batch", case)]
        assert largest["largest_batch"] == 4 and "batch cap" in largest["stopped_by"]
    for dtype in ("bfloat16", "float32"):
        row = by[("inference", f"tiled_{dtype}", "3d64")]
        assert all(_positive(row[k]) for k in ("seconds", "voxels_per_s", "kflop_per_voxel"))
    summary = [row for row in rows if row["part"] == "summary"]
    assert {row["row"] for row in summary} == set(gpu_suite.TARGETS)
    assert all(row["status"] == "ok" and row["meets_target"] is None for row in summary)
    printed = capsys.readouterr().out
    assert "not a measurement" in printed
    assert all(part in printed for part in (*gpu_suite.PARTS, "summary"))


@pytest.mark.slow
def test_gpu_suite_without_torch_skips_the_pytorch_rows_and_still_times_jax(tmp_path,
                                                                           monkeypatch):
    import dataclasses
    import sys

    from benchmarks import gpu_suite

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    out = tmp_path / "rows.jsonl"
    plan = dataclasses.replace(gpu_suite.TINY, cases=("2d32",))
    gpu_suite.run_part("torch", plan, out, 300, None, None)
    by = {row["row"]: row for row in _rows(out)}
    for name in ("jax_float32", "jax_bfloat16"):
        assert by[name]["status"] == "ok" and by[name]["flop_count"] == "xla"
        assert _positive(by[name]["samples_per_s"]) and _positive(by[name]["tflop_per_s"])
        assert by[name]["hbm_fraction"] is None  # the CPU has no known peak
    for name in gpu_suite.TORCH_LADDER:
        assert by[name]["status"] == "skipped" and "not installed" in by[name]["reason"]
        assert "samples_per_s" not in by[name]


def test_gpu_suite_a_failing_or_stopped_part_is_an_error_row_and_the_rest_still_run(
        tmp_path, monkeypatch, capsys):
    import json
    import sys

    from benchmarks import gpu_suite

    out = tmp_path / "rows.jsonl"

    def writes(row: dict) -> str:
        return f"open({str(out)!r}, 'a').write({json.dumps(row)!r} + '\\n')"

    commands = {  # stand-ins for the parts' processes
        "torch": "import sys; print('CUDA error: an illegal memory access'); sys.exit(3)",
        "roofline": writes({"part": "roofline", "row": "jax_bfloat16_w16", "case": "2d256",
                            "status": "ok", "width": 16, "hbm_fraction": 0.6})
                    + f"; open({str(out)!r}, 'a').write('{{\"half'); import time; time.sleep(60)",
        "inference": writes({"part": "inference", "row": "tiled_bfloat16", "case": "3d512",
                             "status": "ok", "seconds": 9.5, "kflop_per_voxel": 3.0}),
    }
    monkeypatch.setattr(gpu_suite, "part_command",
                        lambda name, args, out, seconds: [sys.executable, "-c", commands[name]])
    monkeypatch.setattr(gpu_suite, "part_seconds", lambda parts, left: 4.0)
    monkeypatch.setattr(gpu_suite, "MIN_PART_S", 1.0)
    gpu_suite.main(["--out", str(out), "--parts", "torch,roofline,inference"])
    rows = _rows(out)  # every line is whole: the half-written one is gone
    errors = {row["part"]: row for row in rows if row["status"] == "error"}
    assert "exit code 3: CUDA error: an illegal memory access" in errors["torch"]["error"]
    assert "time limit" in errors["roofline"]["error"]
    assert "samples_per_s" not in errors["torch"] and "samples_per_s" not in errors["roofline"]
    assert [r["part"] for r in rows if r["status"] == "ok" and r["part"] != "summary"] == [
        "roofline", "inference"]  # the stopped part's complete row is kept
    summary = {(r["row"], r["case"]): r for r in rows if r["part"] == "summary"}
    assert summary[("hbm_fraction", "2d256")]["meets_target"] is True
    assert summary[("hbm_fraction", "3d64")]["status"] == "skipped"
    assert summary[("jax_over_best_torch", "2d256")]["status"] == "skipped"
    assert summary[("tiled_seconds", "3d512")]["value"] == 9.5
    assert summary[("tiled_seconds", "3d512")]["meets_target"] is True
    assert "ERROR" in capsys.readouterr().out


def test_gpu_suite_failed_measurement_is_an_error_row_without_values():
    from benchmarks import gpu_suite

    def out_of_memory():
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory\n while trying to allocate")

    base = {"part": "roofline", "row": "jax_bfloat16_w64", "case": "3d64"}
    assert gpu_suite.guarded(base, out_of_memory) == [
        {**base, "status": "error",
         "error": "RuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate"}]
    assert gpu_suite.guarded(base, lambda: [{"samples_per_s": 2.0}]) == [
        {**base, "status": "ok", "samples_per_s": 2.0}]


def test_out_of_memory_errors_are_told_from_other_errors():
    from benchmarks.compare_torch import is_out_of_memory

    assert is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4.0G"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("INTERNAL: cuDNN error"))


@pytest.mark.parametrize("cost, expected", [
    ({"flops": 3.0, "bytes accessed": 10.0}, 10.0),           # current JAX: one dict
    ([{"bytes accessed": 4.0}, {"bytes accessed": 6.0}], 10.0),  # older JAX: one per computation
    ([{"bytes accessed": 7.0}], 7.0),
    (None, None), ([], None), ({"flops": 3.0}, None), ([{"flops": 3.0}], None),
    ({"bytes accessed": -1.0}, None), ({"bytes accessed": float("nan")}, None),
    ([{"bytes accessed": 4.0}, {"bytes accessed": -1.0}], None),  # not a partial sum
    ({"bytes accessed": "many"}, None),
])
def test_cost_analysis_bytes_are_read_from_every_shape_it_returns(cost, expected):
    from benchmarks import roofline

    assert roofline.cost_value(cost, "bytes accessed") == expected


def test_cost_analysis_of_a_compiled_step_counts_bytes_and_survives_a_backend_without_it():
    import jax
    import jax.numpy as jnp

    from benchmarks import roofline

    compiled = jax.jit(lambda x: 2 * x).lower(jnp.ones(1000, jnp.float32)).compile()
    assert roofline.cost_value(roofline.cost_of(compiled), "bytes accessed") >= 8000

    class NoAnalysis:
        def cost_analysis(self):
            raise NotImplementedError("no cost analysis on this backend")

    assert roofline.cost_of(NoAnalysis()) is None


def test_device_peaks_by_exact_kind_with_overrides_and_none_for_unknown_devices():
    from benchmarks import roofline

    sxm, pcie, h200 = (roofline.device_peaks(k) for k in (
        "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200"))
    assert (sxm.hbm_tbps, sxm.bf16_tflops) == (3.35, 989.0)
    assert (pcie.hbm_tbps, pcie.bf16_tflops) == (2.0, 756.0)
    assert (h200.hbm_tbps, h200.bf16_tflops) == (4.8, 989.0)
    unknown = roofline.device_peaks("NVIDIA H100 NVL")  # another variant: not guessed
    assert unknown.hbm_bytes_per_s is None and roofline.fraction(1e12, None) is None
    given = roofline.device_peaks("cpu", hbm_tbps=0.1, bf16_tflops=2.0)
    assert roofline.fraction(5e10, given.hbm_bytes_per_s) == pytest.approx(0.5)
    assert roofline.fraction(1e12, given.bf16_flop_per_s) == pytest.approx(0.5)
    assert roofline.device_peaks("NVIDIA H200", hbm_tbps=4.0).bf16_tflops == 989.0


@pytest.mark.parametrize("args, message", [
    (["--tiny"], "the following arguments are required: --out"),
    (["--out", "rows.jsonl", "--parts", "torch,gpu"], "unknown part 'gpu'; choose from torch,"),
    (["--out", "rows.jsonl", "--parts", ","], "no part in ','"),
    (["--out", "rows.jsonl", "--minutes", "0"], "expected a positive number"),
    (["--out", "rows.jsonl", "--hbm-tbps", "fast"], "expected a positive number"),
    (["--out", "rows.jsonl", "--peak-tflops", "nan"], "expected a positive number"),
    (["--out", "/nonexistent-folder/rows.jsonl"], "does not exist"),
    (["--out", "."], "is a folder"),
])
def test_gpu_suite_refuses_bad_arguments_in_one_line(args, message, tmp_path, monkeypatch,
                                                      capsys):
    from benchmarks import gpu_suite

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        gpu_suite.main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "rows.jsonl").exists()



def tiny_conditioned_run(tmp_path):
    """A regression run of 4 steps conditioned on (a, b), on 8 simulations of two 16² maps
    whose temperature depends on the density and on a: (workdir, eval.json)."""
    from experiments.studies import density_to_temp as study
    from fieldnet.data import h5format
    from tests.test_conditioning import tiny_conditioned_config

    rng = np.random.default_rng(0)
    sims = np.repeat(np.arange(8), 2)
    rho = np.exp(rng.normal(size=(16, 16, 16))).astype(np.float32)
    a = 1.0 + 0.1 * sims
    temperature = (1e4 * rho ** a[:, None, None]).astype(np.float32)
    path = h5format.write_arrays(tmp_path / "p.h5", {"density": rho, "temperature": temperature},
                                 ndim=2, box_size=10.0, source="test", sim_index=sims,
                                 units={"density": "mean", "temperature": "K"},
                                 params=np.stack([a, -a], 1).astype(np.float32),
                                 param_names=["a", "b"])
    return tmp_path / "run", study.train_and_evaluate(tiny_conditioned_config(path),
                                                      tmp_path / "run")


@pytest.mark.slow
def test_error_budget_reproduces_eval_json_and_averages_exactly(tmp_path):
    from benchmarks import error_budget
    from fieldnet import symmetry
    from fieldnet.data.dataset import transform_fields

    workdir, report = tiny_conditioned_run(tmp_path)
    run_dir = str(workdir)
    out = error_budget.budget([run_dir, run_dir], run_dir, batch=4)
    # the ratio in dex² is eval.json's in normalized units (a linear map of log10 T)
    want = report["test"]["mse"] / report["test"]["baseline_mse"]
    assert out["runs"][run_dir] == pytest.approx(want, rel=1e-5)
    assert out["ensemble"] == pytest.approx([want, want], rel=1e-5)   # one run twice
    assert out["conditioned"]["own"] == pytest.approx(want, rel=1e-5)
    assert out["conditioned"]["training_parameter_vectors"] == 4      # 4 training sims
    assert out["n_test_maps"] == 4 and out["n_test_boxes"] == 2
    marginalized = out["conditioned"]["marginalized"]
    assert np.isfinite(marginalized) and marginalized != pytest.approx(want, rel=1e-3)

    # the group average is exactly equivariant, which the model alone is not
    run = error_budget.Run(workdir, batch=4)
    average = lambda x: error_budget.group_averaged(run.predict, x, run.ds)  # noqa: E731
    g = symmetry.group_elements(2)[5]
    moved = transform_fields(run.x, run.ds.inputs, g, 1)
    np.testing.assert_allclose(average(moved), transform_fields(average(run.x), run.ds.targets,
                                                                g, 1), atol=1e-5)
    assert np.abs(run.predict(moved) - transform_fields(run.predict(run.x), run.ds.targets,
                                                        g, 1)).max() > 1e-4
    with pytest.raises(FieldnetError, match="--runs names no run"):
        error_budget.budget([], None)
