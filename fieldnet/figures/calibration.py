"""The figure of a calibration (`fieldnet.eval.calibration`): the samples' coverage before
and after, and their PIT histograms.

Samples are stacks `(N, S, *spatial)` (S samples of each of N maps), the truth
`(N, *spatial)`, in log10 T or the normalized target space (the figure is the same in
both). Like `fieldnet.figures.samples`, the function draws on its own `Figure` and writes
a PNG atomically, or returns the Figure for path None.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from fieldnet.eval import calibration as calibrate
from fieldnet.eval import metrics
from fieldnet.figures.report import COLORS, save_figure
from fieldnet.figures.samples import NOMINAL_LEVELS

# In a calibrated run's figures/ (a further target's in figures/<target>/), beside the
# samples' own calibration.png (`fieldnet.figures.samples`).
FIGURE_NAME = "calibration_fit.png"
STYLES = {"raw": {"color": COLORS["model"], "marker": "o"},
          "calibrated": {"color": "tab:green", "marker": "s"}}
COVERAGE_LABEL = "fraction of pixels inside"
LEVEL_LABEL = "nominal level of the central interval"
PIT_LABEL = "PIT of the truth (rank among the samples)"
DENSITY_LABEL = "relative frequency"


def calibrated_label(calibration: calibrate.Calibration) -> str:
    """The legend label of calibrated samples: "× 1.25 about the mean" (spread) or
    "offset σ = 0.23" (offset).

    Args:
        calibration: The fitted `Calibration`.

    Returns:
        The label.
    """
    if calibration.method == "offset":
        return f"offset σ = {calibration.offset:.3g}"
    return f"× {calibration.spread:.3g} about the mean"


def calibration_figure(samples, truth, calibration: calibrate.Calibration, path, *,
                       maps: str = "test"):
    """Left: coverage of the samples' central intervals against their nominal level, for
    the raw samples and for `calibrate.apply(calibration, samples)`, beside the diagonal
    (calibrated). Right: the PIT histogram of each (the truth's rank among the S samples,
    as the PIT cell [r, r + 1] / (S + 1); flat at 1 when calibrated, U-shaped when the
    samples are too narrow), with its KS distance from uniform in the legend.

    Args:
        samples: The raw samples (N, S, *spatial), S ≥ 2.
        truth: The true maps (N, *spatial).
        calibration: The fitted calibration (on validation maps).
        path: The PNG to write, or None to return the Figure.
        maps: Which maps these are, for the axis label ("test", "validation").

    Returns:
        The path written, or the Figure for path None.
    """
    shown = {"raw": np.asarray(samples), "calibrated": calibrate.apply(calibration, samples)}
    fig = Figure(figsize=(8.5, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], color="gray", lw=0.8, label="calibrated (nominal)")
    for name, drawn in shown.items():
        coverage = metrics.interval_coverage(drawn, truth, NOMINAL_LEVELS)
        label = name if name == "raw" else calibrated_label(calibration)
        left.plot(NOMINAL_LEVELS, coverage, ms=3, label=label, **STYLES[name])
        cells = calibrate.pit_histogram(drawn, truth)
        edges = np.arange(len(cells) + 1) / len(cells)
        right.stairs(cells * len(cells), edges, lw=1.5, color=STYLES[name]["color"],
                     label=f"{label}: KS {calibrate.pit_ks(drawn, truth):.3f}")
    left.set_xlabel(LEVEL_LABEL)
    left.set_ylabel(f"{COVERAGE_LABEL} ({maps} maps)")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.legend(frameon=False)
    right.axhline(1.0, color="gray", lw=0.8)
    right.set_xlim(0, 1)
    right.set_xlabel(PIT_LABEL)
    right.set_ylabel(DENSITY_LABEL)
    right.legend(frameon=False)
    return save_figure(fig, path)
