"""Calibration of a generative run's samples: one number, fitted on validation maps.

A flow model trained on few data draws samples that are too alike: the truth falls outside
their central intervals more often than the nominal level says. Two methods fix it with one
scalar each (`METHODS`):

- "spread" widens (or narrows) every sample about the samples' mean by a factor α,

      x'_s = m + α (x_s - m),    m = (1/S) Σ_s x_s   (per map and pixel);

- "offset" moves every sample by a constant over the whole map, σ q_s, where q are the S
  standard normal quantiles (zero mean, unit variance) given out in the order of the
  samples' own map means (the warmest sample gets the largest):

      x'_s = x_s + σ q_(rank of mean(x_s) among the S samples).

The fitted number (α, or σ in the units of the space it was fitted in) makes the
central-interval coverage of the truth match the nominal level at `FIT_LEVELS` on the
validation split (the mean squared coverage error, minimized by a grid and a bounded 1-D
search). Coverage is `metrics.interval_coverage`, from the truth's rank among its samples,
so the fit is unbiased for any number of samples.

Why an offset: a run that cannot tell a simulation's gas parameters from its inputs is
unsure of the map's overall temperature level, and a run trained on a few simulations has
seen few levels, so its samples' map means agree too well. A constant added to a map
changes only its k = 0 mode: the samples' power spectrum at k > 0, their spatial structure
and (the q summing to zero) their mean are exactly those drawn, where a spread α scales
the deviations' power by α².

Why one number:

- The samples' mean is unchanged by either method, so the prediction and its MSE are the
  run's own; only the spread changes.
- Each sample keeps its spatial structure: its deviation from the mean is scaled, not
  re-drawn or mapped pixel by pixel, so the samples stay fields (a per-pixel quantile
  map would decorrelate neighbouring pixels).
- One number fitted on many pixels is stable on a handful of validation boxes, where a
  per-pixel or per-level correction would fit their noise.

Why validation only: the test boxes score the calibrated samples, so fitting α on them
would report the fit, not the calibration. `fit` takes the validation maps' samples; the
test maps are only ever passed to `apply` and `summary`.

Equivariance: α is one scalar and m is a mean over the sample axis, so the map
x ↦ m + α (x - m) acts on each pixel alone, with the same numbers everywhere; the offset
adds to each sample a constant that depends on the samples' map means, which a
permutation of the pixels leaves as they are. Both therefore commute with any permutation
of the pixels, among them the dihedral group's rotations and reflections and the periodic
shifts: calibrating g·x gives g·(calibrated x). If the
model's samples are equivariant in distribution, p(g·x | g·ρ) = p(x | ρ), the calibrated
ones are too. The fit sees the pixels only through their ranks, which a permutation of
the pixels leaves as they are, so the same maps transformed give the same α.

    cal = calibration.fit(val_samples, val_truth)       # normalized, (N, S, *spatial[, C])
    test_samples = calibration.apply(cal, test_samples)
    block = calibration.summary(test_samples, test_truth)   # eval.json keys
    calibration.save(workdir / "calibration.json", cal)

Samples are stacks `(N, S, *spatial)` (S samples of each of N maps; a trailing channel
axis is allowed and shares the one number), the truth `(N, *spatial)` likewise. Any space
that is an affine image of log10 T (the normalized target space, or log10 T itself) gives
the same α and coverages, since the map commutes with affine maps of the values; σ scales
with the image (a run fits and applies it in its normalized target space).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import ndtri

from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, statistics
from fieldnet.files import write_json

METHOD = "spread"            # the default method
METHODS = ("spread", "offset")
# Nominal levels whose coverage the fit matches: the whole curve, so that α is not tuned
# to the two levels eval.json reports.
FIT_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))
# The levels eval.json reports.
REPORT_LEVELS = statistics.COVERAGE_LEVELS
# The search interval of α: beyond a factor 10 the model's spread carries no information.
SPREAD_BOUNDS = (0.1, 10.0)
# Coarse grid of log α before the bounded refinement, so that a flat stretch of the
# objective (few pixels, few samples) cannot trap the search.
GRID_POINTS = 41
SPREAD_TOLERANCE = 1e-4      # of log α in the refinement
# The search interval of σ, in units of the space fitted in: a run's normalized target has
# unit variance, so an offset of 3 would swamp every map.
OFFSET_BOUNDS = (0.0, 3.0)
OFFSET_TOLERANCE = 1e-4
# A run's validation maps' noise is drawn from config.seed + this, its test maps' from
# config.seed: the two splits' samples share no noise.
VALIDATION_SEED_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A fitted calibration, as saved with a run (`to_dict`, `save`).

    Attributes:
        method: "spread": x' = m + spread (x - m) about the samples' mean m; "offset":
            x' = x + offset q, a constant per sample (`offset_samples`).
        spread: The fitted factor α (dimensionless; > 1 widens the samples); 1 for the
            offset method.
        levels: The nominal levels of the central intervals whose coverage was fitted.
        n_maps: Validation maps the fit used.
        n_samples: Samples of each map.
        raw_coverage: Validation coverage of the raw samples at `REPORT_LEVELS`.
        calibrated_coverage: The same after `apply`.
        offset: The fitted σ of the offset method, in the units of the space fitted in
            (a run's normalized target space); 0 for the spread method.
    """

    method: str
    spread: float
    levels: tuple[float, ...]
    n_maps: int
    n_samples: int
    raw_coverage: tuple[float, ...]
    calibrated_coverage: tuple[float, ...]
    offset: float = 0.0


