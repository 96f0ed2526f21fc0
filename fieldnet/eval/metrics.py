"""Evaluation statistics of predicted fields: the one implementation the driver, the
notebooks and the tests use.

Stacks are `(N, *spatial)` (a trailing channel axis of size 1 is dropped). Spectral
statistics are built on `fieldnet.eval.spectra` and are of log10 T *fluctuations*,
log10 T - <log10 T> of each field: the spectra exclude the k = 0 mode, which is exactly
the same as subtracting each field's mean. Pass log10 T (not T) so that the few hot
pixels, which dominate the linear field, do not dominate the comparison.

The "test" block of `eval.json` is assembled from these by `fieldnet.eval.statistics`.
"""

from __future__ import annotations

import numpy as np

from fieldnet.eval import spectra
from fieldnet.grid import Grid, require_grid


def as_stack(fields) -> np.ndarray:
    """`(N, *spatial)` view of a stack, dropping a trailing channel axis of size 1.

    Args:
        fields: A stack `(N, *spatial)` or `(N, *spatial, 1)`, 1 to 3 spatial axes.

    Returns:
        The stack without the channel axis.

    Raises:
        ValueError: If the stack does not have 1 to 3 spatial axes.
    """
    fields = np.asarray(fields)
    if fields.ndim >= 3 and fields.shape[-1] == 1:
        fields = fields[..., 0]
    if fields.ndim not in (2, 3, 4):
        raise ValueError(f"expected a stack (N, *spatial) of 1D, 2D or 3D fields, got shape "
                         f"{fields.shape}")
    return fields


def _same_shape(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"prediction and truth must have the same shape, got {a.shape} and "
                         f"{b.shape}")
    if a.size == 0:
        raise ValueError("cannot compare empty arrays")
    return a, b


def mse(pred, true) -> float:
    """Mean squared error over all pixels (float64 accumulation).

    Args:
        pred: The prediction, any shape.
        true: The truth, the same shape.

    Returns:
        The mean of (pred - true)² over every element.

    Raises:
        ValueError: If the shapes differ or the arrays are empty.

    Examples:
        >>> from fieldnet.eval.metrics import mse
        >>> mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
        1.3333333333333333
    """
    pred, true = _same_shape(pred, true)
    return float(np.mean(np.square(pred.astype(np.float64) - true)))


def mse_per_field(pred, true) -> np.ndarray:
    """The mean squared error of each field of a stack `(N, *spatial)`: shape (N,).

    Args:
        pred: A stack `(N, *spatial)` (a trailing channel axis of size 1 is dropped).
        true: The truth, the same shape.

    Returns:
        The MSE of each field, float64 of shape (N,).
    """
    pred, true = _same_shape(as_stack(pred), as_stack(true))
    return np.mean(np.square(pred.astype(np.float64) - true), axis=tuple(range(1, pred.ndim)))


def group_bootstrap_error(values, groups, *, n_resamples: int, seed: int) -> float:
    """Bootstrap standard error of the mean of `values` when whole groups are the
    independent units (the maps of one simulation are correlated).

    Each of `n_resamples` resamples draws as many groups as there are, with replacement,
    and takes the mean over all values of the drawn groups (a group drawn twice counts
    twice); the error is the standard deviation of those means. The draws depend only on
    `seed` and the number of groups, so two calls with the same `groups` and `seed` are
    paired.

    Args:
        values: One value per unit, shape (M,) (e.g. the MSE of each test map).
        groups: The group of each value, shape (M,) (e.g. its simulation).
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        The standard error; NaN with a single group, whose spread is unknown (not 0).

    Raises:
        ValueError: If `values` and `groups` are not 1D arrays of one length.
    """
    values, groups = np.asarray(values, np.float64), np.asarray(groups)
    if values.shape != groups.shape or values.ndim != 1:
        raise ValueError(f"values and groups must be 1D and of one length, got shapes "
                         f"{values.shape} and {groups.shape}")
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if group_of.size else 0
    if n_groups < 2:
        return float("nan")
    sums = np.bincount(group_of, weights=values, minlength=n_groups)
    counts = np.bincount(group_of, minlength=n_groups)
    draws = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups),
                                                    size=n_resamples)
    return float(np.std((draws @ sums) / (draws @ counts), ddof=1))


