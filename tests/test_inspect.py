import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from data_tools import inspect
from fieldnet.data import h5format


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_tools.inspect", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture
def fieldnet_file(tmp_path):
    rho = np.random.default_rng(0).lognormal(size=(4, 8, 8)).astype(np.float32)
    return h5format.write_arrays(tmp_path / "f.h5", {"density": rho, "temperature": 1e4 * rho},
                                 ndim=2, box_size=25.0, source="test", sim_index=[0, 0, 1, 1],
                                 units={"density": "1", "temperature": "K"},
                                 params=np.ones((4, 2)), param_names=["Omega_m", "sigma_8"])


def test_fieldnet_file_summary(fieldnet_file, capsys):
    summary = inspect.summarize(fieldnet_file)
    assert summary["fieldnet"]["samples"] == 4 and summary["fieldnet"]["simulations"] == 2
    with h5py.File(fieldnet_file) as f:
        rho = f["fields/density"][...]
    d = summary["datasets"]["fields/density"]
    assert d["shape"] == [4, 8, 8] and d["dtype"] == "float32" and d["attrs"]["units"] == "1"
    assert d["min"] == pytest.approx(rho.min()) and d["max"] == pytest.approx(rho.max())
    assert d["mean"] == pytest.approx(rho.mean(), rel=1e-6) and d["nan"] == 0
    assert inspect.main([str(fieldnet_file)]) == 0
    printed = capsys.readouterr().out
    assert "4 samples from 2 simulations, grid 8x8, box 25 Mpc/h" in printed
    assert "fields/temperature  float32 (4, 8, 8)  [K]" in printed


def test_rectangular_box_shows_each_side(tmp_path):
    path = h5format.write_arrays(tmp_path / "r.h5", {"density": np.ones((1, 8, 4))}, ndim=2,
                                 box_size=(20.0, 10.0), source="test", sim_index=[0],
                                 units={"density": "1"})
    summary = inspect.summarize(path)
    assert list(summary["fieldnet"]["box_size"]) == [20.0, 10.0]
    assert "grid 8x4, box 20x10 Mpc/h" in inspect.format_summary(summary)


def test_any_hdf5_with_nan_inf_and_blocks(tmp_path, monkeypatch, capsys):
    path = tmp_path / "raw.h5"
    values = np.arange(1000, dtype=np.float64).reshape(100, 10)
    values[3, 3], values[50, 1], values[99, 9] = np.nan, np.inf, -np.inf
    with h5py.File(path, "w") as f:
        f["PartType0/density"] = values
        f["PartType0"].attrs["note"] = "gas"
        f["count"] = np.int64(7)
        f.attrs["BoxSize"] = 25000.0
    monkeypatch.setattr(inspect, "BLOCK_VALUES", 30)   # several blocks
    summary = inspect.summarize(path)
    d = summary["datasets"]["PartType0/density"]
    finite = values[np.isfinite(values)]
    assert (d["nan"], d["inf"]) == (1, 2)
    assert d["min"] == finite.min() and d["max"] == finite.max()
    assert d["mean"] == pytest.approx(finite.mean())
    assert summary["datasets"]["count"]["max"] == 7
    assert summary["groups"]["PartType0"] == {"note": "gas"}
    assert summary["attrs"] == {"BoxSize": 25000.0}
    assert inspect.main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"]["PartType0/density"]["inf"] == 2


def test_missing_and_corrupt_files_fail_in_one_line(tmp_path, fieldnet_file):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(fieldnet_file.read_bytes()[:1500])
    for path, message in ((tmp_path / "nope.h5", "nope.h5: no such file"),
                          (broken, "broken.h5: not a readable HDF5 file")):
        result = run_cli(path)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