def _ensemble(samples, truth) -> tuple[np.ndarray, np.ndarray]:
    samples, truth = np.asarray(samples), np.asarray(truth)
    if samples.ndim != truth.ndim + 1 or samples.shape[:1] + samples.shape[2:] != truth.shape:
        raise FieldnetError(f"samples must be (N, S, ...) for a truth of shape (N, ...) = "
                            f"{truth.shape}, got {samples.shape}")
    if samples.shape[1] < 2 or samples.shape[0] < 1:
        raise FieldnetError(f"calibration needs at least one map and 2 samples of it, got "
                            f"samples of shape {samples.shape}")
    return samples, truth


def spread_samples(samples, spread: float) -> np.ndarray:
    """The samples widened about their mean over the sample axis (axis 1): m + spread (x - m).

    Args:
        samples: S samples of each of N fields, shape (N, S, ...).
        spread: The factor (dimensionless); 1 returns the samples unchanged (to rounding).

    Returns:
        The widened samples, same shape and dtype; their mean is unchanged for any `spread`.
    """
    samples = np.asarray(samples)
    mean = samples.mean(axis=1, keepdims=True)
    return (mean + spread * (samples - mean)).astype(samples.dtype, copy=False)


def offset_quantiles(n_samples: int) -> np.ndarray:
    """The S standard normal quantiles at (s + 1/2) / S, made exactly zero-mean and of unit
    variance: the offsets, in units of σ, that `offset_samples` gives out.

    Args:
        n_samples: S ≥ 2.

    Returns:
        Increasing quantiles, shape (S,).

    Examples:
        >>> from fieldnet.eval import calibration
        >>> [round(float(q), 3) for q in calibration.offset_quantiles(4)]
        [-1.363, -0.378, 0.378, 1.363]
    """
    q = ndtri((np.arange(n_samples) + 0.5) / n_samples)
    q = q - q.mean()
    return q / np.sqrt(np.mean(q ** 2))


