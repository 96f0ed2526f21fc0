"""The calibration of a generative run's samples: the spread and the offset each recover
the number that makes Gaussian samples exchangeable with the truth, keep the samples' mean
(the offset also each sample's structure), commute with the grid's symmetries, round-trip
through JSON, and the figure shows the curves it computes."""

import doctest
import json
import math

import numpy as np
import pytest

from experiments.configs import density_to_temp_flow_few
from fieldnet import cli, symmetry
from fieldnet.data import dataset
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


def level_ensemble(tau: float, n_maps: int = 64, n_samples: int = 16, size: int = 16,
                   seed: int = 0):
    """Samples mu + e_s, and a truth mu + b + e whose maps carry levels b that the samples
    do not know: over the maps b takes the n_maps normal quantiles times tau (in a shuffled
    order), so the offset that makes the truth exchangeable with the samples is tau."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n_maps, size, size))
    levels = tau * calibration.offset_quantiles(n_maps)[rng.permutation(n_maps)]
    truth = mu + levels[:, None, None] + rng.normal(size=mu.shape)
    samples = mu[:, None] + rng.normal(size=(n_maps, n_samples, size, size))
    return samples.astype(np.float32), truth.astype(np.float32)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_offset_fit_calibrates_levels_the_samples_miss(tau):
    samples, truth = level_ensemble(tau)
    cal = calibration.fit(samples, truth, method="offset")
    assert (cal.method, cal.spread) == ("offset", 1.0) and 0 < cal.offset < 3 * tau
    levels = np.asarray(calibration.REPORT_LEVELS)
    assert (np.asarray(cal.raw_coverage) < levels - 0.01).all()
    # the truth's levels are the maps' normal quantiles, not random, so the coverage noise
    # is the pixels' binomial one (0.004 over 16384 pixels): 4 of it
    assert np.abs(np.asarray(cal.calibrated_coverage) - levels).max() < 0.015
    # sigma is in the units of the values: the same ensemble in other units (an affine
    # image, as log10 T is of the normalized target) gives it in those units
    bounds = tuple(2.5 * b for b in calibration.OFFSET_BOUNDS)
    scaled = calibration.fit(2.5 * samples - 1.0, 2.5 * truth - 1.0, bounds=bounds,
                             method="offset")
    assert scaled.offset == pytest.approx(2.5 * cal.offset, rel=1e-3)


def test_offset_fit_adds_nothing_where_no_level_is_missing():
    assert calibration.fit(*level_ensemble(tau=0.0), method="offset").offset < 0.1


def test_offset_keeps_the_mean_and_each_samples_structure():
    samples, truth = level_ensemble(tau=1.0)
    cal = calibration.fit(samples, truth, method="offset")
    out = calibration.apply(cal, samples)
    assert out.shape == samples.shape and out.dtype == np.float32
    tol = 8 * EPS * (np.abs(samples).max() + 3 * cal.offset)
    np.testing.assert_allclose(out.mean(axis=1), samples.mean(axis=1), rtol=0, atol=tol)
    # one constant per sample over its map: its power at k > 0 is the drawn sample's
    moved = out - samples
    np.testing.assert_allclose(moved, moved[..., :1, :1] * np.ones_like(moved), rtol=0,
                               atol=tol)
    # the constants are sigma times the quantiles, in the order of the samples' map means
    shifts = moved[:, :, 0, 0]
    np.testing.assert_allclose(np.sort(shifts, axis=1),
                               np.broadcast_to(cal.offset * calibration.offset_quantiles(16),
                                               shifts.shape), rtol=0, atol=tol)
    order = np.argsort(samples.mean(axis=(2, 3)), axis=1)
    assert (np.diff(np.take_along_axis(shifts, order, axis=1), axis=1) > 0).all()
    assert metrics.mse(out.mean(axis=1), truth) == pytest.approx(
        metrics.mse(samples.mean(axis=1), truth), rel=1e-5)


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


@pytest.mark.parametrize("method", calibration.METHODS)
@pytest.mark.parametrize("shift", [(0, 0), (5, -3)])
def test_calibration_commutes_with_the_dihedral_group_and_shifts(shift, method):
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth, method=method)
    calibrated = calibration.apply(cal, samples)
    # the offset's rank of each sample's map mean is a sum over pixels, whose float32 order
    # changes with the pixels' order: two means closer than that rounding could swap ranks,
    # which these samples' means (apart by ~1e-2) are not
    tol = 8 * EPS * (np.abs(samples).max() * cal.spread + 3 * cal.offset)
    for g in symmetry.group_elements(2):
        def move(x, spatial_from, g=g):
            x = symmetry.apply(x, g, first_spatial_axis=spatial_from)
            return np.roll(x, shift, axis=(spatial_from, spatial_from + 1))

        moved_samples, moved_truth = move(samples, 2), move(truth, 1)
        np.testing.assert_allclose(calibration.apply(cal, moved_samples), move(calibrated, 2),
                                   rtol=0, atol=tol)
        # the fit sees the pixels through their ranks only: the same number
        again = calibration.fit(moved_samples, moved_truth, method=method)
        assert (again.spread, again.offset) == pytest.approx((cal.spread, cal.offset),
                                                              rel=1e-6)


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
    assert block["calibrated_pit_ks"] < block["pit_ks"] and "offset" not in block
    json.dumps(block, allow_nan=False)
    samples, truth = level_ensemble(tau=1.0)
    cal = calibration.fit(samples, truth, method="offset")
    block = calibration.summary(samples, truth, cal)
    assert (block["offset"], block["spread"]) == (cal.offset, 1.0)
    assert (block["calibrated_coverage_68"], block["calibrated_coverage_95"]) == \
        cal.calibrated_coverage


def test_calibration_round_trips_through_json(tmp_path):
    samples, truth, _ = gaussian_ensemble(0.5)
    cal = calibration.fit(samples, truth, levels=(0.68, 0.95))
    path = calibration.save(tmp_path / "calibration.json", cal)
    assert calibration.load(path) == cal
    assert json.loads(path.read_text())["levels"] == [0.68, 0.95]
    assert calibration.from_dict(calibration.to_dict(cal)) == cal
    offset = calibration.fit(*level_ensemble(tau=1.0), method="offset")
    assert calibration.load(calibration.save(tmp_path / "offset.json", offset)) == offset
    # a calibration saved before the offset method existed has no "offset" key
    old = {k: v for k, v in calibration.to_dict(cal).items() if k != "offset"}
    assert calibration.from_dict(old) == cal


@pytest.mark.parametrize("change,message", [
    ({"method": "quantile"}, "method must be one of spread, offset, got 'quantile'"),
    ({"spread": -1.0}, "positive number"),
    ({"spread": float("nan")}, "positive number"),
    ({"offset": -0.1}, "offset must be a number ≥ 0"),
    ({"offset": "0.2"}, "offset must be a number ≥ 0"),
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
    with pytest.raises(FieldnetError, match="offset bounds must satisfy 0 <= lo < hi"):
        calibration.fit(samples, truth, bounds=(-1.0, 3.0), method="offset")
    with pytest.raises(FieldnetError, match="method must be one of spread, offset"):
        calibration.fit(samples, truth, method="temperature")
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
    offset = calibration.fit(*level_ensemble(tau=1.0), method="offset")
    assert calibration_figures.calibrated_label(offset) == f"offset σ = {offset.offset:.3g}"


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
    # 400 simulations: 4 to train on (of 8), one map of each of 196 validation and 196
    # test boxes, and every validation box in the calibration's fit
    assert config.simulate.n_sims == 400 and "n400" in config.data.path
    splits = dataset.split_simulations(np.repeat(np.arange(400), 12),
                                       config.data.split_fractions, config.data.split_seed,
                                       max_train=config.data.max_train_sims,
                                       eval_maps=config.data.eval_maps_per_sim)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4 * 12, 196, 196]
    assert (config.eval.calibration_maps, config.eval.calibration_method) == (196, "offset")
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
