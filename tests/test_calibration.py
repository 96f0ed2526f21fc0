"""The spread calibration of a generative run's samples: it recovers the spread that makes
Gaussian samples exchangeable with the truth, keeps the samples' mean, commutes with the
grid's symmetries, round-trips through JSON, and its figure shows the curves it computes."""

import doctest
import json
import math

import numpy as np
import pytest

from experiments.configs import density_to_temp_flow_few
from fieldnet import cli, symmetry
from fieldnet.errors import FieldnetError
from fieldnet.eval import calibration, metrics
from fieldnet.figures import calibration as calibration_figures
from fieldnet.figures.samples import NOMINAL_LEVELS
from tests.float32 import EPS

N_MAPS, N_SAMPLES, SIZE = 16, 8, 32


def gaussian_ensemble(width: float, seed: int = 0):
    """Truth mu + e and samples mu + width * e_s per pixel (e, e_s standard normal): too
    narrow for width < 1. The calibrated spread a makes the truth exchangeable with the
    samples: Var(y - m) / (1 + 1/S) = Var(x' - m) / (1 - 1/S) with m their mean, so
    a^2 = (1 + width^2 / S) / ((1 + 1/S) width^2)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(N_MAPS, SIZE, SIZE))
    truth = mu + rng.normal(size=mu.shape)
    samples = mu[:, None] + width * rng.normal(size=(N_MAPS, N_SAMPLES, SIZE, SIZE))
    exact = math.sqrt((1 + width**2 / N_SAMPLES) / ((1 + 1 / N_SAMPLES) * width**2))
    return samples.astype(np.float32), truth.astype(np.float32), exact


def coverage_noise(level: float) -> float:
    """The binomial standard error of a coverage over the test's pixels."""
    return math.sqrt(level * (1 - level) / (N_MAPS * SIZE * SIZE))


@pytest.mark.parametrize("width", [0.5, 2.0])
def test_fit_recovers_the_exchangeable_spread(width):
    samples, truth, exact = gaussian_ensemble(width)
    cal = calibration.fit(samples, truth)
    # coverage noise of ~0.004 over a slope d(coverage)/d(log a) of ~0.5: ~1% in a
    assert cal.spread == pytest.approx(exact, rel=0.05)
    raw = metrics.interval_coverage(samples, truth, calibration.REPORT_LEVELS)
    assert cal.raw_coverage == pytest.approx(tuple(raw))
    levels = np.asarray(calibration.REPORT_LEVELS)
    assert (raw < levels - 0.05).all() if width < 1 else (raw > levels + 0.03).all()
    for level, got in zip(calibration.REPORT_LEVELS, cal.calibrated_coverage, strict=True):
        assert abs(got - level) < 5 * coverage_noise(level)
    assert (cal.method, cal.n_maps, cal.n_samples) == ("spread", N_MAPS, N_SAMPLES)
    assert cal.levels == calibration.FIT_LEVELS


def test_a_calibrated_ensemble_keeps_a_spread_of_one():
    samples, truth, exact = gaussian_ensemble(1.0)
    assert calibration.fit(samples, truth).spread == pytest.approx(exact, rel=0.05)
    assert exact == pytest.approx(1.0, abs=1e-12)


def test_apply_keeps_the_mean_and_scales_the_deviations():
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth)
    out = calibration.apply(cal, samples)
    assert out.shape == samples.shape and out.dtype == np.float32
    scale = np.abs(samples).max() * cal.spread
    tol = 8 * EPS * scale   # a mean of 8 float32 terms, then a product and a sum
    np.testing.assert_allclose(out.mean(axis=1), samples.mean(axis=1), rtol=0, atol=tol)
    deviation = samples - samples.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out - out.mean(axis=1, keepdims=True), cal.spread * deviation,
                               rtol=0, atol=2 * tol)
    # the mean's MSE is the raw samples' own
    assert metrics.mse(out.mean(axis=1), truth) == pytest.approx(
        metrics.mse(samples.mean(axis=1), truth), rel=1e-5)