def offset_samples(samples, offset: float) -> np.ndarray:
    """The samples each moved by a constant over the map: sample s of a map by
    offset · q_r, r the rank of its mean over the map among the S samples of that map and q
    `offset_quantiles(S)`, so the order of the samples' map means is kept.

    Args:
        samples: S samples of each of N fields, shape (N, S, ...).
        offset: σ, in the units of the samples; 0 returns them unchanged.

    Returns:
        The moved samples, same shape and dtype; their mean over the samples, and each
        sample's deviation from its own map mean, are unchanged for any `offset`.
    """
    samples = np.asarray(samples)
    n, s = samples.shape[:2]
    means = samples.reshape(n, s, -1).mean(axis=2)
    ranks = np.argsort(np.argsort(means, axis=1, kind="stable"), axis=1)
    shift = offset * offset_quantiles(s)[ranks]
    shift = shift.reshape(n, s, *(1,) * (samples.ndim - 2))
    return (samples + shift).astype(samples.dtype, copy=False)


def _calibrated(samples, method: str, value: float) -> np.ndarray:
    return spread_samples(samples, value) if method == "spread" else offset_samples(samples,
                                                                                    value)


def _fitted(calibration: Calibration) -> float:
    """The number the calibration's method applies: the spread α or the offset σ."""
    return calibration.spread if calibration.method == "spread" else calibration.offset


def check_method(method: str, named: str = "method") -> str:
    """The method, checked.

    Args:
        method: A calibration method's name.
        named: How a message names it (a config key: "eval.calibration_method").

    Returns:
        `method`.

    Raises:
        FieldnetError: One line naming `named`, if `method` is not one of `METHODS`.
    """
    if method not in METHODS:
        raise FieldnetError(f"{named} must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def coverage_error(samples, truth, levels: Sequence[float] = FIT_LEVELS) -> float:
    """The mean over `levels` of (coverage - level)², coverage of the central intervals
    from `metrics.interval_coverage`: 0 for a calibrated ensemble (up to sampling noise).

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).
        levels: Nominal levels in (0, 1).

    Returns:
        The mean squared coverage error, dimensionless.
    """
    levels = np.asarray(levels, np.float64)
    return float(np.mean((metrics.interval_coverage(samples, truth, levels) - levels) ** 2))


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    levels = tuple(float(p) for p in levels)
    if not levels or not all(0.0 < p < 1.0 for p in levels):
        raise FieldnetError(f"calibration levels must be nominal levels in (0, 1), got {levels}")
    return levels


def fit(samples, truth, levels: Sequence[float] = FIT_LEVELS,
        bounds: tuple[float, float] | None = None, method: str = METHOD) -> Calibration:
    """The spread factor α (or offset σ) that calibrates `samples` of the validation maps
    `truth`.

    The number minimizes `coverage_error` of the calibrated samples at `levels`: a grid of
    `GRID_POINTS` values over `bounds` (of log α for the spread, of σ for the offset), then
    a bounded scalar search between the best grid point's neighbours.

    Args:
        samples: S ≥ 2 samples of each of N validation maps, (N, S, *spatial[, C]), in any
            affine image of the target's log space (say the normalized space).
        truth: The N true maps, (N, *spatial[, C]), in the same space.
        levels: Nominal levels of the central intervals to calibrate.
        bounds: The search interval (lo, hi): of α, 0 < lo < 1 < hi (default
            `SPREAD_BOUNDS`); of σ, 0 ≤ lo < hi (default `OFFSET_BOUNDS`).
        method: One of `METHODS`: "spread" (α) or "offset" (σ).

    Returns:
        The frozen `Calibration`, with the raw and calibrated validation coverage at
        `REPORT_LEVELS`.

    Raises:
        FieldnetError: On shapes that do not fit, fewer than 2 samples, levels outside
            (0, 1), bounds that do not fit the method, or an unknown method.

    Examples:
        >>> import numpy as np
        >>> from fieldnet.eval import calibration
        >>> rng = np.random.default_rng(0)
        >>> truth = rng.normal(size=(4, 32, 32))
        >>> samples = 0.5 * rng.normal(size=(4, 8, 32, 32))   # half the true spread
        >>> cal = calibration.fit(samples, truth)
        >>> round(cal.spread, 1), [round(c, 2) for c in cal.raw_coverage]
        (1.9, [0.42, 0.89])
        >>> [round(c, 2) for c in cal.calibrated_coverage]   # REPORT_LEVELS: 0.68, 0.95
        [0.68, 0.95]
    """
    samples, truth = _ensemble(samples, truth)
    levels = _check_levels(levels)
    check_method(method)
    spread = method == "spread"
    lo, hi = (float(b) for b in (bounds or (SPREAD_BOUNDS if spread else OFFSET_BOUNDS)))
    if spread and not 0.0 < lo < 1.0 < hi:
        raise FieldnetError(f"spread bounds must satisfy 0 < lo < 1 < hi, got {bounds}")
    if not spread and not 0.0 <= lo < hi:
        raise FieldnetError(f"offset bounds must satisfy 0 <= lo < hi, got {bounds}")
    samples = samples.astype(np.float64)
    # the spread is searched in log α, the offset in σ itself
    to_value = math.exp if spread else float

    def objective(u: float) -> float:
        return coverage_error(_calibrated(samples, method, to_value(u)), truth, levels)

    grid = np.linspace(math.log(lo), math.log(hi), GRID_POINTS) if spread else \
        np.linspace(lo, hi, GRID_POINTS)
    values = [objective(g) for g in grid]
    best = int(np.argmin(values))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, GRID_POINTS - 1)])
    found = minimize_scalar(objective, bounds=bracket, method="bounded",
                            options={"xatol": SPREAD_TOLERANCE if spread else OFFSET_TOLERANCE})
    value = to_value(float(found.x) if found.fun <= values[best] else float(grid[best]))
    calibrated = _calibrated(samples, method, value)
    return Calibration(
        method=method, spread=value if spread else 1.0, offset=0.0 if spread else value,
        levels=levels, n_maps=int(samples.shape[0]), n_samples=int(samples.shape[1]),
        raw_coverage=_report_coverage(samples, truth),
        calibrated_coverage=_report_coverage(calibrated, truth))


