"""The registry of statistics that fill the "test" block of eval.json.

A statistic is a function of a `Comparison` (a test split's truth, the model's prediction
and the local baseline's, in normalized and in log space, on their `Grid`) that returns a
dict of JSON keys. `config.eval.statistics` names the ones a run computes, besides the
`REQUIRED` ones that every eval.json holds (docs/reference/run-folder.md). Adding one is one
function (docs/guides/add-a-statistic.md):

    @register_statistic("variance_ratio")
    def variance_ratio(c):
        return {"variance_ratio": float(c.pred_log.var() / c.true_log.var())}

and one config entry: `config.eval.statistics = "pdf,variance_ratio"`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import wasserstein_distance

from fieldnet.data.source import parse_names
from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics
from fieldnet.eval.spectra import average_power_spectrum
from fieldnet.grid import Grid
from fieldnet.records import to_json_value
from fieldnet.registry import Registry

REQUIRED = ("pixels", "spectra", "boxes")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Comparison:
    """A test split, model and local baseline against the truth.

    Attributes:
      true_norm, pred_norm, baseline_norm: stacks `(N, *spatial)` in the normalized target
        space (standardized log10 T), where the MSEs are measured.
      true_log, pred_log, baseline_log: the same stacks as log10 of the field.
      grid: the grid of one field (its box lengths in Mpc/h set k).
      sim_index: `(N,)`, the simulation each map comes from (its maps are correlated, so
        errors are estimated over simulations, not maps).
      samples_norm, samples_log: for a generative model, its samples `(N, S, *spatial)`
        (S per map), normalized and as log10; then pred_* is their mean. None otherwise.
    """

    true_norm: np.ndarray
    pred_norm: np.ndarray
    baseline_norm: np.ndarray
    true_log: np.ndarray
    pred_log: np.ndarray
    baseline_log: np.ndarray
    grid: Grid
    sim_index: np.ndarray
    samples_norm: np.ndarray | None = None
    samples_log: np.ndarray | None = None

    @functools.cached_property
    def spec_model(self) -> dict:
        """`metrics.spectral_comparison` of the model's log field with the truth."""
        return metrics.spectral_comparison(self.pred_log, self.true_log, self.grid)

    @functools.cached_property
    def spec_baseline(self) -> dict:
        return metrics.spectral_comparison(self.baseline_log, self.true_log, self.grid)


Statistic = Callable[[Comparison], dict]
STATISTICS: Registry[Statistic] = Registry("statistic", "eval.statistics")
register_statistic = STATISTICS.register


def selected(names: str | Iterable[str] | None) -> list[str]:
    """The `REQUIRED` statistics, then those named, each once.

    Args:
        names: Registered statistic names, comma-separated or a list; None for none.

    Returns:
        The names to compute, in order.

    Raises:
        FieldnetError: If a name is not registered; the message lists the registered ones.
    """
    chosen = list(REQUIRED)
    for name in parse_names(names):
        STATISTICS.get(name)
        if name not in chosen:
            chosen.append(name)
    return chosen


def evaluate(comparison: Comparison, names: str | Iterable[str] | None = None) -> dict:
    """The "test" block: every selected statistic's keys, as plain JSON values.

    Args:
        comparison: The test split, model and baseline against the truth.
        names: The statistics to add to the required ones (as for `selected`).

    Returns:
        The union of the statistics' dicts, NumPy values and NaN turned into JSON values.
    """
    block = {}
    for name in selected(names):
        block.update(STATISTICS.get(name)(comparison))
    return to_json_value(block)


@register_statistic("pixels")
def pixels(c: Comparison) -> dict:
    """MSE (normalized space) and Pearson r of log10 T, model and baseline.

    Args:
        c: The test split, model and baseline against the truth.

    Returns:
        `mse`, `baseline_mse`, `pixel_corr`, `baseline_pixel_corr`.
    """
    return {"mse": metrics.mse(c.pred_norm, c.true_norm),
            "baseline_mse": metrics.mse(c.baseline_norm, c.true_norm),
            "pixel_corr": metrics.pixel_correlation(c.pred_log, c.true_log),
            "baseline_pixel_corr": metrics.pixel_correlation(c.baseline_log, c.true_log)}


@register_statistic("spectra")
def spectra(c: Comparison) -> dict:
    """r(k), P_pred/P_true and the transfer function of log10 T fluctuations, per k bin.

    Args:
        c: The test split, model and baseline against the truth.

    Returns:
        `k` [h/Mpc], `cross_corr`, `power_ratio`, `transfer`, `baseline_cross_corr`,
        `baseline_power_ratio`, `n_modes`, `k_nyquist` [h/Mpc].
    """
    model, base = c.spec_model, c.spec_baseline
    return {"k": model["k"], "cross_corr": model["cross_corr"],
            "power_ratio": model["power_ratio"], "transfer": model["transfer"],
            "baseline_cross_corr": base["cross_corr"],
            "baseline_power_ratio": base["power_ratio"],
            "n_modes": model["n_modes"].astype(np.int64), "k_nyquist": model["k_nyquist"]}


