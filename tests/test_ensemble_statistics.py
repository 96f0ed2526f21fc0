"""Statistics of an ensemble of samples against the truth: interval coverage, CRPS, and the
`samples` block of eval.json, checked against exact results within Monte Carlo error."""

import json

import numpy as np
import pytest
from scipy.stats import norm

from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, statistics
from fieldnet.grid import Grid

LEVELS = np.array([0.1, 0.5, 0.68, 0.9, 0.95])


def test_coverage_of_a_calibrated_ensemble_is_nominal_even_with_few_samples():
    """Truth and S = 7 samples drawn from the same distribution at each of n pixels. Each
    pixel's contribution to the estimate lies in [0, 1] with mean p (the randomized PIT is
    uniform), so its variance is at most p (1 - p) and the estimate's standard error at
    most sqrt(p (1 - p) / n): the estimate must be within 4 of those of p. Counting the
    truth between the 7 samples' empirical quantiles instead would cover about 6/8 = 75%
    at p = 0.95."""
    rng = np.random.default_rng(0)
    n_maps, size, n_samples = 5, 64, 7
    centre = rng.normal(size=(n_maps, size, size))        # a different distribution per pixel
    scale = np.exp(rng.normal(size=(n_maps, size, size)))
    truth = centre + scale * rng.normal(size=centre.shape)
    samples = centre[:, None] + scale[:, None] * rng.normal(size=(n_maps, n_samples, size, size))
    coverage = metrics.interval_coverage(samples, truth, LEVELS)
    n = truth.size
    assert np.all(np.abs(coverage - LEVELS) < 4 * np.sqrt(LEVELS * (1 - LEVELS) / n)), coverage
    lo, hi = np.percentile(samples, [2.5, 97.5], axis=1)
    naive = np.mean((truth >= lo) & (truth <= hi))
    assert naive < 0.8


def test_coverage_shows_over_and_under_confidence():
    """Too narrow and too wide ensembles; with S = 99 samples the rank cells (1 / 100 wide)
    resolve the intervals, so the estimate approaches the distribution's own coverage."""
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(4, 32, 32))
    samples = rng.normal(size=(4, 99, 32, 32))
    narrow = metrics.interval_coverage(0.5 * samples, truth, [0.68, 0.95])
    wide = metrics.interval_coverage(2.0 * samples, truth, [0.68, 0.95])
    # exact for Gaussians: the truth falls within the central p interval of N(0, s^2)
    # with probability 2 Phi(z_p s) - 1 (z_p = Phi^-1((1 + p) / 2))
    for s, got in ((0.5, narrow), (2.0, wide)):
        expected = 2 * norm.cdf(s * norm.ppf((1 + np.array([0.68, 0.95])) / 2)) - 1
        np.testing.assert_allclose(got, expected, atol=0.03)
    assert narrow[0] < 0.4 and wide[0] > 0.9


def gaussian_crps(mu, sigma, y):
    """The closed form CRPS of N(mu, sigma^2) at y (Gneiting & Raftery 2007)."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


@pytest.mark.parametrize("n_samples", [4, 32])
def test_crps_of_a_gaussian_ensemble_matches_the_closed_form(n_samples):
    """The fair estimator is unbiased for any ensemble size: the mean over pixels agrees
    with the mean closed-form CRPS within 4 standard errors, each estimated from 40
    independent blocks of pixels (batch means). The usual estimator, with E|X - X'| over all
    pairs including each sample with itself, would be high by sigma / (sqrt(pi) S), about
    0.14 sigma for S = 4, many standard errors."""
    rng = np.random.default_rng(2)
    n_blocks, per_block = 40, (4, 16, 16)
    mu, sigma = 0.3, 1.7
    truth = rng.normal(0.0, 2.0, size=(n_blocks, *per_block))
    samples = rng.normal(mu, sigma, size=(n_blocks, per_block[0], n_samples, *per_block[1:]))
    blocks = np.array([metrics.crps(samples[b], truth[b]) for b in range(n_blocks)])
    exact = gaussian_crps(mu, sigma, truth).mean()
    error = blocks.std(ddof=1) / np.sqrt(n_blocks)
    assert abs(blocks.mean() - exact) < 4 * error, (blocks.mean(), exact, error)
    assert sigma / (np.sqrt(np.pi) * 4) > 10 * error   # the biased estimator would fail here


def test_crps_rewards_a_sharp_correct_ensemble():
    truth = np.zeros((2, 8, 8))
    close = np.random.default_rng(3).normal(0, 0.1, size=(2, 8, 8, 8))
    assert metrics.crps(close, truth) < 0.05 < metrics.crps(10 * close + 1, truth)
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.crps(close[:, :1], truth)


def sample_comparison(seed=4, n_maps=3, n_samples=6, size=32):
    rng = np.random.default_rng(seed)
    true_log = 4.0 + 0.5 * rng.normal(size=(n_maps, size, size))
    samples_log = 4.0 + 0.5 * rng.normal(size=(n_maps, n_samples, size, size))
    mean_log = samples_log.mean(axis=1)
    norm_ = lambda a: (a - 4.0) / 0.5  # noqa: E731
    return statistics.Comparison(norm_(true_log), norm_(mean_log), norm_(true_log), true_log,
                                 mean_log, true_log, Grid.box((size, size), 25.0),
                                 np.arange(n_maps), norm_(samples_log), samples_log)


def test_samples_block_holds_the_documented_keys():
    """Samples independent of the truth but from its distribution: the right power
    (ratio ~ 1), no correlation of their mean, calibrated intervals."""
    block = statistics.evaluate(sample_comparison(), ["samples"])["samples"]
    assert set(block) == {"n_samples", "power_ratio", "cross_corr_mean", "pdf_w1",
                          "coverage_68", "coverage_95", "crps", "mse_of_mean"}
    assert block["n_samples"] == 6
    assert len(block["power_ratio"]) == len(block["cross_corr_mean"])
    # within the cosmic variance of the truth's few modes, sqrt(2 / n_modes) per bin
    n_modes = np.asarray(statistics.evaluate(sample_comparison())["n_modes"])
    pulls = (np.asarray(block["power_ratio"]) - 1) / np.sqrt(2 / n_modes)
    assert np.all(np.abs(pulls) < 5), pulls
    assert abs(np.mean(block["cross_corr_mean"])) < 0.1
    assert block["coverage_68"] == pytest.approx(0.68, abs=0.02)
    assert block["coverage_95"] == pytest.approx(0.95, abs=0.01)
    assert block["pdf_w1"] < 0.02
    # E (mean of 6 - truth)^2 = 1 + 1/6 in the normalized space
    assert block["mse_of_mean"] == pytest.approx(7 / 6, rel=0.05)
    assert json.loads(json.dumps(block, allow_nan=False)) == block


def test_samples_statistic_needs_samples():
    c = sample_comparison()
    plain = statistics.Comparison(*[getattr(c, f) for f in (
        "true_norm", "pred_norm", "baseline_norm", "true_log", "pred_log", "baseline_log",
        "grid", "sim_index")])
    with pytest.raises(FieldnetError, match="model.objective='flow'"):
        statistics.evaluate(plain, ["samples"])