def pixel_correlation(a, b) -> float:
    """Pearson r over all pixels of a stack (NaN if either is constant).

    Args:
        a: One array, any shape.
        b: Another, the same shape.

    Returns:
        The correlation coefficient of all their elements, in [-1, 1].

    Examples:
        >>> from fieldnet.eval.metrics import pixel_correlation
        >>> pixel_correlation([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
        1.0
    """
    a, b = _same_shape(a, b)
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a -= a.mean()
    b -= b.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def spectral_comparison(pred, true, grid: Grid,
                        n_bins: int | None = None) -> dict[str, np.ndarray | float | int]:
    """How a predicted stack of log10 T fields matches the true one, scale by scale.

    Args:
        pred: A stack `(N, *spatial)` (a trailing channel axis of size 1 is dropped), of log10 T.
        true: The truth, the same shape.
        grid: The `Grid` of one field (its box lengths in Mpc/h set k).
        n_bins: Number of k bins; None gives one per fundamental (`spectra.default_edges`).

    Returns:
        A dict of numpy arrays per k bin: `k` [h/Mpc], `p_true`, `p_pred`, `p_cross`
        [(Mpc/h)^d] (mean over the stack), `cross_corr` r(k) = P_pt / sqrt(P_pp P_tt),
        `power_ratio` P_pred / P_true, `transfer` sqrt(power_ratio), `n_modes` (total over
        the stack: r of independent fields scatters about 0 by ~ 1/sqrt(n_modes)); and
        scalars `k_nyquist` [h/Mpc] (`Grid.k_nyquist`) and `ndim`.

    Raises:
        TypeError: If `grid` is not a `Grid`.
        ValueError: If the stacks differ in shape or their fields are not on `grid`.
    """
    pred, true = _same_shape(as_stack(pred), as_stack(true))
    grid = require_grid(grid, true.shape[1:], "each field")
    p_true = spectra.average_power_spectrum(true, grid, n_bins=n_bins)
    p_pred = spectra.average_power_spectrum(pred, grid, n_bins=n_bins)
    p_cross = spectra.average_power_spectrum(pred, grid, fields_b=true, n_bins=n_bins)
    r = spectra.average_cross_correlation(pred, true, grid, n_bins=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = p_pred.power / p_true.power
    return {"k": p_true.k, "p_true": p_true.power, "p_pred": p_pred.power,
            "p_cross": p_cross.power, "cross_corr": r.r, "power_ratio": ratio,
            "transfer": np.sqrt(ratio), "n_modes": p_true.n_modes,
            "k_nyquist": grid.k_nyquist, "ndim": true.ndim - 1}


def one_point_pdf(values, edges) -> np.ndarray:
    """Probability density of `values` in the bins `edges`.

    Normalized by the total number of values (not only those inside the edges), so the
    PDFs of two fields with different tails are compared on the same footing.

    Args:
        values: Any array; all its elements count.
        edges: Increasing bin edges.

    Returns:
        The density in each of the `len(edges) - 1` bins.
    """
    values = np.asarray(values).ravel()
    edges = np.asarray(edges, np.float64)
    counts, _ = np.histogram(values, bins=edges)
    return counts / (values.size * np.diff(edges))


def joint_histogram(log_rho, log_t, edges_x, edges_y) -> np.ndarray:
    """The T-rho phase diagram: joint density of (log_rho, log_t), shape (n_x, n_y).

    Normalized like `one_point_pdf`: by the total number of pixels and the cell area.

    Args:
        log_rho: log10 of the density, any shape.
        log_t: log10 of the temperature, the same shape.
        edges_x: Increasing bin edges of log_rho (n_x + 1 of them).
        edges_y: Increasing bin edges of log_t (n_y + 1 of them).

    Returns:
        The joint density, shape (n_x, n_y).
    """
    log_rho, log_t = _same_shape(log_rho, log_t)
    edges_x = np.asarray(edges_x, np.float64)
    edges_y = np.asarray(edges_y, np.float64)
    counts, _, _ = np.histogram2d(log_rho.ravel(), log_t.ravel(), bins=[edges_x, edges_y])
    return counts / (log_rho.size * np.outer(np.diff(edges_x), np.diff(edges_y)))


def _ensemble(samples, truth) -> tuple[np.ndarray, np.ndarray]:
    """(samples (N, S, ...), truth (N, ...)) as float64, checked to fit, S ≥ 2."""
    samples, truth = np.asarray(samples, np.float64), np.asarray(truth, np.float64)
    if samples.ndim != truth.ndim + 1 or samples.shape[:1] + samples.shape[2:] != truth.shape:
        raise ValueError(f"samples must be (N, S, ...) for a truth of shape {truth.shape}, got "
                         f"{samples.shape}")
    if samples.shape[1] < 2 or truth.size == 0:
        raise ValueError(f"need at least 2 samples of a non-empty truth, got {samples.shape}")
    return samples, truth


def rank_histogram(samples, truth) -> np.ndarray:
    """(S + 1,) fractions of pixels whose truth has rank r = 0..S among its S samples (how
    many samples fall below it): flat at 1 / (S + 1) for a calibrated ensemble, U-shaped
    when the samples are too narrow.

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).

    Returns:
        The fraction of pixels at each rank, shape (S + 1,).

    Raises:
        ValueError: If the shapes do not fit or there are fewer than 2 samples.
    """
    samples, truth = _ensemble(samples, truth)
    ranks = np.sum(samples < truth[:, None], axis=1).ravel()
    return np.bincount(ranks, minlength=samples.shape[1] + 1) / ranks.size


def interval_coverage(samples, truth, levels) -> np.ndarray:
    """For each nominal level p of `levels`, the fraction of pixels whose truth lies in the
    central p interval of the samples' distribution; p for a calibrated ensemble.

    `samples` (N, S, ...) are S draws for each of the N fields `truth` (N, ...). From the
    rank r of the truth among its S samples (how many fall below it), the probability
    integral transform u of the truth lies in [r, r + 1] / (S + 1); for a calibrated
    ensemble the S + 1 ranks are equally likely and u is uniform. A pixel counts with the
    fraction of its cell inside [(1 - p) / 2, (1 + p) / 2] (the mean of the randomized PIT
    indicator), so the estimate is unbiased for any S, unlike counting the truth between
    the samples' empirical quantiles, which few samples make too narrow. For an ensemble
    that is not calibrated it is the coverage blurred by one rank cell, 1 / (S + 1).

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).
        levels: Nominal levels p in [0, 1], e.g. (0.68, 0.95).

    Returns:
        The coverage at each level, shape (len(levels),).
    """
    cells = rank_histogram(samples, truth)   # the PIT histogram
    n_samples = len(cells) - 1
    lo = np.arange(n_samples + 1) / (n_samples + 1)
    levels = np.asarray(levels, np.float64)
    a, b = (1 - levels[:, None]) / 2, (1 + levels[:, None]) / 2
    inside = np.clip(np.minimum(lo + 1 / (n_samples + 1), b) - np.maximum(lo, a), 0, None)
    return inside * (n_samples + 1) @ cells


def crps(samples, truth) -> float:
    """Continuous ranked probability score of an ensemble, mean over pixels (0 for a
    perfect point forecast; the mean absolute error for a single one).

    The fair (unbiased) ensemble estimator E|X - y| - 1/2 E|X - X'| with X, X' two
    different samples, so that an ensemble of S draws from a distribution F scores, on
    average, the CRPS of F itself.

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).

    Returns:
        The mean CRPS over all pixels, in the units of the fields.
    """
    samples, truth = _ensemble(samples, truth)
    n = samples.shape[1]
    error = np.mean(np.abs(samples - truth[:, None]), axis=1)
    ordered = np.sort(samples, axis=1)
    weights = (2 * np.arange(n) - n + 1).reshape((1, n) + (1,) * (samples.ndim - 2))
    half_spread = np.sum(weights * ordered, axis=1) / (n * (n - 1))
    return float(np.mean(error - half_spread))