@register_statistic("pdf")
def pdf(c: Comparison) -> dict:
    """Wasserstein-1 distance [dex] between the one-point PDFs of log10 T, predicted vs
    true over all test pixels (0 for identical distributions), model and baseline.

    Args:
        c: The test split, model and baseline against the truth.

    Returns:
        `pdf_w1`, `baseline_pdf_w1` [dex].
    """
    truth = np.ravel(c.true_log)
    return {"pdf_w1": float(wasserstein_distance(np.ravel(c.pred_log), truth)),
            "baseline_pdf_w1": float(wasserstein_distance(np.ravel(c.baseline_log), truth))}


@register_statistic("boxes")
def boxes(c: Comparison) -> dict:
    """The pixel statistics per test simulation (box), and how much the means scatter
    between boxes.

    `per_box`: one {"sim", "mse", "baseline_mse", "pixel_corr"} per simulation, sorted by
    sim, each over that box's maps; `n_test_boxes`; `mse_err`, `baseline_mse_err`: bootstrap
    standard errors of `mse` and `baseline_mse` (the means over all test maps) from
    `BOOTSTRAP_RESAMPLES` = 2000 resamples of the boxes with replacement
    (`metrics.group_bootstrap_error`, seeded with `BOOTSTRAP_SEED`, so eval.json is
    reproducible and model and baseline see the same resamples). With one test box the
    errors are NaN (null in eval.json): the scatter between boxes is then unknown.
    """
    sim_index = np.asarray(c.sim_index)
    if sim_index.shape != (len(c.true_norm),):
        raise ValueError(f"sim_index must have one entry per map, shape ({len(c.true_norm)},), "
                         f"got {sim_index.shape}")
    model = metrics.mse_per_field(c.pred_norm, c.true_norm)
    base = metrics.mse_per_field(c.baseline_norm, c.true_norm)
    per_box = []
    for sim in np.unique(sim_index):
        box = sim_index == sim
        per_box.append({"sim": int(sim), "mse": float(model[box].mean()),
                        "baseline_mse": float(base[box].mean()),
                        "pixel_corr": metrics.pixel_correlation(c.pred_log[box],
                                                                c.true_log[box])})

    def error(values):
        return metrics.group_bootstrap_error(values, sim_index, n_resamples=BOOTSTRAP_RESAMPLES,
                                             seed=BOOTSTRAP_SEED)

    return {"per_box": per_box, "n_test_boxes": len(per_box), "mse_err": error(model),
            "baseline_mse_err": error(base)}


COVERAGE_LEVELS = (0.68, 0.95)


@register_statistic("samples")
def samples(c: Comparison) -> dict:
    """How a generative model's samples match the truth, as eval.json's `samples` block.

    `n_samples` per test map; `power_ratio`: P_sample(k) / P_true(k) of log10 T per k bin
    (the mean over samples, on the bins of "k"); `cross_corr_mean`: r(k) of the samples'
    mean with the truth; `pdf_w1`: Wasserstein-1 distance [dex] of the one-point PDF of
    log10 T over all samples from the truth's; `coverage_68`, `coverage_95`: the fraction
    of test pixels whose truth lies in the samples' central 68% / 95% interval, from the
    truth's rank among the samples (`metrics.interval_coverage`: unbiased for any number of
    samples; the nominal level for calibrated samples); `crps`: the continuous ranked
    probability score (`metrics.crps`, fair ensemble estimator); `mse_of_mean`: MSE of the
    samples' mean. CRPS and MSE are in the normalized target space, like "mse".
    """
    if c.samples_norm is None or c.samples_log is None:
        raise FieldnetError("eval.statistics: 'samples' needs a generative run's samples "
                            "(model.objective='flow')")
    n_samples = c.samples_log.shape[1]
    every_sample = c.samples_log.reshape(-1, *c.samples_log.shape[2:])
    p_samples = average_power_spectrum(every_sample, c.grid).power
    mean_log = c.samples_log.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        power_ratio = p_samples / c.spec_model["p_true"]
    coverage = metrics.interval_coverage(c.samples_norm, c.true_norm, COVERAGE_LEVELS)
    block = {"n_samples": int(n_samples), "power_ratio": power_ratio,
             "cross_corr_mean": metrics.spectral_comparison(mean_log, c.true_log,
                                                            c.grid)["cross_corr"],
             "pdf_w1": float(wasserstein_distance(np.ravel(c.samples_log),
                                                  np.ravel(c.true_log))),
             "crps": metrics.crps(c.samples_norm, c.true_norm),
             "mse_of_mean": metrics.mse(c.samples_norm.mean(axis=1), c.true_norm)}
    block.update({f"coverage_{round(100 * p)}": float(v)
                  for p, v in zip(COVERAGE_LEVELS, coverage, strict=True)})
    return {"samples": block}