def _report_coverage(samples, truth) -> tuple[float, ...]:
    return tuple(float(v) for v in metrics.interval_coverage(samples, truth, REPORT_LEVELS))


def apply(calibration: Calibration, samples) -> np.ndarray:
    """The calibrated samples: `spread_samples(samples, calibration.spread)`, or
    `offset_samples(samples, calibration.offset)` for the offset method.

    Args:
        calibration: A fitted `Calibration` (`fit`, `load`).
        samples: S ≥ 2 samples of each of N maps, (N, S, *spatial[, C]), in the space the
            calibration was fitted in or any affine image of it.

    Returns:
        The calibrated samples, same shape and dtype; their mean over the samples is the
        input's.

    Raises:
        FieldnetError: If the samples are not (N, S, ...) with S ≥ 2, or the calibration's
            method is not one of `METHODS`.
    """
    check_method(calibration.method, "a calibration's method")
    samples = np.asarray(samples)
    if samples.ndim < 3 or samples.shape[1] < 2:
        raise FieldnetError(f"calibration needs samples (N, S, ...) with S ≥ 2, got shape "
                            f"{samples.shape}")
    return _calibrated(samples, calibration.method, _fitted(calibration))


def describe(calibration: Calibration) -> str:
    """The calibration in a few words, for a file's or a figure's label.

    Args:
        calibration: A fitted `Calibration`.

    Returns:
        "spread 1.25" or "offset 0.23".

    Examples:
        >>> from fieldnet.eval import calibration
        >>> cal = calibration.Calibration("offset", 1.0, (0.5,), 4, 8, (0.6,), (0.68,), 0.2301)
        >>> calibration.describe(cal)
        'offset 0.2301'
    """
    return f"{calibration.method} {_fitted(calibration):.4g}"


def pit_histogram(samples, truth) -> np.ndarray:
    """The PIT histogram: the fractions of pixels whose truth has rank r = 0..S among its S
    samples (`metrics.rank_histogram`); flat at 1 / (S + 1) when calibrated.

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).

    Returns:
        The fractions, shape (S + 1,).
    """
    samples, truth = _ensemble(samples, truth)
    return metrics.rank_histogram(samples, truth)