@pytest.mark.parametrize("shift", [(0, 0), (5, -3)])
def test_calibration_commutes_with_the_dihedral_group_and_shifts(shift):
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth)
    calibrated = calibration.apply(cal, samples)
    tol = 8 * EPS * np.abs(samples).max() * cal.spread
    for g in symmetry.group_elements(2):
        def move(x, spatial_from, g=g):
            x = symmetry.apply(x, g, first_spatial_axis=spatial_from)
            return np.roll(x, shift, axis=(spatial_from, spatial_from + 1))

        moved_samples, moved_truth = move(samples, 2), move(truth, 1)
        np.testing.assert_allclose(calibration.apply(cal, moved_samples), move(calibrated, 2),
                                   rtol=0, atol=tol)
        # the fit sees the pixels through their ranks only: the same factor, exactly
        assert calibration.fit(moved_samples, moved_truth).spread == cal.spread


def test_pit_ks_of_flat_and_one_sided_histograms():
    samples, truth, _ = gaussian_ensemble(1.0)
    flat = calibration.pit_ks(samples, truth)
    # the largest of S + 1 = 9 cumulative deviations of a multinomial over 16384 pixels
    assert flat < 5 * math.sqrt(0.25 / (N_MAPS * SIZE * SIZE))
    below = np.broadcast_to(truth[:, None] + 1.0, samples.shape)   # every sample above
    assert calibration.pit_ks(below, truth) == pytest.approx(1 - 1 / (N_SAMPLES + 1))
    assert calibration.pit_histogram(below, truth)[0] == 1.0
    narrow, _, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(narrow, truth)
    assert calibration.pit_ks(calibration.apply(cal, narrow), truth) < \
        calibration.pit_ks(narrow, truth)


def test_summary_has_the_raw_and_calibrated_keys():
    samples, truth, _ = gaussian_ensemble(0.5)
    assert set(calibration.summary(samples, truth)) == {"coverage_68", "coverage_95", "pit_ks"}
    cal = calibration.fit(samples, truth)
    block = calibration.summary(samples, truth, cal)
    assert block["spread"] == cal.spread
    assert (block["coverage_68"], block["coverage_95"]) == cal.raw_coverage
    assert (block["calibrated_coverage_68"], block["calibrated_coverage_95"]) == \
        cal.calibrated_coverage
    assert block["calibrated_pit_ks"] < block["pit_ks"]
    json.dumps(block, allow_nan=False)


def test_calibration_round_trips_through_json(tmp_path):
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth, levels=(0.68, 0.95))
    path = calibration.save(tmp_path / "calibration.json", cal)
    assert calibration.load(path) == cal
    assert json.loads(path.read_text())["levels"] == [0.68, 0.95]
    assert calibration.from_dict(calibration.to_dict(cal)) == cal


@pytest.mark.parametrize("change,message", [
    ({"method": "quantile"}, "unknown calibration method"),
    ({"spread": -1.0}, "positive number"),
    ({"spread": float("nan")}, "positive number"),
    ({"levels": [0.68, 1.5]}, "nominal levels in"),
])
def test_bad_calibrations_fail_in_one_line(change, message):
    cal = calibration.Calibration("spread", 1.5, (0.68,), 4, 8, (0.5, 0.9), (0.68, 0.95))
    with pytest.raises(FieldnetError, match=message):
        calibration.from_dict({**calibration.to_dict(cal), **change})
    with pytest.raises(FieldnetError, match="needs the keys"):
        calibration.from_dict({"method": "spread"})


def test_bad_inputs_fail_in_one_line(tmp_path):
    samples, truth, _ = gaussian_ensemble(0.5)
    with pytest.raises(FieldnetError, match="samples must be"):
        calibration.fit(samples, truth[:, :4])
    with pytest.raises(FieldnetError, match="2 samples"):
        calibration.fit(samples[:, :1], truth)
    with pytest.raises(FieldnetError, match="bounds"):
        calibration.fit(samples, truth, bounds=(1.5, 3.0))
    with pytest.raises(FieldnetError, match="cannot read a calibration"):
        calibration.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(FieldnetError, match="bad.json: a calibration needs the keys"):
        calibration.load(tmp_path / "bad.json")


