"""A flow-matching run end to end on a tiny conditioned dataset: training, the samples block
of eval.json and its figures, the test samples it keeps, resuming, and
`experiments.predict --samples`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from experiments.configs import density_to_temp_flow
from experiments.studies import density_to_temp as study
from fieldnet import rundir
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError
from fieldnet.eval import held_out
from fieldnet.inference import open_run
from tests.shared import made_once

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KEYS = {"n_samples", "power_ratio", "cross_corr_mean", "pdf_w1", "coverage_68",
               "coverage_95", "crps", "mse_of_mean"}
CALIBRATION_KEYS = {"pit_ks", "calibrated_coverage_68", "calibrated_coverage_95",
                    "calibrated_pit_ks", "spread"}


def make_data(path: Path) -> Path:
    """Six simulations of four 16^2 maps; the temperature depends on the density, its
    neighbours, the simulation's parameter a, and on noise the density does not fix."""
    rng = np.random.default_rng(0)
    sims = np.repeat(np.arange(6), 4)
    a = (1.0 + 0.1 * sims).astype(np.float32)
    rho = np.exp(rng.normal(size=(24, 16, 16))).astype(np.float32)
    t = 1e4 * (rho + np.roll(rho, 1, 1)) ** (0.5 * a[:, None, None]) * np.exp(
        0.3 * rng.normal(size=rho.shape))
    return h5format.write_arrays(path, {"density": rho, "temperature": t.astype(np.float32)},
                                 ndim=2, box_size=10.0, source="test", sim_index=sims,
                                 units={"density": "mean", "temperature": "K"},
                                 params=a[:, None], param_names=["a"])


def tiny_flow_config(data_path):
    c = density_to_temp_flow.get_config("quick")
    c.data.path = str(data_path)
    c.data.crop_size = 16
    c.data.split_fractions = (4 / 6, 1 / 6, 1 / 6)
    c.data.condition_on = "a"
    c.train.num_steps = 16
    c.train.warmup_steps = 2
    c.train.eval_every = c.train.checkpoint_every = 8
    c.train.progress = False
    c.eval.n_samples, c.eval.sample_steps, c.eval.batch_size = 4, 3, 8
    c.eval.calibration_maps = 4     # the validation split's 4 maps
    return c


@pytest.fixture(scope="module")
def flow_run():
    """The tiny flow run, trained and evaluated once for all workers (`made_once`):
    (config, workdir, eval.json)."""
    folder = made_once("flow_run", lambda folder: study.train_and_evaluate(
        tiny_flow_config(make_data(folder / "data.h5")), folder / "run"))
    workdir = folder / "run"
    return (tiny_flow_config(folder / "data.h5"), workdir,
            json.loads(rundir.evaluation(workdir).read_text()))


@pytest.mark.slow
def test_flow_run_writes_the_samples_block_and_its_figures(flow_run):
    _, workdir, report = flow_run
    saved = json.loads((workdir / "eval.json").read_text())
    assert saved == json.loads(json.dumps(report))
    test = saved["test"]
    assert SAMPLE_KEYS | CALIBRATION_KEYS == set(test["samples"])
    samples = test["samples"]
    assert samples["n_samples"] == 4
    assert len(samples["power_ratio"]) == len(samples["cross_corr_mean"]) == len(test["k"])
    assert 0 <= samples["coverage_68"] <= samples["coverage_95"] <= 1
    assert samples["crps"] > 0 and samples["pdf_w1"] >= 0
    # the usual keys are of the samples' mean, so they compare with a regression run's
    assert test["mse"] == pytest.approx(samples["mse_of_mean"], rel=1e-9)
    assert test["cross_corr"] == pytest.approx(samples["cross_corr_mean"], abs=1e-5)
    assert {"mse", "baseline_mse", "pixel_corr", "pdf_w1", "per_box"} <= set(test)
    figures = {p.name for p in (workdir / "figures").glob("*.png")}
    assert {"samples.png", "samples_power.png", "calibration.png", "samples_std.png",
            "maps.png", "power.png", "calibration_fit.png"} <= figures
    assert saved["train_steps"] == 16


