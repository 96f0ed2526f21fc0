import dataclasses
import json

import numpy as np
import pytest

from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, statistics
from fieldnet.grid import Grid
from fieldnet.records import to_json_value

BOX = 25.0   # Mpc/h


def on_box(stack):
    """The periodic grid of each field of a stack (N, *spatial) in a box of side BOX."""
    return Grid.box(np.shape(stack)[1:], BOX)


def gaussian_stack(seed, shape=(4, 64, 64)):
    return np.random.default_rng(seed).normal(size=shape)


def test_identical_fields_correlate_perfectly():
    true = 4.0 + gaussian_stack(0)
    spec = metrics.spectral_comparison(true, true, on_box(true))
    np.testing.assert_allclose(spec["cross_corr"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spec["power_ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spec["p_cross"], spec["p_true"], rtol=1e-12)
    # k in h/Mpc: one bin per fundamental k_f, up to Nyquist.
    k_fundamental = 2 * np.pi / BOX
    assert k_fundamental <= spec["k"][0] < 1.5 * k_fundamental
    assert spec["k_nyquist"] == pytest.approx(np.pi * 64 / BOX)
    assert spec["ndim"] == 2


def test_independent_fields_decorrelate_within_the_statistical_error():
    spec = metrics.spectral_comparison(gaussian_stack(1), gaussian_stack(2),
                                       on_box(gaussian_stack(1)))
    # r(k) of independent Gaussian fields scatters around 0 with sigma = 1/sqrt(n_modes).
    pulls = spec["cross_corr"] * np.sqrt(spec["n_modes"])
    assert np.all(np.abs(pulls) < 5)
    assert 0.5 < np.mean(pulls**2) < 2.0


def test_scaled_field_has_power_ratio_a_squared():
    true = gaussian_stack(3, (2, 16, 16, 16))
    spec = metrics.spectral_comparison(-3.0 * true, true, on_box(true), n_bins=8)
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
    spec = metrics.spectral_comparison(true[..., None], true, on_box(true))
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
        true_log, pred_log, baseline_log, Grid.box((32, 32), BOX), np.array([0, 0, 3]))
    block = statistics.evaluate(comparison)
    required = {"mse", "baseline_mse", "pixel_corr", "k", "cross_corr", "power_ratio",
                "baseline_cross_corr", "per_box", "mse_err", "baseline_mse_err",
                "n_test_boxes"}
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
                              Grid.box((32, 32), BOX), np.zeros(2, int))
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
                                  true_log, Grid.box((16, 16), BOX), np.zeros(1, int))
        block = statistics.evaluate(c, ["test_variance_ratio"])
        assert block["variance_ratio"] == pytest.approx(4.0)
        assert statistics.selected("test_variance_ratio") == [*statistics.REQUIRED,
                                                              "test_variance_ratio"]
    finally:
        statistics.STATISTICS.unregister("test_variance_ratio")


def boxes_comparison(sim_index, offsets, noise=0.0, seed=12, size=8):
    """Maps whose model error in normalized space is the constant `offsets[i]` on map i
    (so its MSE is offsets[i]**2) and the baseline's twice that; the log fields carry
    `noise` so that their pixel correlation is below 1."""
    n = len(sim_index)
    true = gaussian_stack(seed, (n, size, size))
    offset = np.asarray(offsets, float)[:, None, None]
    pred_log = true + noise * gaussian_stack(seed + 1, (n, size, size))
    return statistics.Comparison(true, true + offset, true + 2 * offset, true, pred_log,
                                 true, Grid.box((size, size), BOX), np.asarray(sim_index))


