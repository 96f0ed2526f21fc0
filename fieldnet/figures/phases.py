"""Figures of the phase study: P(ordered | T) per lattice size and T_c(L) against L (the
members' training losses are `report.training_curves`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fieldnet.eval.phases import ONSAGER_TC, Curve, Extrapolation
from fieldnet.figures.report import save_figure


def phase_curves(curves: list[Curve], path, *, ordered_below: float, disordered_above: float,
                 members: list[list[Curve]] | None = None) -> Path:
    """The ensemble's P(ordered | T) for each L, each member's faintly behind it.

    Shaded: the training temperatures.

    Args:
        curves: The ensemble's curve of each lattice size L (temperatures in J/k_B).
        path: File the figure is written to.
        ordered_below: Highest training temperature of the ordered class, in J/k_B.
        disordered_above: Lowest training temperature of the disordered class, in J/k_B.
        members: Each member's curve of each lattice size (`members[i]` for `curves[i]`);
            drawn when there is more than one member.

    Returns:
        The path of the written figure.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    low = min(c.temperatures.min() for c in curves)
    high = max(c.temperatures.max() for c in curves)
    ax.axvspan(low, ordered_below, color="0.92")
    ax.axvspan(disordered_above, high, color="0.92", label="training temperatures")
    for i, c in enumerate(curves):
        color = f"C{i % 10}"
        for m in (members[i] if members and len(members[0]) > 1 else []):
            ax.plot(m.temperatures, m.p_ordered, color=color, lw=0.7, alpha=0.35)
        ax.plot(c.temperatures, c.p_ordered, color=color, marker="o", ms=3, label=f"L = {c.L}")
    ax.axvline(ONSAGER_TC, color="k", ls="--", lw=1, label=r"Onsager $T_c$")
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.set_xlabel(r"temperature $T$ [$J/k_B$]")
    ax.set_ylabel(r"$P(\mathrm{ordered}\mid T)$")
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path)


def tc_extrapolation(sizes, per_size: dict, fit: Extrapolation, path, *, nu: float,
                     tc_err: float | None = None) -> Path:
    """T_c(L) against L^(-1/nu), each member's T_c(L) faintly, the fit, and Onsager's value.

    Args:
        sizes: The lattice sizes L.
        per_size: Per size (keyed by `str(L)`): `"tc"` and `"tc_err"` in J/k_B, and
            optionally `"members"`, each member's T_c(L) (None where it has none).
        fit: The extrapolation of T_c(L) to L -> infinity.
        path: File the figure is written to.
        nu: Correlation-length exponent of the x axis.
        tc_err: Error shown on the extrapolated point, in J/k_B (default: the fit's).

    Returns:
        The path of the written figure.
    """
    x = np.asarray(sizes, float) ** (-1.0 / nu)
    y = np.array([per_size[str(L)]["tc"] for L in sizes])
    err = np.array([per_size[str(L)]["tc_err"] for L in sizes])
    tc_err = fit.tc_err if tc_err is None else tc_err
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    members = [per_size[str(L)].get("members") or [] for L in sizes]
    label = "single classifiers"
    for xi, values in zip(x, members, strict=True):
        values = [v for v in values if v is not None]
        if len(values) > 1:
            ax.plot(np.full(len(values), xi), values, "_", color="0.6", ms=8, label=label)
            label = None
    ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label=r"$T_c(L)$, 1/2 crossing")
    grid = np.linspace(0, x.max() * 1.05, 50)
    curve = fit.tc + sum(a * grid ** (n + 1) for n, a in enumerate(fit.coefficients))
    ax.plot(grid, curve, color="tab:blue", lw=1,
            label=rf"fit: $T_c = {fit.tc:.4f} \pm {tc_err:.4f}$")
    ax.errorbar([0], [fit.tc], yerr=[tc_err], fmt="s", color="tab:blue", capsize=3)
    ax.axhline(ONSAGER_TC, color="k", ls="--", lw=1, label=rf"Onsager $T_c = {ONSAGER_TC:.4f}$")
    ax.set_xlabel(rf"$L^{{-1/\nu}}$ ($\nu = {nu:g}$)")
    ax.set_ylabel(r"$T_c$ [$J/k_B$]")
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path)