@pytest.mark.slow
def test_kept_test_samples_give_back_the_samples_block(flow_run):
    config, workdir, report = flow_run
    run = open_run(workdir)
    with study.open_dataset(config, workdir) as ds:
        test = ds.read("test")
        with h5py.File(rundir.test_samples(workdir)) as f:
            kept = f["samples/temperature"]
            assert kept.shape == (len(test["y"]), 4, 16, 16)
            assert kept.attrs["units"] == "K"
            np.testing.assert_array_equal(f["sim_index"][...], test["sim_index"])
            np.testing.assert_allclose(f["mean/temperature"][...], kept[...].mean(axis=1),
                                       rtol=1e-5)
        samples = held_out.read_test_samples(rundir.test_samples(workdir), ds)
        again = run.objective.evaluate(run.model, ds, config, samples).summary["samples"]
        with pytest.raises(FieldnetError, match=r"^samples must be \(N, S, \*spatial, C\) = "
                                                r"\(4, S, 16, 16, 1\) for the test split, got "
                                                r"\(4, 4, 16, 16\)$"):
            run.objective.evaluate(run.model, ds, config, samples[..., 0])
    saved = report["test"]["samples"]
    assert again["n_samples"] == saved["n_samples"]
    for key in ("coverage_68", "coverage_95", "crps", "mse_of_mean", "pdf_w1"):
        assert again[key] == pytest.approx(saved[key], rel=1e-5, abs=1e-7), key
    for key in ("power_ratio", "cross_corr_mean"):
        np.testing.assert_allclose(again[key], saved[key], rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_rerun_resumes_and_draws_the_same_samples(flow_run, tmp_path):
    config, workdir, report = flow_run
    workdir = shutil.copytree(workdir, tmp_path / "run")  # the shared run stays as it is
    again = study.train_and_evaluate(config, workdir)
    assert again["test"]["samples"] == report["test"]["samples"]


@pytest.mark.slow
def test_calibration_is_fitted_on_validation_maps_and_applied_to_samples(flow_run, tmp_path,
                                                                         monkeypatch):
    """The run's spread is the fit to the samples of its validation maps (drawn with the
    validation seed; the test split is not read), eval.json reports it with the calibrated
    coverage of the kept test samples, and Run.sample and predict_file apply it."""
    from experiments.predict import FLAGS
    from fieldnet.eval import calibration
    from fieldnet.inference import predict_file

    config, workdir, report = flow_run
    block = report["test"]["samples"]
    run = open_run(workdir)
    assert list(run.calibrations) == ["temperature"]
    fitted = run.calibrations["temperature"]
    assert block["spread"] == fitted.spread and fitted.n_samples == config.eval.n_samples
    with study.open_dataset(config, workdir) as ds:
        read = []
        original = ds.read
        monkeypatch.setattr(ds, "read", lambda which: read.append(which) or original(which))
        again = run.objective.calibrate(run.model, ds, config)["temperature"]
        monkeypatch.undo()
        assert len(read) == 1 and not isinstance(read[0], str)
        val = {int(r.sample) for r in ds.splits["val"]}
        assert set(np.asarray(read[0]).tolist()) <= val
        assert again.spread == pytest.approx(fitted.spread, rel=1e-6)
        test = ds.read("test")
        kept = held_out.read_test_samples(rundir.test_samples(workdir), ds)[..., 0]
        expected = calibration.summary(kept, test["y"][..., 0], fitted)
        for key in ("calibrated_coverage_68", "calibrated_coverage_95", "pit_ks"):
            assert block[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
        raw = run.sample(test["x"][:2], 3, cond=test["cond"][:2], calibrated=False)
        calibrated = run.sample(test["x"][:2], 3, cond=test["cond"][:2])
    np.testing.assert_allclose(calibrated[..., 0], calibration.apply(fitted, raw[..., 0]),
                               rtol=1e-6, atol=1e-6)
    # predict_file: log10 T is affine in the normalized space, so the calibrated samples'
    # deviations from their mean are the raw ones times the spread
    written = {}
    for name, calibrated in (("raw", False), ("calibrated", True)):
        out = tmp_path / f"{name}.h5"
        predict_file(workdir, config.data.path, out, samples=3, steps=2, tile=16,
                     calibrated=calibrated, progress=False)
        with h5py.File(out) as f:
            written[name] = np.log10(f["samples/temperature"][...])
            assert ("spread" in f["samples/temperature"].attrs["description"]) == calibrated
    raw, widened = written["raw"], written["calibrated"]
    np.testing.assert_allclose(widened.mean(axis=1), raw.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(widened - widened.mean(axis=1, keepdims=True),
                               fitted.spread * (raw - raw.mean(axis=1, keepdims=True)),
                               atol=1e-4)
    with pytest.raises(FieldnetError, match=r"^--samples 1: .* is calibrated, .* draw at "
                                            r"least 2, or take them uncalibrated "
                                            r"\(--uncalibrated\)$"):
        predict_file(workdir, config.data.path, tmp_path / "one.h5", samples=1,
                     argument_names=FLAGS, progress=False)
    assert not (tmp_path / "one.h5").exists()


@pytest.mark.slow
def test_an_offset_calibration_is_fitted_saved_and_applied(flow_run, tmp_path):
    """eval.calibration_method = "offset" reaches the fit, and a run whose calibration.json
    holds an offset applies it: each sample moves by one constant over its map."""
    from fieldnet.eval import calibration

    config, workdir, _ = flow_run
    workdir = shutil.copytree(workdir, tmp_path / "run")   # the shared run stays as it is
    config = config.copy_and_resolve_references()
    config.eval.calibration_method = "offset"
    run = open_run(workdir)
    with study.open_dataset(config, workdir) as ds:
        fitted = run.objective.calibrate(run.model, ds, config)
        test = ds.read("test")
    assert fitted["temperature"].method == "offset"
    calibration.save_fields(rundir.calibration(workdir), fitted)
    run = open_run(workdir)
    assert run.calibrations == fitted
    raw = run.sample(test["x"][:2], 3, cond=test["cond"][:2], calibrated=False)[..., 0]
    calibrated = run.sample(test["x"][:2], 3, cond=test["cond"][:2])[..., 0]
    np.testing.assert_allclose(calibrated, calibration.apply(fitted["temperature"], raw),
                               rtol=1e-6, atol=1e-6)
    moved = calibrated - raw
    np.testing.assert_allclose(moved, np.broadcast_to(moved[..., :1, :1], moved.shape),
                               atol=1e-5)
    np.testing.assert_allclose(calibrated.mean(axis=1), raw.mean(axis=1), atol=1e-5)


def predict(*args):
    return subprocess.run([sys.executable, "-m", "experiments.predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_predict_samples_writes_samples_mean_and_std(flow_run, tmp_path):
    config, workdir, _ = flow_run
    out = tmp_path / "samples.h5"
    proc = predict("--workdir", str(workdir), "--input", config.data.path, "--output", str(out),
                   "--samples", "3", "--steps", "2", "--tile", "8", "--batch", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(out) as f, h5py.File(config.data.path) as src:
        n, spatial = src["fields/density"].shape[0], src["fields/density"].shape[1:]
        samples = f["samples/temperature"][...]
        assert samples.shape == (n, 3, *spatial)
        assert f["mean/temperature"].shape == f["std/temperature"].shape == (n, *spatial)
        np.testing.assert_allclose(f["mean/temperature"][...], samples.mean(axis=1), rtol=1e-5)
        np.testing.assert_allclose(f["std/temperature"][...], samples.std(axis=1, ddof=1),
                                   rtol=1e-4)
        assert np.all(samples > 0) and np.all(f["std/temperature"][...] > 0)
        assert f["samples/temperature"].attrs["units"] == "K"
        assert f.attrs["run"] == str(workdir.absolute()) and f.attrs["checkpoint_step"] == 16
        assert len(f.attrs["config_sha256"]) == 64
        np.testing.assert_array_equal(f["sim_index"][...], src["sim_index"][...])
    # one tile per map: the 3 samples of a map are integrated together, as drawn apart
    together = tmp_path / "together.h5"
    proc = predict("--workdir", str(workdir), "--input", config.data.path, "--output",
                   str(together), "--samples", "3", "--steps", "2", "--tile", "64",
                   "--batch", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(out) as f, h5py.File(together) as g:
        np.testing.assert_allclose(g["samples/temperature"][...], f["samples/temperature"][...],
                                   rtol=1e-4)


@pytest.mark.slow
def test_predict_of_a_flow_run_needs_samples(flow_run, tmp_path):
    config, workdir, _ = flow_run
    proc = predict("--workdir", str(workdir), "--input", config.data.path, "--output",
                   str(tmp_path / "x.h5"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {workdir} is a generative run (model.objective='flow'): pass --samples N "
        "(a positive integer), got None"]
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("key,value,message", [
    ("model.objective", "diffusion", "model.objective must be one of"),
    ("train.loss", "mse", "model.objective='flow' trains with train.loss='flow_matching'"),
    ("eval.sample_steps", 0, "eval.sample_steps must be an integer ≥ 1"),
    ("eval.calibration_method", "quantile",
     "eval.calibration_method must be one of spread, offset, got 'quantile'"),
    ("model.global_residual", True, "without global_residual"),
])
def test_flow_config_errors_are_one_line_before_any_work(tmp_path, key, value, message):
    config = tiny_flow_config(tmp_path / "absent.h5")
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(FieldnetError, match=message):
        study.check_config(config)
