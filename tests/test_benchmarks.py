"""The benchmark helpers: the PyTorch reference is the same function, the scaling fit, the
halofit benchmark's input checks."""

import numpy as np
import pytest
from flax import nnx

from benchmarks import scaling_plot
from fieldnet import models


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
                 "--torch-compile", "--batch-sweep", "--out"):
        assert flag in out
    with pytest.raises(SystemExit, match="PyTorch is not installed; pip install torch"):
        compare_torch.main(["--cases", "2d64"])


@pytest.mark.parametrize("args, message", [
    (["--box", "abc"], "comma-separated floats"),
    (["--steps", "10,0"], "must be positive"),
    (["--box", "64"], "below the fundamental"),
    (["--kmin", "0.5", "--kmax", "0.2"], "--kmin < --kmax"),
    (["--out", "/nonexistent-folder/x.jsonl"], "does not exist"),
])
def test_halofit_benchmark_refuses_bad_settings_before_running(capsys, args, message):
    """Every setting is checked before the first (minutes-long) simulation starts."""
    from benchmarks import halofit

    with pytest.raises(SystemExit) as exit_info:
        halofit.main(args)
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


@pytest.mark.parametrize("args, message", [
    (["--loader", "thread,grian"], "--loader takes comma-separated names from ['grain', "
                                   "'thread'], got 'thread,grian'"),
    (["--workers", "0,-1"], "--workers takes comma-separated integers ≥ 0, got '0,-1'"),
    (["--workers", "two"], "--workers takes comma-separated integers ≥ 0, got 'two'"),
    (["--cases", "4d"], "--cases takes comma-separated names from ['2d', '3d', '3d-raw']"),
    (["--loader", "thread", "--workers", "2"], "its --workers must include 0"),
    (["--chunk", "256"], "--chunk 256 is larger than the 128³ boxes"),
    (["--steps", "0"], "expected a positive integer"),
])
def test_loader_benchmark_refuses_bad_settings_before_running(capsys, args, message):
    """Checked before any file is written or worker started."""
    from benchmarks import loader_throughput

    with pytest.raises(SystemExit) as exit_info:
        loader_throughput.main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
