"""python -m data_tools.simulate: help, a tiny valid file, refusal to overwrite, seeding."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_tools import simulate
from fieldnet import cli
from fieldnet.cli import run
from fieldnet.data import h5format
from tests.shared import made_once

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n-sims", "2", "--grid", "16", "--box", "20", "--slabs", "2", "--seed", "5",
        "--quiet"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_tools.simulate", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--n-sims" in result.stdout and "--overwrite" in result.stdout


def _write_tiny(folder):
    result = run_cli("--out", str(folder / "tiny.h5"), *TINY)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def tiny_file():
    """A tiny 2D file written by the command line, once for all workers (`made_once`)."""
    return made_once("simulate_cli_tiny", _write_tiny) / "tiny.h5"


def test_tiny_run_writes_a_valid_2d_file(tiny_file):
    info = h5format.read_info(tiny_file)
    n_maps = 2 * 3 * 2  # sims x axes x slabs
    assert info.ndim == 2 and info.box_size == 20.0 and info.source == "data_tools.simulate"
    assert info.fields["density"].shape == (n_maps, 16, 16)
    assert info.fields["temperature"].shape == (n_maps, 16, 16)
    assert info.fields["density"].units == "M_sun/h"
    assert info.fields["temperature"].units == "K"
    assert all(f.description for f in info.fields.values())
    assert info.fields["density"].log_floor > 0 and info.fields["temperature"].log_floor > 0
    assert info.sim_index.tolist() == [0] * 6 + [1] * 6
    assert info.param_names == list(simulate.PARAM_NAMES)
    assert info.params.shape == (n_maps, len(simulate.PARAM_NAMES))
    with h5py.File(tiny_file) as f:
        density = f["fields/density"][...]
        temperature = f["fields/temperature"][...]
        omega_m = f["params"][0, 0]
    for column, (low, high) in enumerate(simulate.PARAM_RANGES.values()):
        assert np.all((info.params[:, column] >= low) & (info.params[:, column] <= high))
    # the three projections of a box hold its total mass rho_crit Om L^3 each
    box_mass = 2.77536627e11 * omega_m * 20.0**3
    np.testing.assert_allclose(density[:2].sum(), box_mass, rtol=1e-4)
    assert np.all(temperature > 0)


def test_rerun_without_overwrite_fails_with_one_line(tiny_file, capsys):
    before = tiny_file.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        run(simulate.main, ["--out", str(tiny_file), *TINY], flags=cli.OVERWRITE_FLAG)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--overwrite" in lines[0]
    assert tiny_file.stat().st_mtime_ns == before


@pytest.mark.parametrize("args, message", [
    (["--grid", "24"], "power of 2"),
    (["--grid", "8"], "power of 2"),
    (["--box", "-5"], "positive"),
    (["--n-sims", "0"], "at least 1"),
    (["--slabs", "3"], "divide"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_bad_input_exits_2_with_a_reason(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run(simulate.main, ["--out", str(tmp_path / "x.h5"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_unwritable_folder_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(simulate.main, ["--out", str(tmp_path / "missing" / "x.h5"), "--grid", "16"])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow  # two 3D simulations
def test_same_seed_gives_identical_arrays_3d(tmp_path):
    kwargs = dict(n_sims=1, grid=16, box=20.0, seed=11, dim=3, progress=False)
    first = simulate.simulate_dataset(tmp_path / "a.h5", **kwargs)
    second = simulate.simulate_dataset(tmp_path / "b.h5", **kwargs)
    other = simulate.simulate_dataset(tmp_path / "c.h5", **{**kwargs, "seed": 12})
    stepped = simulate.simulate_dataset(tmp_path / "d.h5", **{**kwargs, "n_steps": 4})
    with h5py.File(first) as a, h5py.File(second) as b, h5py.File(other) as c, \
            h5py.File(stepped) as d:
        assert not np.array_equal(a["fields/density"][...], d["fields/density"][...])
        assert a["fields/density"].shape == (1, 16, 16, 16)
        assert a["fields/density"].attrs["units"] == "mean density"
        for name in ("density", "temperature"):
            assert np.array_equal(a[f"fields/{name}"][...], b[f"fields/{name}"][...])
            assert not np.array_equal(a[f"fields/{name}"][...], c[f"fields/{name}"][...])
        np.testing.assert_allclose(a["fields/density"][...].mean(), 1.0, rtol=1e-5)
        assert np.array_equal(a["params"][...], b["params"][...])