def test_figure_shows_raw_and_calibrated_coverage_and_pit():
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth)
    fig = calibration_figures.calibration_figure(samples, truth, cal, None)
    left, right = fig.axes
    assert left.get_xlabel() == calibration_figures.LEVEL_LABEL
    assert left.get_ylabel().startswith(calibration_figures.COVERAGE_LABEL)
    assert right.get_xlabel() == calibration_figures.PIT_LABEL
    diagonal, raw, calibrated = left.lines
    np.testing.assert_array_equal(diagonal.get_xydata(), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(raw.get_xdata(), NOMINAL_LEVELS)
    np.testing.assert_allclose(raw.get_ydata(),
                               metrics.interval_coverage(samples, truth, NOMINAL_LEVELS))
    np.testing.assert_allclose(
        calibrated.get_ydata(),
        metrics.interval_coverage(calibration.apply(cal, samples), truth, NOMINAL_LEVELS))
    # too narrow below the diagonal, calibrated on it
    assert (raw.get_ydata() < NOMINAL_LEVELS).all()
    assert np.abs(calibrated.get_ydata() - NOMINAL_LEVELS).max() < 0.02
    raw_pit, calibrated_pit = right.patches
    heights = calibration.pit_histogram(samples, truth) * (N_SAMPLES + 1)
    np.testing.assert_allclose(raw_pit.get_data().values, heights)
    assert raw_pit.get_data().values[[0, -1]].min() > 1.5   # U-shaped
    assert np.abs(calibrated_pit.get_data().values - 1).max() < 0.1
    assert [t.get_text().split(":")[0] for t in right.get_legend().get_texts()] == \
        ["raw", f"× {cal.spread:.3g} about the mean"]


def test_figure_writes_a_png(tmp_path):
    samples, truth, _ = gaussian_ensemble(0.5)
    path = calibration_figures.calibration_figure(
        samples, truth, calibration.fit(samples, truth), tmp_path / "calibration.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_docstring_example_runs():
    results = doctest.testmod(calibration, verbose=False)
    assert results.attempted > 0 and results.failed == 0


def test_few_data_config_trains_on_few_crops():
    config = density_to_temp_flow_few.get_config()
    assert (config.data.max_train_sims, config.data.crop_size) == (4, 32)
    assert config.model.objective == "flow" and config.name == "density_to_temp_flow_few"
    quick = density_to_temp_flow_few.get_config("quick")
    assert (quick.data.max_train_sims, quick.data.crop_size) == (2, 32)
    assert quick.train.num_steps < config.train.num_steps
    path = "experiments/configs/density_to_temp_flow_few.py"
    module = cli.import_user_file(path, "get_config")
    assert cli.call_user(path, module.get_config).name == config.name


def test_the_fit_picks_validation_maps_from_every_box():
    sims = np.repeat([3, 7, 9], 4)
    chosen = calibration.spread_maps(sims, 5)
    assert len(chosen) == 5 and set(sims[chosen]) == {3, 7, 9}
    assert (np.diff(chosen) > 0).all()
    np.testing.assert_array_equal(calibration.spread_maps(sims, None), np.arange(12))


def test_benchmark_scores_per_box_with_errors():
    from benchmarks.calibration import scores
    from fieldnet.grid import Grid

    samples, truth, _ = gaussian_ensemble(0.5)
    sims = np.repeat(np.arange(4), N_MAPS // 4)
    grid = Grid.box((SIZE, SIZE), 10.0)
    block = scores(samples, truth, samples, truth, sims, grid)
    raw = metrics.interval_coverage(samples, truth, calibration.REPORT_LEVELS)
    assert (block["coverage_68"], block["coverage_95"]) == pytest.approx(tuple(raw))
    assert [b["sim"] for b in block["per_box"]] == [0, 1, 2, 3]
    assert np.mean([b["coverage_68"] for b in block["per_box"]]) == \
        pytest.approx(block["coverage_68"])
    assert 0 < block["coverage_68_err"] < 0.05
    assert block["mse_of_mean"] == pytest.approx(metrics.mse(samples.mean(axis=1), truth))
    # white noise: the samples' variance mu + 0.5 e is (1 + 0.25) / 2 of the truth's mu + e
    assert np.median(block["power_ratio"]) == pytest.approx(1.25 / 2, rel=0.1)
    lo, hi = block["power_ratio_range"]
    assert lo <= hi and block["max_log_power_error"] >= max(abs(np.log(lo)), abs(np.log(hi)))
