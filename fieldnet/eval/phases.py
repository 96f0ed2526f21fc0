"""Locating a phase transition from where a classifier changes its mind.

A classifier trained only on configurations far below (ordered) and far above (disordered)
the transition is applied on a fine temperature grid; T_c(L) is where P(ordered | T) of
lattice size L crosses 1/2, and the finite-size scaling T_c(L) = T_c + a L^(-1/nu)
extrapolates to the infinite lattice. Errors come from a bootstrap over independent
Monte Carlo chains (samples of one chain are correlated, so chains are the unit) and, for
an ensemble of classifiers, from the scatter between their training seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ONSAGER_TC = 2.0 / math.log(1.0 + math.sqrt(2.0))


@dataclass
class Curve:
    """P(ordered | T) of one lattice size, with the chains behind each temperature."""

    L: int
    temperatures: np.ndarray  # (nT,)
    p_ordered: np.ndarray     # (nT,) mean over the samples at each T
    samples: list[tuple[np.ndarray, np.ndarray]]  # per T: (p per sample, chain per sample)


def ordered_probability_curve(L: int, temperature: np.ndarray, chain: np.ndarray,
                              p_ordered: np.ndarray) -> Curve:
    """P(ordered | T) of one lattice size from per-configuration predictions.

    Args:
        L: The lattice size.
        temperature: The temperature of each configuration, (M,).
        chain: The Monte Carlo chain of each configuration, (M,).
        p_ordered: The classifiers' P(ordered) of each configuration, (M,).

    Returns:
        The `Curve`: its mean at each distinct temperature, with the samples and chains
        behind it for `bootstrap_crossing`.
    """
    temps = np.unique(temperature)
    per_t = [(p_ordered[temperature == t], chain[temperature == t]) for t in temps]
    return Curve(L, temps, np.array([p.mean() for p, _ in per_t]), per_t)


def half_crossing(temperatures: np.ndarray, p: np.ndarray) -> float:
    """Temperature where p falls through 1/2, by linear interpolation between grid points.

    Statistical noise can make the curve cross 1/2 more than once near the transition;
    the estimate is then the midpoint of the first and the last downward crossings.

    Args:
        temperatures: Increasing temperatures, (nT,).
        p: P(ordered) at each, (nT,).

    Returns:
        The crossing temperature, NaN if p never falls through 1/2.

    Examples:
        >>> import numpy as np
        >>> from fieldnet.eval.phases import half_crossing
        >>> half_crossing(np.array([2.0, 2.2, 2.4]), np.array([0.9, 0.6, 0.2]))
        2.25
    """
    above = p - 0.5
    changes = np.flatnonzero((above[:-1] > 0) & (above[1:] <= 0))
    if changes.size == 0:
        return math.nan
    crossings = []
    for i in changes:
        t0, t1, a0, a1 = temperatures[i], temperatures[i + 1], above[i], above[i + 1]
        crossings.append(t0 + (t1 - t0) * a0 / (a0 - a1))
    return float(np.mean([crossings[0], crossings[-1]]))


def bootstrap_crossing(curve: Curve, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """T_c(L) and its standard error from resampling whole chains at every temperature.

    Args:
        curve: The curve of one lattice size.
        n_boot: Number of bootstrap resamples.
        rng: The random generator of the resampling.

    Returns:
        (T_c(L), its standard error; NaN with fewer than two finite resamples).
    """
    estimate = half_crossing(curve.temperatures, curve.p_ordered)
    draws = []
    for _ in range(n_boot):
        p = np.empty(len(curve.temperatures))
        for j, (values, chains) in enumerate(curve.samples):
            ids = np.unique(chains)
            picked = rng.choice(ids, size=len(ids), replace=True)
            p[j] = np.concatenate([values[chains == c] for c in picked]).mean()
        draws.append(half_crossing(curve.temperatures, p))
    draws = np.asarray(draws)
    draws = draws[np.isfinite(draws)]
    return estimate, float(draws.std(ddof=1)) if draws.size > 1 else math.nan


@dataclass
class Extrapolation:
    """The fit of `finite_size_extrapolation`.

    Attributes:
        tc: The extrapolated T_c (L -> infinity).
        tc_err: Its standard error, inflated by sqrt(chi2/dof) when that exceeds 1.
        coefficients: The correction amplitudes a_1, a_2, ... of L^(-1/nu), L^(-2/nu), ...
        chi2: The fit's chi-squared.
        dof: Its degrees of freedom.
    """

    tc: float
    tc_err: float
    coefficients: list[float]  # of L^(-1/nu), L^(-2/nu), ...
    chi2: float
    dof: int

    @property
    def slope(self) -> float:
        """The leading correction amplitude a_1."""
        return self.coefficients[0]


def finite_size_extrapolation(sizes, tcs, errs, nu: float = 1.0,
                              corrections: int = 1) -> Extrapolation:
    """Weighted least squares of T_c(L) = T_c + a_1 L^(-1/nu) + ... + a_n L^(-n/nu).

    n = `corrections`. With n = 2 the fit allows the drift of a crossing at a fixed classifier
    threshold: at T_c the order parameter falls as L^(-beta/nu), so the scaling variable of a
    fixed threshold changes with L and the leading 1/L shift is not the whole story. When
    the points scatter more than their errors allow (chi2/dof > 1), the error of T_c is
    inflated by sqrt(chi2/dof) so that it stays honest.

    Args:
        sizes: The lattice sizes L.
        tcs: T_c(L) of each.
        errs: Their standard errors (non-finite or zero ones take the largest finite one).
        nu: The correlation-length exponent (1 for the 2D Ising model).
        corrections: n, the number of correction terms, ≥ 1.

    Returns:
        The `Extrapolation`.

    Raises:
        ValueError: With fewer than one correction term or fewer than n + 1 sizes.
    """
    x = np.asarray(sizes, float) ** (-1.0 / nu)
    y, s = np.asarray(tcs, float), np.asarray(errs, float)
    if corrections < 1:
        raise ValueError(f"the extrapolation needs at least one correction term, got "
                         f"{corrections}")
    if len(x) < corrections + 1:
        raise ValueError(f"the finite-size extrapolation with {corrections} correction terms "
                         f"needs at least {corrections + 1} lattice sizes, got {len(x)}")
    s = np.where(np.isfinite(s) & (s > 0), s, np.nanmax(s[np.isfinite(s)], initial=1e-3))
    basis = np.stack([x ** n for n in range(corrections + 1)], axis=1)
    design = basis / s[:, None]
    coef, *_ = np.linalg.lstsq(design, y / s, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    chi2 = float(np.sum(((y - basis @ coef) / s) ** 2))
    dof = len(x) - corrections - 1
    inflate = math.sqrt(max(chi2 / dof, 1.0)) if dof > 0 else 1.0
    return Extrapolation(float(coef[0]), float(math.sqrt(cov[0, 0]) * inflate),
                         [float(a) for a in coef[1:]], chi2, dof)


@dataclass
class EnsembleError:
    """The error of an ensemble's estimate (`ensemble_error`).

    Attributes:
        error: The total standard error.
        seed_scatter: The standard deviation of the members' own estimates (NaN if fewer
            than two).
    """

    error: float          # total standard error of the ensemble's estimate
    seed_scatter: float   # standard deviation of the members' own estimates (NaN if < 2)


def ensemble_error(statistical_err: float, member_estimates) -> EnsembleError:
    """The error of an estimate made from an ensemble of K classifiers trained with different
    seeds on the same data: the data's error (bootstrap over chains) and the standard error
    of the mean over training seeds, sigma_seed / sqrt(K), in quadrature.

    The members see the same chains, so their scatter is the training seed's alone and the
    two parts are independent. Members without an estimate (NaN) are left out; with fewer
    than two, the seed's part cannot be measured and only the data's error remains.

    Args:
        statistical_err: The data's error of the ensemble's estimate.
        member_estimates: Each member's own estimate.

    Returns:
        The `EnsembleError`.
    """
    values = np.asarray(member_estimates, float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return EnsembleError(float(statistical_err), math.nan)
    scatter = float(values.std(ddof=1))
    return EnsembleError(float(math.sqrt(statistical_err ** 2 + scatter ** 2 / values.size)),
                         scatter)
