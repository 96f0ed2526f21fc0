import json

import numpy as np
import pytest

from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, statistics
from fieldnet.grid import Grid
from fieldnet.records import to_json_value

BOX = 25.0   # Mpc/h


def gaussian_stack(seed, shape=(4, 64, 64)):
    return np.random.default_rng(seed).normal(size=shape)


def test_identical_fields_correlate_perfectly():
    true = 4.0 + gaussian_stack(0)
    spec = metrics.spectral_comparison(true, true, BOX)
    np.testing.assert_allclose(spec["cross_corr"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spec["power_ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spec["p_cross"], spec["p_true"], rtol=1e-12)
    # k in h/Mpc: one bin per fundamental k_f, up to Nyquist.
    k_fundamental = 2 * np.pi / BOX
    assert k_fundamental <= spec["k"][0] < 1.5 * k_fundamental
    assert spec["k_nyquist"] == pytest.approx(np.pi * 64 / BOX)
    assert spec["ndim"] == 2


def test_independent_fields_decorrelate_within_the_statistical_error():
    spec = metrics.spectral_comparison(gaussian_stack(1), gaussian_stack(2), BOX)
    # r(k) of independent Gaussian fields scatters around 0 with sigma = 1/sqrt(n_modes).
    pulls = spec["cross_corr"] * np.sqrt(spec["n_modes"])
    assert np.all(np.abs(pulls) < 5)
    assert 0.5 < np.mean(pulls**2) < 2.0


def test_scaled_field_has_power_ratio_a_squared():
    true = gaussian_stack(3, (2, 16, 16, 16))
    spec = metrics.spectral_comparison(-3.0 * true, true, BOX, n_bins=8)
    np.testing.assert_allclose(spec["power_ratio"], 9.0, rtol=1e-12)
    np.testing.assert_allclose(spec["transfer"], 3.0, rtol=1e-12)
    np.testing.assert_allclose(spec["cross_corr"], -1.0, rtol=1e-12)
    assert len(spec["k"]) == 8


def test_pointwise_metrics():
    a, b = gaussian_stack(4), gaussian_stack(5)
    b = 0.5 * a + b
    assert metrics.pixel_correlation(a, b) == pytest.approx(
        np.corrcoef(a.ravel(), b.ravel())[0, 1], rel=1e-12)
    assert metrics.mse(a, b) == pytest.approx(np.mean((a - b) ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        metrics.mse(a, b[:2])


def test_histograms_are_densities():
    values = np.random.default_rng(6).normal(size=(3, 32, 32))
    edges = np.linspace(-6, 6, 49)
    assert np.sum(metrics.one_point_pdf(values, edges) * np.diff(edges)) == pytest.approx(1)
    joint = metrics.joint_histogram(values, 2 * values, edges, 2 * edges)
    assert joint.shape == (48, 48)
    assert np.sum(joint * np.outer(np.diff(edges), np.diff(2 * edges))) == pytest.approx(1)


def test_channels_last_stacks_are_accepted():
    true = gaussian_stack(7, (2, 32, 32))
    spec = metrics.spectral_comparison(true[..., None], true, BOX)
    np.testing.assert_allclose(spec["cross_corr"], 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="stack"):
        metrics.as_stack(np.zeros((2, 3, 4, 5, 6)))


def test_summary_matches_the_eval_json_contract():
    true_log = 4.0 + 0.5 * gaussian_stack(8, (3, 32, 32))
    pred_log = true_log + 0.1 * gaussian_stack(9, (3, 32, 32))
    baseline_log = 0.5 * (true_log + 4.0)
    mean, std = 4.0, 0.5
    comparison = statistics.Comparison(
        (true_log - mean) / std, (pred_log - mean) / std, (baseline_log - mean) / std,
        true_log, pred_log, baseline_log, Grid.box((32, 32), BOX))
    block = statistics.evaluate(comparison)
    required = {"mse", "baseline_mse", "pixel_corr", "k", "cross_corr", "power_ratio",
                "baseline_cross_corr"}
    extras = {"transfer", "baseline_power_ratio", "baseline_pixel_corr", "n_modes",
              "k_nyquist"}
    assert set(block) == required | extras
    assert set(statistics.evaluate(comparison, "pdf")) == required | extras | {
        "pdf_w1", "baseline_pdf_w1"}
    assert json.loads(json.dumps(block, allow_nan=False)) == block
    assert block["mse"] == pytest.approx(0.04, rel=0.1)
    assert block["baseline_pixel_corr"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in block["cross_corr"])
    assert len(block["k"]) == len(block["baseline_cross_corr"]) == len(block["n_modes"])


def test_non_finite_values_become_null():
    assert to_json_value(np.array([1.0, np.nan, np.inf])) == [1.0, None, None]
    assert to_json_value({"n": np.int64(3), "r": np.float32(0.5)}) == {"n": 3, "r": 0.5}
    assert to_json_value({"name": "run", "steps": (1, 2), "none": None}) == {
        "name": "run", "steps": [1, 2], "none": None}


def test_pdf_distance_is_the_shift_of_a_shifted_field():
    true_log = 4.0 + 0.5 * gaussian_stack(10, (2, 32, 32))
    shifted = true_log + 0.3
    c = statistics.Comparison(true_log, true_log, shifted, true_log, true_log, shifted,
                              Grid.box((32, 32), BOX))
    block = statistics.pdf(c)
    assert block["pdf_w1"] == pytest.approx(0.0, abs=1e-12)
    assert block["baseline_pdf_w1"] == pytest.approx(0.3, rel=1e-5)


def test_statistics_registry_adds_a_statistic_and_names_unknown_ones():
    with pytest.raises(FieldnetError, match="'nope' is not a registered statistic"):
        statistics.selected("pdf,nope")

    @statistics.register_statistic("test_variance_ratio")
    def variance_ratio(c):
        return {"variance_ratio": float(c.pred_log.var() / c.true_log.var())}

    try:
        true_log = gaussian_stack(11, (1, 16, 16))
        c = statistics.Comparison(true_log, 2 * true_log, true_log, true_log, 2 * true_log,
                                  true_log, Grid.box((16, 16), BOX))
        block = statistics.evaluate(c, ["test_variance_ratio"])
        assert block["variance_ratio"] == pytest.approx(4.0)
        assert statistics.selected("test_variance_ratio")[:2] == list(statistics.REQUIRED)
    finally:
        statistics.STATISTICS.unregister("test_variance_ratio")