def test_per_box_statistics_are_those_of_each_simulations_maps():
    sims = [7, 2, 7, 5, 2, 2]
    offsets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    c = boxes_comparison(sims, offsets, noise=0.5)
    block = statistics.evaluate(c)
    by_hand = {2: [0.2, 0.5, 0.6], 5: [0.4], 7: [0.1, 0.3]}
    assert [b["sim"] for b in block["per_box"]] == [2, 5, 7]
    assert block["n_test_boxes"] == 3
    for entry in block["per_box"]:
        maps = [i for i, s in enumerate(sims) if s == entry["sim"]]
        squares = np.square(by_hand[entry["sim"]])
        assert entry["mse"] == pytest.approx(squares.mean(), rel=1e-12)
        assert entry["baseline_mse"] == pytest.approx(4 * squares.mean(), rel=1e-12)
        r = np.corrcoef(c.pred_log[maps].ravel(), c.true_log[maps].ravel())[0, 1]
        assert entry["pixel_corr"] == pytest.approx(r, rel=1e-12)
    # The scalar keys stay the means over the test maps, not over boxes.
    assert block["mse"] == pytest.approx(np.mean(np.square(offsets)), rel=1e-12)
    assert block["baseline_mse"] == pytest.approx(4 * np.mean(np.square(offsets)), rel=1e-12)
    assert block["pixel_corr"] == pytest.approx(
        np.corrcoef(c.pred_log.ravel(), c.true_log.ravel())[0, 1], rel=1e-12)
    assert statistics.evaluate(c) == block   # a fixed bootstrap seed: the same eval.json


def test_bootstrap_error_of_boxes_with_one_mse_is_zero():
    block = statistics.boxes(boxes_comparison([0, 0, 1, 1, 2, 2], [0.3] * 6))
    assert block["mse_err"] == pytest.approx(0.0, abs=1e-15)
    assert block["baseline_mse_err"] == pytest.approx(0.0, abs=1e-15)


def test_bootstrap_error_over_boxes_is_their_standard_error():
    """With B resamples of n equally sized boxes, the bootstrap variance tends to
    sigma^2 = var(box means, ddof=0) / n, the squared standard error of the mean over boxes.
    The estimate from B resamples scatters about it: the resampled means are iid with
    kurtosis kappa = 3 + (kurtosis of the box means - 3) / n (that of a mean of n draws),
    so the sample variance has relative standard deviation
    sqrt((kappa - (B - 3) / (B - 1)) / B), and the standard deviation half that."""
    n_boxes, maps_per_box = 20, 2
    box_mse = np.random.default_rng(13).uniform(0.05, 0.5, n_boxes)
    sims = np.repeat(np.arange(n_boxes), maps_per_box)
    block = statistics.boxes(boxes_comparison(sims, np.sqrt(np.repeat(box_mse, maps_per_box))))
    b = statistics.BOOTSTRAP_RESAMPLES
    deviations = box_mse - box_mse.mean()
    kurtosis = np.mean(deviations**4) / np.mean(deviations**2) ** 2
    kappa = 3 + (kurtosis - 3) / n_boxes
    relative_sd = 0.5 * np.sqrt((kappa - (b - 3) / (b - 1)) / b)
    for key, scale in (("mse_err", 1.0), ("baseline_mse_err", 4.0)):
        standard_error = scale * np.std(box_mse) / np.sqrt(n_boxes)
        assert block[key] == pytest.approx(standard_error, rel=4 * relative_sd)
    assert block["baseline_mse_err"] == pytest.approx(4 * block["mse_err"], rel=1e-12)


def test_one_box_has_null_errors():
    block = statistics.evaluate(boxes_comparison([4, 4, 4], [0.1, 0.2, 0.3]))
    assert block["n_test_boxes"] == 1
    assert block["mse_err"] is None and block["baseline_mse_err"] is None
    assert block["per_box"] == [{"sim": 4, "mse": pytest.approx(block["mse"], rel=1e-12),
                                 "baseline_mse": pytest.approx(block["baseline_mse"], rel=1e-12),
                                 "pixel_corr": pytest.approx(1.0)}]
    assert json.loads(json.dumps(block, allow_nan=False)) == block
    with pytest.raises(ValueError, match="one entry per map"):
        statistics.boxes(dataclasses.replace(boxes_comparison([4, 4], [0.1, 0.2]),
                                             sim_index=np.array([4])))
