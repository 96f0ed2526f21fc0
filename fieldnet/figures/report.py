"""The report figures of a run: the model against the truth and against the local baseline.

Every function takes arrays or the dicts of `fieldnet.eval.metrics` and a path, and writes a
PNG. Fields are passed in the space they are scored in (log10 rho, log10 T [K] by default)
in stacks `(N, *spatial)`; `target` (a `FieldLabel`) names the target's space on the axes.
Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
pyplot, so importing this module changes no global backend (a notebook keeps its own).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from fieldnet import rundir
from fieldnet.data.transforms import TRANSFORMS
from fieldnet.eval import metrics
from fieldnet.files import atomic_output
from fieldnet.grid import Grid

DPI = 120
FIGURE_NAMES = {"maps": "maps.png", "power": "power.png", "cross_corr": "cross_corr.png",
                "pdf": "pdf.png", "phase_diagram": "phase_diagram.png",
                "per_box": "per_box.png", "training": "training.png"}
COLORS = {"true": "black", "model": "tab:blue", "baseline": "tab:orange"}
K_LABEL = r"$k$ [$h\,$Mpc$^{-1}$]"


@dataclass(frozen=True)
class FieldLabel:
    r"""How a target is named on the axes: `tex`, its scored quantity in TeX without the
    dollars (r"\log_{10} T"), and the units of the field."""

    tex: str
    units: str = ""

    @property
    def symbol(self) -> str:
        r"""The scored quantity in TeX between dollars, e.g. `$\log_{10} T$`."""
        return f"${self.tex}$"

    @property
    def full(self) -> str:
        """The axis label: symbol and units."""
        return f"{self.symbol} [{self.units}]" if self.units else self.symbol


# The symbols of the field names that the simulator and the snapshot importer write.
FIELD_SYMBOLS = {"temperature": "T", "density": r"\rho", "gas_density": r"\rho_\mathrm{gas}",
                 "velocity_dispersion": r"\sigma_v", "velocity_divergence": r"\theta",
                 "velocity_x": "v_x", "velocity_y": "v_y", "velocity_z": "v_z"}


def field_label(name: str, transform: str = "log10", units: str = "") -> FieldLabel:
    r"""The `FieldLabel` of field `name` scored in `transform`'s space.

    `transform` is a `fieldnet.data.transforms.TRANSFORMS` name, whose `tex` it fills in.

    Args:
        name: The field's name; `FIELD_SYMBOLS` gives the symbol of known ones, others are
            written out in roman type.
        transform: The transform the field is scored in, a `TRANSFORMS` name.
        units: The field's units (e.g. `"K"`), shown in brackets; empty: none shown.

    Returns:
        The label.

    Examples:
        >>> print(field_label("temperature", "log10", "K").full)
        $\log_{10} T$ [K]
        >>> print(field_label("velocity_divergence", "none").full)
        $\theta$
    """
    symbol = FIELD_SYMBOLS.get(name, r"\mathrm{" + name.replace("_", r"\_") + "}")
    return FieldLabel(TRANSFORMS[transform].tex.format(symbol), units)


TEMPERATURE = field_label("temperature", "log10", "K")
LOG_T_LABEL = TEMPERATURE.full


def log_rho_label(density_units: str) -> str:
    """The axis label of log10 rho, with the density's units.

    Args:
        density_units: Units of the density (e.g. `"(M_sun/h)/(Mpc/h)^3"`); empty: none
            shown.

    Returns:
        The TeX label.
    """
    return r"$\log_{10} \rho$" + (f" [{density_units}]" if density_units else "")


def label_k_axis(ax) -> None:
    """Labels a log x axis as k in h/Mpc.

    Ticks at 1, 2, 5 x 10^n are written as plain numbers, because the default minor-tick
    labels collide on the one or two decades a box spans.

    Args:
        ax: The matplotlib axes whose x axis is k.
    """
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(K_LABEL)


def save_figure(fig: Figure, path: str | os.PathLike | None,
                metadata: dict | None = None) -> Path | Figure:
    """Writes fig to path atomically and returns the path.

    With path None it returns the Figure unsaved, so a caller can title it or save it in
    several formats.

    Args:
        fig: The figure.
        path: The file to write, its format from its suffix (its folder is made); None:
            not saved.
        metadata: matplotlib's metadata keys for that format.

    Returns:
        The path written, or `fig` when `path` is None.
    """
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A laid-out figure already fits its canvas; "tight" would draw it twice to crop it.
    bbox = None if fig.get_layout_engine() is not None else "tight"
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format=path.suffix[1:], dpi=DPI, bbox_inches=bbox, metadata=metadata)
    return path


def central_slice(field: np.ndarray) -> np.ndarray:
    """A 2D map to show: the field itself in 2D, its middle slice along axis 0 in 3D.

    Args:
        field: One field, shape `(H, W)` or `(D, H, W)`.

    Returns:
        The 2D map, shape `(H, W)`.

    Raises:
        ValueError: If the field is neither 2D nor 3D.
    """
    if field.ndim == 3:
        return field[field.shape[0] // 2]
    if field.ndim != 2:
        raise ValueError(f"maps need 2D or 3D fields, got a field of shape {field.shape}")
    return field


def maps_panel(density, true_t, pred_t, path, baseline_t=None, *,
               target: FieldLabel = TEMPERATURE, density_units: str = "",
               grid: Grid | None = None, n_samples: int = 3) -> Path:
    """Rows of held-out samples: log10 rho, true / predicted (/ baseline) log10 T, residuals.

    The residuals pred - true (and baseline - true) are in dex; axes in Mpc/h on the
    fields' `grid` when given.

    All T panels share one colour scale and all residual panels one symmetric scale (one
    colour bar each column), so the eye compares like with like. 3D fields show their
    middle slice along the first axis.

    Args:
        density: log10 rho, shape `(N, *spatial)`.
        true_t: The true target (log10 T [K] by default), shape `(N, *spatial)`.
        pred_t: The model's prediction, shape `(N, *spatial)`.
        path: The PNG file to write; None returns the figure unsaved.
        baseline_t: The local baseline's prediction, shape `(N, *spatial)`; None: not shown.
        target: Names the target's space on the titles.
        density_units: Units of the density, for its title.
        grid: The grid of one field (box lengths in Mpc/h) for the axes; None: no axes.
        n_samples: Rows (samples) shown, at most N.

    Returns:
        The path written, or the figure when `path` is None.

    Raises:
        ValueError: If the fields are neither 2D nor 3D.
    """
    n_rows = min(n_samples, len(metrics.as_stack(true_t)))

    def slices(stack):
        return [central_slice(field) for field in metrics.as_stack(stack)[:n_rows]]

    rho, t_true, t_pred = slices(density), slices(true_t), slices(pred_t)
    t_base = None if baseline_t is None else slices(baseline_t)
    t_maps = t_true + t_pred + (t_base or [])
    t_range = value_range(t_maps)
    columns = [(log_rho_label(density_units), "cividis", value_range(rho), rho),
               ("true " + target.full, "inferno", t_range, t_true),
               ("model " + target.full, "inferno", t_range, t_pred)]
    residuals = [("model $-$ true [dex]", [p - t for p, t in zip(t_pred, t_true, strict=True)])]
    if t_base is not None:
        columns.append(("local baseline " + target.full, "inferno", t_range, t_base))
        residuals.append(("baseline $-$ true [dex]",
                          [b - t for b, t in zip(t_base, t_true, strict=True)]))
    res_max = max(float(np.abs(r).max()) for _, maps in residuals for r in maps) or 1.0
    columns += [(title, "RdBu_r", (-res_max, res_max), maps) for title, maps in residuals]
    return map_grid(columns, n_rows, path, grid=grid)


def map_extent(grid: Grid | None) -> tuple[float, float, float, float] | None:
    """The imshow extent [Mpc/h] of a map of a field on `grid`.

    The map is `central_slice`, drawn transposed (its first axis across), so the extent
    is the last two axes' lengths.

    Args:
        grid: The grid of one field; None: no extent.

    Returns:
        (0, across, 0, up) in Mpc/h, or None without a grid.

    Raises:
        ValueError: If the grid has fewer than 2 axes.
    """
    if grid is None:
        return None
    if grid.ndim < 2:
        raise ValueError(f"maps need 2D or 3D fields, got a grid of shape {grid.shape}")
    across, up = grid.lengths[-2:]
    return (0.0, across, 0.0, up)


def map_grid(columns, n_rows: int, path, *, grid: Grid | None = None) -> Path | Figure:
    """Maps in rows, one column per (title, colormap, (vmin, vmax), list of 2D maps).

    Each column has its colour bar; axes in Mpc/h when the fields' `grid` is given.

    Args:
        columns: (title, colormap name, (vmin, vmax), maps) per column, each with one 2D
            map per row.
        n_rows: Rows of maps.
        path: The PNG file to write; None returns the figure unsaved.
        grid: The grid of one field (box lengths in Mpc/h) for the axes; None: no axes.

    Returns:
        The path written, or the figure when `path` is None.
    """
    fig = Figure(figsize=(2.6 * len(columns), 2.5 * n_rows + 0.8), layout="constrained")
    axes = fig.subplots(n_rows, len(columns), squeeze=False, sharex=True, sharey=True)
    extent = map_extent(grid)
    for j, (title, cmap, (vmin, vmax), maps) in enumerate(columns):
        for i, image in enumerate(maps):
            ax = axes[i, j]
            im = ax.imshow(image.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                           extent=extent)
            ax.tick_params(labelsize=7)
            if extent is None:
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, j].set_title(title, fontsize=9)
        fig.colorbar(im, ax=axes[:, j], location="bottom", shrink=0.9)
    if extent is not None:
        for ax in axes[-1]:
            ax.set_xlabel("[Mpc/$h$]", fontsize=8)
    return save_figure(fig, path)


def value_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """The smallest and largest value over a list of maps, for one shared colour scale.

    Args:
        maps: Arrays of any shape.

    Returns:
        (min, max) over all of them.
    """
    return min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)


def positive_or_nan(values: np.ndarray) -> np.ndarray:
    """Values with non-positive or missing entries masked, for log axes.

    Args:
        values: Array of any shape.

    Returns:
        float64 array of its shape, NaN where a value is not > 0.
    """
    values = np.asarray(values, np.float64)
    return np.where(values > 0, values, np.nan)


def power_figure(spec_model: dict, spec_baseline: dict, path, *,
                 target: FieldLabel = TEMPERATURE) -> Path:
    """P(k) of log10 T fluctuations, true / model / baseline, and the transfer function.

    Top: the spectra. Bottom: the transfer function sqrt(P_pred / P_true), whose departure
    from 1 shows missing (or spurious) small-scale power.

    Args:
        spec_model: `metrics.spectral_comparison` of (model, truth): k in h/Mpc, P in
            (Mpc/h)^d.
        spec_baseline: The same of (baseline, truth).
        path: The PNG file to write; None returns the figure unsaved.
        target: Names the target's space on the axes.

    Returns:
        The path written, or the figure when `path` is None.
    """
    k = spec_model["k"]
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.loglog(k, positive_or_nan(spec_model["p_true"]), color=COLORS["true"], label="true")
    top.loglog(k, positive_or_nan(spec_model["p_pred"]), color=COLORS["model"], label="model")
    top.loglog(k, positive_or_nan(spec_baseline["p_pred"]), color=COLORS["baseline"], ls="--",
               label="local baseline")
    d = spec_model["ndim"]
    top.set_ylabel(rf"$P(k)$ of {target.symbol} [(Mpc/$h$)$^{{{d}}}$]")
    top.legend(frameon=False)
    bottom.semilogx(k, spec_model["transfer"], color=COLORS["model"], label="model")
    bottom.semilogx(k, spec_baseline["transfer"], color=COLORS["baseline"], ls="--",
                    label="local baseline")
    bottom.axhline(1.0, color="gray", lw=0.8)
    bottom.set_ylabel(r"$\sqrt{P_\mathrm{pred}/P_\mathrm{true}}$")
    label_k_axis(bottom)
    return save_figure(fig, path)


def cross_corr_figure(spec_model: dict, spec_baseline: dict, path,
                      k_half_nyquist: float | None = None, *,
                      target: FieldLabel = TEMPERATURE) -> Path:
    """r(k) = P_pt / sqrt(P_pp P_tt), model against baseline.

    The fraction of the true fluctuations the prediction gets in phase, scale by scale.
    A dotted line marks k_N / 2, beyond which the grid resolves little.

    Args:
        spec_model: `metrics.spectral_comparison` of (model, truth), k in h/Mpc.
        spec_baseline: The same of (baseline, truth).
        path: The PNG file to write; None returns the figure unsaved.
        k_half_nyquist: Where the dotted line goes, in h/Mpc (default: from
            `spec_model["k_nyquist"]`).
        target: Names the target's space on the axes.

    Returns:
        The path written, or the figure when `path` is None.
    """
    k = spec_model["k"]
    k_half = spec_model["k_nyquist"] / 2 if k_half_nyquist is None else k_half_nyquist
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.semilogx(k, spec_model["cross_corr"], color=COLORS["model"], label="model")
    ax.semilogx(k, spec_baseline["cross_corr"], color=COLORS["baseline"], ls="--",
                label="local baseline")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.axvline(k_half, color="gray", ls=":", lw=1, label=r"$k_\mathrm{Nyq}/2$")
    lowest = np.concatenate([spec_model["cross_corr"], spec_baseline["cross_corr"]])
    lowest = lowest[np.isfinite(lowest)]
    ax.set_ylim(min(0.0, float(lowest.min())) if lowest.size else 0.0, 1.05)
    label_k_axis(ax)
    ax.set_ylabel(rf"$r(k)$ of {target.symbol}")
    ax.legend(frameon=False, loc="lower left")
    return save_figure(fig, path)


def histogram_edges(reference, n_bins: int) -> np.ndarray:
    """Bins spanning the 0.05-99.95 percentile range of `reference` (the truth), padded by 5%.

    Extreme outliers of a bad prediction would otherwise squash the plot.

    Args:
        reference: Values of any shape.
        n_bins: Number of bins.

    Returns:
        The `n_bins + 1` bin edges, in the units of `reference`.
    """
    lo, hi = np.percentile(np.asarray(reference).ravel(), [0.05, 99.95])
    pad = 0.05 * (hi - lo) or 0.5
    return np.linspace(lo - pad, hi + pad, n_bins + 1)


# Curves of `pdf_panels` without a style of their own, in order.
CURVE_STYLES = ({"color": "black", "ls": "-"}, {"color": "tab:blue", "ls": "--"},
                {"color": "tab:green", "ls": ":"})
PREDICTION_STYLES = {"true": {"color": COLORS["true"], "ls": "-"},
                     "model": {"color": COLORS["model"], "ls": "-"},
                     "local baseline": {"color": COLORS["baseline"], "ls": "--"}}


def pdf_panels(panels: dict[str, dict[str, np.ndarray]], path, *,
               styles: dict[str, dict] | None = None, n_bins: int = 80) -> Path | Figure:
    """One-point PDFs (log y, to show the tails), one panel per quantity.

    A panel's bins follow its first curve (the truth, or the reference split).

    Args:
        panels: {x label: {curve label: values}}, one panel per entry; values of any shape,
            in dex (log10 of the field).
        path: The PNG file to write; None returns the figure unsaved.
        styles: A curve's line keywords by its label; the others take `CURVE_STYLES` in
            order.
        n_bins: Bins per panel.

    Returns:
        The path written, or the figure when `path` is None.
    """
    fig = Figure(figsize=(3.5 * len(panels) + 2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (xlabel, curves) in zip(axes, panels.items(), strict=True):
        edges = histogram_edges(next(iter(curves.values())), n_bins)
        centres = 0.5 * (edges[1:] + edges[:-1])
        for k, (label, values) in enumerate(curves.items()):
            style = (styles or {}).get(label, CURVE_STYLES[k % len(CURVE_STYLES)])
            ax.semilogy(centres, positive_or_nan(metrics.one_point_pdf(values, edges)), label=label,
                        **style)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"PDF [dex$^{-1}$]")
        ax.legend(frameon=False)
    return save_figure(fig, path)


def pdf_figure(true_log_t, pred_log_t, path, baseline_log_t=None, *, n_bins: int = 80,
               target: FieldLabel = TEMPERATURE) -> Path:
    """One-point PDFs of log10 T: true, model and baseline.

    The baseline's is usually too narrow, as a conditional mean smooths out the scatter.

    Args:
        true_log_t: The true log10 T [K], shape `(N, *spatial)`.
        pred_log_t: The model's prediction, same shape.
        path: The PNG file to write; None returns the figure unsaved.
        baseline_log_t: The local baseline's prediction, same shape; None: not shown.
        n_bins: Bins of the histogram.
        target: Names the target's space on the x axis.

    Returns:
        The path written, or the figure when `path` is None.
    """
    curves = {"true": true_log_t, "model": pred_log_t}
    if baseline_log_t is not None:
        curves["local baseline"] = baseline_log_t
    return pdf_panels({target.full: curves}, path, styles=PREDICTION_STYLES, n_bins=n_bins)


def _sorted_curve(x: np.ndarray, y: np.ndarray, n_points: int = 2000):
    """(x, y) points at evenly spaced ranks of x: the exact curve of a function y(x)."""
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    order = np.argsort(x)
    picks = order[np.linspace(0, len(order) - 1, min(n_points, len(order))).astype(int)]
    return x[picks], y[picks]


def phase_diagram_panels(panels: dict[str, tuple[np.ndarray, np.ndarray]], path, *,
                         baseline=None, density_units: str = "",
                         n_bins: int = 100, target: FieldLabel = TEMPERATURE) -> Path | Figure:
    """T-rho phase diagrams side by side on one colour scale, all binned as the first.

    Args:
        panels: {title: (log10 rho, log10 T)}, one panel per entry, each a stack
            `(N, *spatial)`.
        path: The PNG file to write; None returns the figure unsaved.
        baseline: (log10 rho, log10 T) points of the local baseline, the conditional mean
            of log10 T, drawn on each panel; None: not shown.
        density_units: Units of the density, for the x axis.
        n_bins: Bins per axis.
        target: Names the target's space on the y axis.

    Returns:
        The path written, or the figure when `path` is None.
    """
    stacks = {title: tuple(metrics.as_stack(a) for a in fields)
              for title, fields in panels.items()}
    first_rho, first_t = next(iter(stacks.values()))
    edges_x = histogram_edges(first_rho, n_bins)
    edges_y = histogram_edges(first_t, n_bins)
    hists = [metrics.joint_histogram(log_rho, log_t, edges_x, edges_y)
             for log_rho, log_t in stacks.values()]
    positive = np.concatenate([h[h > 0] for h in hists])
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    fig = Figure(figsize=(4.6 * len(hists) + 0.8, 4.2), layout="constrained")
    axes = fig.subplots(1, len(hists), sharex=True, sharey=True, squeeze=False)[0]
    for ax, hist, title in zip(axes, hists, stacks, strict=True):
        mesh = ax.pcolormesh(edges_x, edges_y, np.where(hist > 0, hist, np.nan).T,
                             norm=norm, cmap="viridis", rasterized=True)
        if baseline is not None:
            ax.plot(*baseline, color=COLORS["baseline"], lw=1.5,
                    label=rf"local baseline $\langle {target.tex} | \rho \rangle$")
            ax.legend(frameon=False, loc="upper left", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(log_rho_label(density_units))
    axes[0].set_ylabel(target.full)
    fig.colorbar(mesh, ax=axes, label="pixel density [dex$^{-2}$]")
    return save_figure(fig, path)


def phase_diagram_figure(log_rho, true_log_t, pred_log_t, path, baseline_log_t=None, *,
                         density_units: str = "", n_bins: int = 100,
                         target: FieldLabel = TEMPERATURE) -> Path:
    """T-rho phase diagrams, true and predicted (`phase_diagram_panels`).

    The local baseline T(rho) is drawn on both as a curve (it is a function of rho alone).

    Args:
        log_rho: log10 rho, shape `(N, *spatial)`.
        true_log_t: The true log10 T [K], same shape.
        pred_log_t: The model's prediction, same shape.
        path: The PNG file to write; None returns the figure unsaved.
        baseline_log_t: The local baseline's prediction, same shape; None: not shown.
        density_units: Units of the density, for the x axis.
        n_bins: Bins per axis.
        target: Names the target's space on the y axis.

    Returns:
        The path written, or the figure when `path` is None.
    """
    baseline = None if baseline_log_t is None else _sorted_curve(log_rho, baseline_log_t)
    return phase_diagram_panels({"true": (log_rho, true_log_t), "model": (log_rho, pred_log_t)},
                                path, baseline=baseline, density_units=density_units,
                                n_bins=n_bins, target=target)


def per_box_figure(test: dict, path, *, target: FieldLabel = TEMPERATURE) -> Path | Figure:
    """The test MSE box by box, model and local baseline.

    Each test simulation's MSE (normalized space) as points at its sim index; lines and
    bands: the means over all test maps ± their bootstrap standard errors over boxes (no
    band with one box, whose error is unknown). The title states the ratio of the means,
    model / baseline.

    Args:
        test: The "test" block of eval.json (`fieldnet.eval.statistics.boxes` fills its
            per-box keys).
        path: The PNG file to write; None returns the figure unsaved.
        target: Names the target's space on the y axis.

    Returns:
        The path written, or the figure when `path` is None.
    """
    boxes = test["per_box"]
    sims = [b["sim"] for b in boxes]
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for key, name, marker, ls in (("mse", "model", "o", "-"),
                                  ("baseline_mse", "local baseline", "s", "--")):
        color = COLORS["baseline" if key == "baseline_mse" else "model"]
        mean, err = test[key], test.get(f"{key}_err")
        ax.plot(sims, [b[key] for b in boxes], marker, ls="", color=color, gid=key)
        spread = "" if err is None else f" ± {err:.3g}"
        ax.axhline(mean, color=color, ls=ls, lw=1, gid=f"{key}_mean",
                   label=f"{name}: {mean:.3g}{spread}")
        if err is not None:
            ax.axhspan(mean - err, mean + err, color=color, alpha=0.2, lw=0, gid=f"{key}_band")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("test simulation (sim index)")
    ax.set_ylabel(f"test MSE (standardized {target.symbol})")
    ax.set_title(f"MSE model / local baseline = {test['mse'] / test['baseline_mse']:.3f} "
                 f"({len(boxes)} test box{'es' if len(boxes) != 1 else ''})", fontsize=10)
    ax.legend(frameon=False, fontsize=8, title="mean over maps ± bootstrap error",
              title_fontsize=8)
    return save_figure(fig, path)


def training_curves(metrics_jsonl_paths, path, *, labels: Sequence[str] | None = None,
                    baseline_mse: float | None = None,
                    ylabel: str = "loss (normalized space)") -> Path | Figure:
    """Train (lines) and validation (dots) loss against step, log y.

    From whatever records carry them: one run's metrics.jsonl, or several (an ensemble's
    members, one colour each, named by `labels`). With `baseline_mse`, the local
    baseline's test MSE is drawn as the level to beat. Records past a later restart's step
    are drawn as logged.

    Args:
        metrics_jsonl_paths: One metrics.jsonl, or a sequence of them; a missing file draws
            nothing.
        path: The PNG file to write; None returns the figure unsaved.
        labels: Legend name of each file (default `run 0`, `run 1`, ...; none for one).
        baseline_mse: The local baseline's test MSE; None or ≤ 0: not drawn.
        ylabel: The y axis label.

    Returns:
        The path written, or the figure when `path` is None.
    """
    single = isinstance(metrics_jsonl_paths, str | os.PathLike)
    paths = [metrics_jsonl_paths] if single else list(metrics_jsonl_paths)
    labels = list(labels) if labels is not None else (
        [None] if single else [f"run {k}" for k in range(len(paths))])
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for k, (metrics_path, label) in enumerate(zip(paths, labels, strict=True)):
        records = rundir.read_metrics(metrics_path) if Path(metrics_path).exists() else []
        for key, style in (("train_loss", {"lw": 1}),
                           ("val_loss", {"ls": "" if not single else "-", "marker": "o",
                                         "ms": 3})):
            points = [(r["step"], r[key]) for r in records
                      if isinstance(r.get("step"), int | float)
                      and isinstance(r.get(key), int | float) and r[key] > 0]
            if not points:
                continue
            if single:
                color = COLORS["model"] if key == "train_loss" else "tab:green"
                name = key.replace("_", " ")
            else:
                color = f"C{k % 10}"
                name = label if key == "train_loss" else None
            ax.plot(*zip(*points, strict=True), color=color, label=name, **style)
    if baseline_mse is not None and baseline_mse > 0:
        ax.axhline(baseline_mse, color=COLORS["baseline"], ls="--", label="local baseline MSE")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no losses logged yet", transform=ax.transAxes, ha="center")
    return save_figure(fig, path)


def write_all(figures_dir, *, log_rho, true_log_t, pred_log_t, baseline_log_t,
              spec_model: dict, spec_baseline: dict, metrics_jsonl=None,
              density_units: str = "", grid: Grid | None = None, n_maps: int = 3,
              summary: dict | None = None,
              target: FieldLabel = TEMPERATURE) -> dict[str, Path]:
    """Writes every figure under `figures_dir` with the fixed names of `FIGURE_NAMES`.

    The stacks are the test set as log10 fields; the spectra come from
    `metrics.spectral_comparison` of (pred, true) and (baseline, true). maps.png shows
    the first `n_maps` test samples, axes in Mpc/h on the fields' `grid`, and is written for
    2D and 3D fields (there are no maps of 1D ones), per_box.png when `summary` (eval.json's
    "test" block) holds "per_box",
    training.png when `metrics_jsonl` exists (with the summary's baseline MSE as the level
    to beat). (A generative run's sample figures: `fieldnet.figures.samples.write_all`.)

    Args:
        figures_dir: The folder to write into (made if missing).
        log_rho: log10 rho of the test maps, shape `(N, *spatial)`.
        true_log_t: The true log10 T [K], same shape.
        pred_log_t: The model's prediction, same shape.
        baseline_log_t: The local baseline's prediction, same shape.
        spec_model: `metrics.spectral_comparison` of (model, truth), k in h/Mpc.
        spec_baseline: The same of (baseline, truth).
        metrics_jsonl: The run's metrics.jsonl, for training.png; None: not drawn.
        density_units: Units of the density, for the axes.
        grid: The grid of one field (box lengths in Mpc/h) for the maps' axes.
        n_maps: Test maps shown in maps.png.
        summary: eval.json's "test" block, for per_box.png and the baseline MSE.
        target: Names the target's space on the axes.

    Returns:
        {figure: path} of the figures written.
    """
    out = Path(figures_dir)
    paths = {}
    if metrics.as_stack(true_log_t).ndim > 2:
        paths["maps"] = maps_panel(log_rho, true_log_t, pred_log_t, out / FIGURE_NAMES["maps"],
                                   baseline_log_t, target=target,
                                   density_units=density_units, grid=grid,
                                   n_samples=n_maps)
    paths.update({
        "power": power_figure(spec_model, spec_baseline, out / FIGURE_NAMES["power"],
                              target=target),
        "cross_corr": cross_corr_figure(spec_model, spec_baseline,
                                        out / FIGURE_NAMES["cross_corr"], target=target),
        "pdf": pdf_figure(true_log_t, pred_log_t, out / FIGURE_NAMES["pdf"], baseline_log_t,
                          target=target),
        "phase_diagram": phase_diagram_figure(log_rho, true_log_t, pred_log_t,
                                              out / FIGURE_NAMES["phase_diagram"],
                                              baseline_log_t, density_units=density_units,
                                              target=target),
    })
    if summary is not None and "per_box" in summary:
        paths["per_box"] = per_box_figure(summary, out / FIGURE_NAMES["per_box"],
                                          target=target)
    if metrics_jsonl is not None and Path(metrics_jsonl).exists():
        baseline_mse = None if summary is None else summary.get("baseline_mse")
        paths["training"] = training_curves(metrics_jsonl, out / FIGURE_NAMES["training"],
                                            baseline_mse=baseline_mse)
    return paths
