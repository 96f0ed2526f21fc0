"""The figures of a generative run's samples: maps of samples beside the truth and their
mean, their power spectra against the truth's, the calibration of their intervals, and
their per-pixel spread against the error of their mean.

Samples are passed as log10 T stacks `(N, S, *spatial)` (S samples of each of N test
maps), the truth as `(N, *spatial)`; 3D fields show their middle slice along the first
axis. Where a function takes `regression_log_t` (N, *spatial), a regression run's
prediction of the same test maps, it draws it beside the samples (the study's own figures
leave it out). Like `fieldnet.figures.report`, every function draws on its own `Figure`
and writes a PNG atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fieldnet.eval import metrics
from fieldnet.figures.report import (
    COLORS,
    LOG_T_LABEL,
    central_slice,
    label_k_axis,
    log_rho_label,
    map_grid,
    positive_or_nan,
    save_figure,
    value_range,
)
from fieldnet.grid import Grid

# Beside `report.FIGURE_NAMES`, in the same figures/ folder.
FIGURE_NAMES = {"samples": "samples.png", "samples_std": "samples_std.png",
                "samples_power": "samples_power.png", "calibration": "calibration.png"}
NOMINAL_LEVELS = np.linspace(0.02, 0.98, 25)
MAX_SPECTRA_SHOWN = 16
REGRESSION_STYLE = {"color": "tab:red", "ls": "-."}


def _check(true_log_t, samples_log_t) -> tuple[np.ndarray, np.ndarray]:
    true, samples = metrics.as_stack(true_log_t), np.asarray(samples_log_t)
    if samples.shape[-1] == 1 and samples.ndim == true.ndim + 2:
        samples = samples[..., 0]
    if samples.shape[:1] + samples.shape[2:] != true.shape:
        raise ValueError(f"samples must be (N, S, *spatial) for a truth of shape {true.shape}, "
                         f"got {samples.shape}")
    return true, samples


def _check_regression(true: np.ndarray, regression_log_t) -> np.ndarray | None:
    if regression_log_t is None:
        return None
    regression = metrics.as_stack(regression_log_t)
    if regression.shape != true.shape:
        raise ValueError(f"the regression must be (N, *spatial) = {true.shape} like the truth, "
                         f"got {regression.shape}")
    return regression


def samples_panel(density, true_log_t, samples_log_t, path, *, n_maps: int = 3,
                  n_shown: int = 3, density_units: str = "", grid: Grid | None = None,
                  regression_log_t=None):
    """Rows of test maps: log10 rho, the true log10 T, the samples' mean and some samples.

    (With a regression's prediction beside them.) All T maps on one colour scale (the
    mean is smoother than any sample, as a regression's prediction is).

    Args:
        density: log10 rho, shape `(N, *spatial)`.
        true_log_t: The true log10 T [K], shape `(N, *spatial)`.
        samples_log_t: The samples, shape `(N, S, *spatial)`.
        path: The PNG file to write; None returns the figure unsaved.
        n_maps: Rows (test maps) shown, at most N.
        n_shown: Samples shown per map, at most S.
        density_units: Units of the density, for its title.
        grid: The grid of one field (box lengths in Mpc/h) for the axes; None: no axes.
        regression_log_t: A regression run's prediction of the same maps, shape
            `(N, *spatial)`; None: not shown.

    Returns:
        The path written, or the figure when `path` is None.

    Raises:
        ValueError: If the shapes of the samples or the regression do not fit the truth.
    """
    true, samples = _check(true_log_t, samples_log_t)
    regression = _check_regression(true, regression_log_t)
    rows = min(n_maps, len(true))
    shown = min(n_shown, samples.shape[1])
    rho = [central_slice(f) for f in metrics.as_stack(density)[:rows]]
    t_true = [central_slice(f) for f in true[:rows]]
    t_regression = [] if regression is None else [central_slice(f) for f in regression[:rows]]
    t_mean = [central_slice(f) for f in samples[:rows].mean(axis=1)]
    t_samples = [[central_slice(f) for f in samples[:rows, j]] for j in range(shown)]
    t_range = value_range(t_true + t_regression + t_mean
                          + [m for maps in t_samples for m in maps])
    columns = [(log_rho_label(density_units), "cividis", value_range(rho), rho),
               ("true " + LOG_T_LABEL, "inferno", t_range, t_true)]
    if regression is not None:
        columns.append(("regression", "inferno", t_range, t_regression))
    columns.append((f"mean of {samples.shape[1]} samples", "inferno", t_range, t_mean))
    columns += [(f"sample {j + 1}", "inferno", t_range, maps) for j, maps in enumerate(t_samples)]
    return map_grid(columns, rows, path, grid=grid)


def std_figure(true_log_t, samples_log_t, path, *, n_maps: int = 3,
               grid: Grid | None = None, regression_log_t=None):
    """Per row, the samples' per-pixel standard deviation of log10 T and the error of their mean.

    The error |mean - true| (and that of a regression's prediction) is on the same colour
    scale [dex]: where the model is unsure, it should be wrong by about as much.

    Args:
        true_log_t: The true log10 T [K], shape `(N, *spatial)`.
        samples_log_t: The samples, shape `(N, S, *spatial)`.
        path: The PNG file to write; None returns the figure unsaved.
        n_maps: Rows (test maps) shown, at most N.
        grid: The grid of one field (box lengths in Mpc/h) for the axes; None: no axes.
        regression_log_t: A regression run's prediction of the same maps, shape
            `(N, *spatial)`; None: not shown.

    Returns:
        The path written, or the figure when `path` is None.

    Raises:
        ValueError: If the shapes of the samples or the regression do not fit the truth.
    """
    true, samples = _check(true_log_t, samples_log_t)
    regression = _check_regression(true, regression_log_t)
    rows = min(n_maps, len(true))
    std = [central_slice(f) for f in samples[:rows].std(axis=1, ddof=1)]
    errors = [("|mean $-$ true| [dex]", samples[:rows].mean(axis=1))]
    if regression is not None:
        errors.append(("|regression $-$ true| [dex]", regression[:rows]))
    errors = [(title, [central_slice(f) for f in np.abs(pred - true[:rows])])
              for title, pred in errors]
    shown = std + [m for _, maps in errors for m in maps]
    scale = (0.0, max(float(np.percentile(np.concatenate([m.ravel() for m in shown]), 99.5)),
                      1e-6))
    columns = [("std of samples [dex]", "magma", scale, std)]
    columns += [(title, "magma", scale, maps) for title, maps in errors]
    return map_grid(columns, rows, path, grid=grid)


def samples_power_figure(true_log_t, samples_log_t, grid: Grid, path, *,
                         regression_log_t=None):
    """P(k) of log10 T of the truth, the samples and their mean, and P / P_true of each.

    Top: P(k) of log10 T fluctuations of the truth, of each sample (up to 16, faint), of
    the samples' mean (and of a regression's prediction). Bottom: P / P_true of each: samples
    that keep the small-scale power stay near 1 where the mean (like a regression) falls.

    Args:
        true_log_t: The true log10 T [K], shape `(N, *spatial)`.
        samples_log_t: The samples, shape `(N, S, *spatial)`.
        grid: The grid of one field; its box lengths in Mpc/h set k in h/Mpc.
        path: The PNG file to write; None returns the figure unsaved.
        regression_log_t: A regression run's prediction of the same maps, shape
            `(N, *spatial)`; None: not shown.

    Returns:
        The path written, or the figure when `path` is None.

    Raises:
        ValueError: If the shapes of the samples or the regression do not fit the truth.
    """
    true, samples = _check(true_log_t, samples_log_t)
    regression = _check_regression(true, regression_log_t)
    mean = metrics.spectral_comparison(samples.mean(axis=1), true, grid)
    k = mean["k"]
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.loglog(k, positive_or_nan(mean["p_true"]), color=COLORS["true"], label="true", zorder=3)
    for j in range(min(samples.shape[1], MAX_SPECTRA_SHOWN)):
        spec = metrics.spectral_comparison(samples[:, j], true, grid)
        label = "samples" if j == 0 else None
        top.loglog(k, positive_or_nan(spec["p_pred"]), color=COLORS["model"], alpha=0.3, lw=0.8,
                   label=label)
        bottom.semilogx(k, spec["power_ratio"], color=COLORS["model"], alpha=0.3, lw=0.8)
    top.loglog(k, positive_or_nan(mean["p_pred"]), color="tab:green", ls="--",
               label="mean of samples")
    bottom.semilogx(k, mean["power_ratio"], color="tab:green", ls="--")
    if regression is not None:
        spec = metrics.spectral_comparison(regression, true, grid)
        top.loglog(k, positive_or_nan(spec["p_pred"]), label="regression", **REGRESSION_STYLE)
        bottom.semilogx(k, spec["power_ratio"], **REGRESSION_STYLE)
    bottom.axhline(1.0, color="gray", lw=0.8)
    top.set_ylabel(rf"$P(k)$ of $\log_{{10}} T$ [(Mpc/$h$)$^{{{mean['ndim']}}}$]")
    top.legend(frameon=False)
    bottom.set_ylabel(r"$P/P_\mathrm{true}$")
    label_k_axis(bottom)
    return save_figure(fig, path)


def calibration_figure(true_log_t, samples_log_t, path):
    """The calibration of the samples: interval coverage and the rank histogram.

    Left: the fraction of test pixels whose truth lies in the samples' central interval,
    against the interval's nominal level (`metrics.interval_coverage`; on the diagonal when
    calibrated, below it when the samples are too narrow). Right: the histogram of the
    truth's rank among the samples (flat when calibrated, U-shaped when too narrow).

    Args:
        true_log_t: The true log10 T [K], shape `(N, *spatial)`.
        samples_log_t: The samples, shape `(N, S, *spatial)`.
        path: The PNG file to write; None returns the figure unsaved.

    Returns:
        The path written, or the figure when `path` is None.

    Raises:
        ValueError: If the shape of the samples does not fit the truth.
    """
    true, samples = _check(true_log_t, samples_log_t)
    coverage = metrics.interval_coverage(samples, true, NOMINAL_LEVELS)
    counts = metrics.rank_histogram(samples, true)
    n_samples = len(counts) - 1
    fig = Figure(figsize=(8.5, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], color="gray", lw=0.8, label="calibrated")
    left.plot(NOMINAL_LEVELS, coverage, "o-", color=COLORS["model"], ms=3, label="samples")
    left.set_xlabel("nominal level of the central interval")
    left.set_ylabel("fraction of test pixels inside")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.legend(frameon=False)
    right.bar(np.arange(n_samples + 1), counts * (n_samples + 1), width=1.0,
              color=COLORS["model"], alpha=0.7)
    right.axhline(1.0, color="gray", lw=0.8)
    right.set_xlabel(f"rank of the truth among {n_samples} samples")
    right.set_ylabel("relative frequency")
    return save_figure(fig, path)


def write_all(figures_dir, *, log_rho, true_log_t, samples_log_t, grid: Grid,
              density_units: str = "", n_maps: int = 3) -> dict[str, Path]:
    """Writes the sample figures under `figures_dir` with the names of `FIGURE_NAMES`.

    samples.png and samples_std.png (maps in Mpc/h, for 2D and 3D fields),
    samples_power.png (spectra on `grid`, the test fields' `Grid`) and calibration.png.

    Args:
        figures_dir: The folder to write into (made if missing).
        log_rho: log10 rho of the test maps, shape `(N, *spatial)`.
        true_log_t: The true log10 T [K], same shape.
        samples_log_t: The samples, shape `(N, S, *spatial)`.
        grid: The grid of one field (box lengths in Mpc/h).
        density_units: Units of the density, for the maps' titles.
        n_maps: Test maps shown in the maps.

    Returns:
        {figure: path} of the figures written.

    Raises:
        ValueError: If the shape of the samples does not fit the truth.
    """
    out = Path(figures_dir)
    paths = {}
    if metrics.as_stack(true_log_t).ndim > 2:
        paths["samples"] = samples_panel(log_rho, true_log_t, samples_log_t,
                                         out / FIGURE_NAMES["samples"], n_maps=n_maps,
                                         density_units=density_units, grid=grid)
        paths["samples_std"] = std_figure(true_log_t, samples_log_t,
                                          out / FIGURE_NAMES["samples_std"], n_maps=n_maps,
                                          grid=grid)
    paths["samples_power"] = samples_power_figure(true_log_t, samples_log_t, grid,
                                                  out / FIGURE_NAMES["samples_power"])
    paths["calibration"] = calibration_figure(true_log_t, samples_log_t,
                                              out / FIGURE_NAMES["calibration"])
    return paths