def pit_ks(samples, truth) -> float:
    """The Kolmogorov-Smirnov distance of the randomized PIT of the truth from uniform.

    With the truth at rank r among S samples its PIT is uniform on [r, r + 1] / (S + 1),
    so the PIT's distribution function is piecewise linear between the cell edges and its
    largest distance from the diagonal lies on an edge: max over k of
    |Σ_{r<k} h_r - k / (S + 1)| for the histogram h (`pit_histogram`).

    Args:
        samples: S ≥ 2 samples of each of N fields, shape (N, S, ...).
        truth: The N true fields, shape (N, ...).

    Returns:
        The distance in [0, 1): 0 for a flat PIT histogram.
    """
    cells = pit_histogram(samples, truth)
    edges = np.arange(len(cells) + 1) / len(cells)
    return float(np.max(np.abs(np.concatenate([[0.0], np.cumsum(cells)]) - edges)))


def summary(samples, truth, calibration: Calibration | None = None) -> dict:
    """The JSON keys of the samples' calibration: `coverage_68`, `coverage_95` and `pit_ks`
    of `samples`; with a `calibration`, also `calibrated_coverage_68`,
    `calibrated_coverage_95`, `calibrated_pit_ks` of the calibrated samples, the fitted
    `spread` and, for the offset method, `offset`.

    Args:
        samples: S ≥ 2 samples of each of N maps (N, S, ...), raw (not yet calibrated).
        truth: The N true maps (N, ...), in the same space.
        calibration: A fitted `Calibration`, or None for the raw keys only.

    Returns:
        {key: float}, ready for eval.json.
    """
    samples, truth = _ensemble(samples, truth)
    block = _keys(samples, truth, "")
    if calibration is not None:
        block.update(_keys(apply(calibration, samples), truth, "calibrated_"))
        block["spread"] = float(calibration.spread)
        if calibration.method == "offset":
            block["offset"] = float(calibration.offset)
    return block


def _keys(samples, truth, prefix: str) -> dict:
    coverage = _report_coverage(samples, truth)
    block = {f"{prefix}coverage_{round(100 * p)}": v
             for p, v in zip(REPORT_LEVELS, coverage, strict=True)}
    block[f"{prefix}pit_ks"] = pit_ks(samples, truth)
    return block


def to_dict(calibration: Calibration) -> dict:
    """The calibration as a JSON-ready dict (tuples as lists); `from_dict` reads it back.

    Args:
        calibration: A fitted `Calibration`.

    Returns:
        {field: value} of the dataclass.
    """
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(calibration).items()}


def from_dict(d: dict) -> Calibration:
    """The `Calibration` of a `to_dict` dict.

    Args:
        d: The dict, as read from JSON.

    Returns:
        The `Calibration`.

    Raises:
        FieldnetError: If keys are missing or unknown, the method is not one of
            `METHODS`, the spread is not a positive finite number or the offset not a
            finite number ≥ 0.
    """
    names = [f.name for f in dataclasses.fields(Calibration)]
    # a calibration saved before the offset method has no "offset" key
    if not isinstance(d, dict) or not set(names) - {"offset"} <= set(d) <= set(names):
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise FieldnetError(f"a calibration needs the keys {names}, got {got}")
    check_method(d["method"], "a calibration's method")
    spread, offset = d["spread"], d.get("offset", 0.0)
    if not _number(spread) or spread <= 0:
        raise FieldnetError(f"a calibration's spread must be a positive number, got {spread!r}")
    if not _number(offset) or offset < 0:
        raise FieldnetError(f"a calibration's offset must be a number ≥ 0, got {offset!r}")
    return Calibration(
        method=d["method"], spread=float(spread), offset=float(offset),
        levels=_check_levels(d["levels"]), n_maps=int(d["n_maps"]),
        n_samples=int(d["n_samples"]),
        raw_coverage=tuple(float(v) for v in d["raw_coverage"]),
        calibrated_coverage=tuple(float(v) for v in d["calibrated_coverage"]))


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and \
        math.isfinite(value)


