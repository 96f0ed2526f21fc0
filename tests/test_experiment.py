"""The density -> temperature job end to end, on a tiny simulated dataset."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.configs import density_to_temp
from experiments.studies import density_to_temp as experiment
from experiments.studies import sweep
from fieldnet import rundir
from fieldnet.errors import FieldnetError
from tests.shared import with_shared_data

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = {"mse", "baseline_mse", "pixel_corr", "k", "cross_corr", "power_ratio",
                 "baseline_cross_corr"}


def tiny_config(tmp_path=None):
    """The quick config at 6 simulations of 32² and 20 steps, on tmp_path/data/sim.h5
    (simulated on first use), or with None on the session's shared simulation."""
    c = density_to_temp.get_config("quick")
    c.simulate.n_sims = 6
    c.simulate.grid = 32
    c.train.num_steps = 20
    c.train.eval_every = c.train.checkpoint_every = 10
    c.train.progress = False
    if tmp_path is None:
        return with_shared_data(c)
    c.data.path = str(tmp_path / "data" / "sim.h5")
    return c


# the notebooks test's sweep of `tiny_config()`; its first row is conftest's `tiny_run`
TINY_SWEEP = {"periodic": {}, "zero": {"model.padding": "zero"}}


def tiny_run_config():
    """The config of conftest's `tiny_run`: `TINY_SWEEP`'s periodic row."""
    return sweep.variation_config(tiny_config(), "periodic", TINY_SWEEP["periodic"])


@pytest.fixture
def run(tiny_run):
    config, workdir, report = tiny_run
    return config.copy_and_resolve_references(), workdir, report


@pytest.mark.slow
def test_writes_the_documented_workdir(run):
    _, workdir, report = run
    for name in ("config.json", "metrics.jsonl", "eval.json", "normalizer.json"):
        assert (workdir / name).is_file(), name
    assert (workdir / "checkpoints" / "best").is_dir()
    figures = {p.name for p in (workdir / "figures").glob("*.png")}
    assert {"maps.png", "power.png", "cross_corr.png", "pdf.png", "phase_diagram.png",
            "per_box.png", "training.png"} <= figures
    saved = json.loads((workdir / "eval.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert CONTRACT_KEYS <= set(saved["test"])
    assert saved["train_steps"] == 20 and saved["n_test"] >= 1
    assert saved["n_train_sims"] == 4      # 6 simulations: 4 train, 1 val, 1 test
    test = saved["test"]
    assert len(test["k"]) == len(test["cross_corr"]) == len(test["power_ratio"])
    assert 0 < test["mse"] < 10 and -1 <= test["pixel_corr"] <= 1
    boxes = test["per_box"]
    assert len(boxes) == test["n_test_boxes"] >= 1
    assert all(set(b) == {"sim", "mse", "baseline_mse", "pixel_corr"} for b in boxes)
    if len(boxes) == 1:
        assert test["mse_err"] is None and boxes[0]["mse"] == pytest.approx(test["mse"])


@pytest.mark.slow
def test_rerun_resumes_without_retraining(run, tmp_path):
    import shutil

    config, workdir, report = run
    workdir = shutil.copytree(workdir, tmp_path / "run")  # the shared run stays as it is
    again = experiment.train_and_evaluate(config, workdir)
    assert again["test"]["mse"] == pytest.approx(report["test"]["mse"], rel=1e-6)


@pytest.mark.slow
def test_workdir_of_another_config_is_refused(run):
    config, workdir, _ = run
    other = config.copy_and_resolve_references()
    other.model.width = 4
    with pytest.raises(FieldnetError, match="different config.*model.width"):
        rundir.prepare(other, workdir)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.density_to_temp", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_missing_data_is_one_line(tmp_path):
    config = "experiments/configs/density_to_temp_camels.py"
    proc = cli(f"--config={config}", f"--config.data.path={tmp_path}/nope.h5",
               f"--workdir={tmp_path}/run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path}/nope.h5: no such data file "
                                                "(data.path)"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_unknown_config_key_fails_at_start(tmp_path):
    proc = cli("--config=experiments/configs/density_to_temp.py", "--config.train.num_stepz=3",
               f"--workdir={tmp_path}/run")
    assert proc.returncode != 0
    assert "num_stepz" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_predict_cli_matches_the_evaluation(run, tmp_path):
    """Tiled prediction of the run's data file through the command line, in physical units."""
    import h5py
    import numpy as np

    config, workdir, _ = run
    out = tmp_path / "pred.h5"
    args = ["--workdir", str(workdir), "--input", config.data.path, "--output", str(out),
            "--tile", "16", "--batch", "4"]
    proc = subprocess.run([sys.executable, "-m", "experiments.predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(out) as f, h5py.File(config.data.path) as src:
        pred = f["fields/temperature"][...]
        assert pred.shape == src["fields/temperature"].shape
        assert f.attrs["run"] == str(workdir.absolute())
        assert f.attrs["checkpoint_step"] > 0 and len(f.attrs["config_sha256"]) == 64
        assert f["fields/temperature"].attrs["units"] == src["fields/temperature"].attrs["units"]
        true = src["fields/temperature"][...]
    # A trained model's temperatures correlate with the truth in log space.
    assert np.corrcoef(np.log10(pred).ravel(), np.log10(true).ravel())[0, 1] > 0.3
    again = subprocess.run([sys.executable, "-m", "experiments.predict", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "experiments.predict", "--workdir",
                              str(tmp_path), "--input", config.data.path, "--output",
                              str(tmp_path / "x.h5")], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2 and "not a trained run folder" in missing.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.slow
def test_predict_names_bad_input_and_leaves_runs_alone(run, tmp_path):
    import os
    import shutil

    import numpy as np

    from fieldnet.data import h5format
    from fieldnet.inference import predict_file

    config, workdir, _ = run
    untrained = tmp_path / "untrained"
    shutil.copytree(workdir, untrained, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(FieldnetError, match="no checkpoints"):
        predict_file(untrained, config.data.path, tmp_path / "a.h5", progress=False)
    assert not rundir.checkpoints(untrained).exists()

    info = h5format.read_info(config.data.path)
    rho = np.ones((2, *info.fields["density"].shape[1:]), np.float32)
    rho[1, 3, 4] = np.nan
    bad = h5format.write_arrays(tmp_path / "nan.h5", {"density": rho}, ndim=2, box_size=25.0,
                                source="test", sim_index=[0, 1], units={"density": "mean"})
    with pytest.raises(FieldnetError, match=rf"{bad}:fields/density\[1\]: 1 NaN/Inf"):
        predict_file(workdir, bad, tmp_path / "b.h5", progress=False)
    assert not (tmp_path / "b.h5").exists()

    good = h5format.write_arrays(tmp_path / "ones.h5", {"density": rho[:1]}, ndim=2,
                                 box_size=25.0, source="test", sim_index=[0],
                                 units={"density": "mean"})
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        predict_file(workdir, "ones.h5", "c.h5", progress=False)
    finally:
        os.chdir(here)
    with h5format.open_file(tmp_path / "c.h5") as f:
        assert f.attrs["source_file"] == str(good)


@pytest.mark.slow
def test_predict_samples_of_a_regression_run_is_one_line(run, tmp_path):
    config, workdir, _ = run
    proc = subprocess.run([sys.executable, "-m", "experiments.predict", "--workdir", str(workdir),
                           "--input", config.data.path, "--output", str(tmp_path / "s.h5"),
                           "--samples", "4"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --samples: {workdir} is a regression run (model.objective='regression'); it "
        "predicts one field per map, not samples"]
    assert not (tmp_path / "s.h5").exists()
