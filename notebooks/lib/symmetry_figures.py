"""Figures of equivariance errors (`notebooks.lib.equivariance`): per-pixel maps, and the RMS
error of each case against float32 rounding."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from fieldnet.figures import report


def error_maps_figure(maps: dict[str, np.ndarray], *, box_size: float, units: str,
                      n_cols: int = 2) -> Figure:
    """|error| maps (3D: middle slice) on one logarithmic colour scale; the panel titles
    are the dict's keys."""
    slices = {name: report.central_slice(m) for name, m in maps.items()}
    top = max(float(m.max()) for m in slices.values())
    floor = max(top * 1e-9, np.finfo(np.float32).tiny)
    norm = LogNorm(vmin=floor, vmax=max(top, floor * 10))
    n_rows = math.ceil(len(slices) / n_cols)
    fig = Figure(figsize=(3.3 * n_cols + 0.8, 3.1 * n_rows + 0.3), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    extent = (0, box_size, 0, box_size)
    for ax, (name, image) in zip(axes.flat, slices.items(), strict=False):
        im = ax.imshow(np.maximum(image, floor).T, origin="lower", cmap="magma", norm=norm,
                       extent=extent)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(slices):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("[Mpc/$h$]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("[Mpc/$h$]", fontsize=8)
    fig.colorbar(im, ax=axes, label=f"|equivariance error| [{units}]")
    return fig


def error_bars_figure(errors: dict[str, float], *, units: str, rounding: float) -> Figure:
    """RMS equivariance error of each case on a log axis, against float32 rounding of the
    output (the floor an exactly equivariant network reaches); an error of exactly zero
    (bitwise equal outputs) is drawn at the axis floor and labelled so."""
    floor = min([rounding, *(v for v in errors.values() if v > 0)]) / 30
    fig = Figure(figsize=(6.5, 0.55 * len(errors) + 1.2), layout="constrained")
    ax = fig.subplots()
    names = list(errors)
    values = [max(errors[n], floor) for n in names]
    ax.barh(range(len(names)), values, left=floor / 3, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(floor / 3, max(values) * 30)
    for i, name in enumerate(names):
        label = f" {errors[name]:.2g}" if errors[name] > 0 else " 0 (bitwise equal)"
        ax.text(values[i], i, label, va="center", fontsize=8)
    ax.axvline(rounding, color="gray", ls=":", label="float32 rounding of the output")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xlabel(f"RMS equivariance error [{units}]")
    return fig