def save(path: str | os.PathLike, calibration: Calibration) -> Path:
    """Writes `to_dict(calibration)` as JSON to `path`, atomically.

    Args:
        path: The file to write (e.g. a run's calibration.json); its folder must exist.
        calibration: A fitted `Calibration`.

    Returns:
        `path`, as a `Path`.
    """
    return write_json(path, to_dict(calibration))


def load(path: str | os.PathLike) -> Calibration:
    """The calibration `save` wrote to `path`.

    Args:
        path: The JSON file.

    Returns:
        The `Calibration`.

    Raises:
        FieldnetError: If the file is missing, not JSON, or not a calibration.
    """
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FieldnetError(f"{path}: cannot read a calibration ({e})") from None
    try:
        return from_dict(d)
    except FieldnetError as e:
        raise FieldnetError(f"{path}: {e}") from None


def spread_maps(sim_index, n: int | None) -> np.ndarray:
    """Indices of at most `n` maps of a split, taken in turn from each simulation, so that a
    fit on a limited number of maps still sees every box.

    Args:
        sim_index: The simulation of each map of the split, shape (N,).
        n: The most maps to take; None (or n ≥ N) takes them all.

    Returns:
        The chosen indices into the split, sorted.

    Examples:
        >>> from fieldnet.eval import calibration
        >>> calibration.spread_maps([0, 0, 0, 1, 1, 1], 4).tolist()
        [0, 1, 3, 4]
    """
    sim_index = np.asarray(sim_index)
    if n is None or n >= len(sim_index):
        return np.arange(len(sim_index))
    by_sim = [np.flatnonzero(sim_index == s) for s in np.unique(sim_index)]
    turns = [m[j] for j in range(max(map(len, by_sim))) for m in by_sim if j < len(m)]
    return np.sort(np.asarray(turns[:n], dtype=int))


def apply_channels(calibrations: Sequence[Calibration], samples) -> np.ndarray:
    """Calibrates each channel of samples `(N, S, *spatial, C)` with its own calibration.

    Args:
        calibrations: One `Calibration` per channel, in channel order.
        samples: S ≥ 2 samples of each of N maps, the channel axis last.

    Returns:
        The calibrated samples, same shape and dtype.

    Raises:
        FieldnetError: If the number of calibrations is not the number of channels.
    """
    samples = np.asarray(samples)
    if len(calibrations) != samples.shape[-1]:
        raise FieldnetError(f"{len(calibrations)} calibration(s) for samples of "
                            f"{samples.shape[-1]} channel(s)")
    return np.stack([apply(cal, samples[..., c]) for c, cal in enumerate(calibrations)],
                    axis=-1)


def save_fields(path: str | os.PathLike, calibrations: Mapping[str, Calibration]) -> Path:
    """Writes a run's calibrations, one per target field, as JSON to `path` (atomically):
    {"fields": {name: to_dict(calibration)}}.

    Args:
        path: The file to write (a run's calibration.json); its folder must exist.
        calibrations: {target label: fitted `Calibration`}, in the targets' channel order.

    Returns:
        `path`, as a `Path`.
    """
    return write_json(path, {"fields": {name: to_dict(cal)
                                        for name, cal in calibrations.items()}})


def load_fields(path: str | os.PathLike) -> dict[str, Calibration]:
    """The calibrations `save_fields` wrote to `path`.

    Args:
        path: The JSON file.

    Returns:
        {target label: `Calibration`}, in the order saved.

    Raises:
        FieldnetError: If the file is missing, not JSON, or not a run's calibrations.
    """
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FieldnetError(f"{path}: cannot read a calibration ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("fields"), dict) or not d["fields"]:
        raise FieldnetError(f"{path}: a run's calibration needs a non-empty \"fields\" "
                            "object")
    try:
        return {name: from_dict(cal) for name, cal in d["fields"].items()}
    except FieldnetError as e:
        raise FieldnetError(f"{path}: {e}") from None
