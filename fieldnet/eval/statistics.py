"""The registry of statistics that fill the "test" block of eval.json.

A statistic is a function of a `Comparison` (a test split's truth, the model's prediction
and the local baseline's, in normalized and in log space, on their `Grid`) that returns a
dict of JSON keys. `config.eval.statistics` names the ones a run computes, besides the
`REQUIRED` ones that every eval.json holds (docs/reference/run-folder.md).

At registration a statistic also declares its `columns`: the scalars that summarize it, read
back from an eval.json "test" block by `summarize`. They are the sweep table's columns
(`experiments.studies.sweep`) and what the notebooks check a recomputation against
(`notebooks.lib.recompute.check_against_eval`), so adding a statistic is one function
(docs/guides/add-a-statistic.md):

    @register_statistic("variance_ratio", columns=("variance_ratio",))
    def variance_ratio(c):
        return {"variance_ratio": float(c.pred_log.var() / c.true_log.var())}

and one config entry: `config.eval.statistics = "pdf,variance_ratio"`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
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
        """`metrics.spectral_comparison` of the local baseline's log field with the truth."""
        return metrics.spectral_comparison(self.baseline_log, self.true_log, self.grid)


Summary = Callable[[dict], dict]


@dataclass(frozen=True)
class Statistic:
    """A registered statistic: called on a `Comparison`, it returns its keys of the "test"
    block.

    Attributes:
      compute: The function registered, `Comparison` -> {key: JSON value}.
      columns: The names of the scalars that summarize it (sweep table columns, checked
        keys of a recomputation), in order.
      summarize: "test" block -> {column: value} of the columns it can give (none of a block
        without its keys); None takes each column as the block's key of that name.
    """

    compute: Callable[[Comparison], dict]
    columns: tuple[str, ...] = ()
    summarize: Summary | None = None

    def __call__(self, comparison: Comparison) -> dict:
        return self.compute(comparison)

    def summary(self, block: dict) -> dict:
        """{column: value} of its columns that the "test" block `block` holds.

        Args:
            block: eval.json's "test" block.

        Returns:
            The columns' values (from `summarize` when given).
        """
        if self.summarize is not None:
            return self.summarize(block)
        return {c: block[c] for c in self.columns if c in block}


STATISTICS: Registry[Statistic] = Registry("statistic", "eval.statistics")


def register_statistic(name: str, *, columns: Sequence[str] = (),
                       summary: Summary | None = None) -> Callable:
    """Decorator that registers a function `Comparison` -> dict as the statistic `name`.

    Args:
        name: The name `config.eval.statistics` gives to choose it.
        columns: The scalars that summarize it in a sweep's table and that a recomputation
            is checked on, each a key of its dict unless `summary` computes them.
        summary: "test" block -> {column: value}, for columns that are not keys of the
            block (say the range of an array); it leaves out the columns the block cannot
            give.

    Returns:
        The decorator; it returns the function unchanged.

    Raises:
        ValueError: (when decorating) If `name` is already registered.
    """

    def register(fn: Callable[[Comparison], dict]) -> Callable[[Comparison], dict]:
        STATISTICS.register(name)(Statistic(fn, tuple(columns), summary))
        return fn

    return register


def columns() -> list[str]:
    """Every registered statistic's columns, each once, in the order of registration: the
    sweep table's metric columns."""
    return list(dict.fromkeys(c for name in STATISTICS.names()
                              for c in STATISTICS.get(name).columns))


def summarize(block: dict) -> dict:
    """The columns of every registered statistic that an eval.json "test" block holds.

    Where two statistics give one column, the later registered wins: a generative run's
    "samples" gives `pdf_w1` and the power-ratio range of its samples, which replace those
    of its prediction (the mean of the samples).

    Args:
        block: An eval.json "test" block (or `statistics.evaluate`'s).

    Returns:
        {column: value}, in the order of `columns()`; a column no statistic gives from the
        block is absent.
    """
    found = {}
    for name in STATISTICS.names():
        found.update(STATISTICS.get(name).summary(block))
    return {c: found[c] for c in columns() if c in found}


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


@register_statistic("pixels", columns=("mse", "baseline_mse", "pixel_corr"))
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


def within_half_nyquist(block: dict) -> np.ndarray:
    """Which k bins of a "test" block lie at k ≤ k_Nyq / 2.

    There the grid resolves the field well: the range the spectra's summaries average over.

    Args:
        block: eval.json's "test" block, with `"k"` (bin centres, h/Mpc) and
            `"k_nyquist"` (h/Mpc).

    Returns:
        Boolean mask over the k bins.
    """
    return np.asarray(block["k"], float) <= block["k_nyquist"] / 2


def power_ratio_range(power_ratio, block: dict) -> dict:
    """`power_ratio_min`, `power_ratio_max` of P/P_true over the bins `within_half_nyquist`.

    Args:
        power_ratio: P/P_true per k bin of `block`.
        block: eval.json's "test" block (its `"k"` and `"k_nyquist"`, h/Mpc).

    Returns:
        {"power_ratio_min": ..., "power_ratio_max": ...}, NaN bins ignored.
    """
    power = np.asarray(power_ratio, float)[within_half_nyquist(block)]
    return {"power_ratio_min": float(np.nanmin(power)),
            "power_ratio_max": float(np.nanmax(power))}


def spectra_summary(block: dict) -> dict:
    """r(k) of the model and of the baseline averaged over the bins up to k_Nyq / 2.

    And the range of the model's power ratio there.

    Args:
        block: eval.json's "test" block.

    Returns:
        `mean_r_to_half_nyquist`, `baseline_mean_r_to_half_nyquist`, `power_ratio_min` and
        `power_ratio_max`; empty when the block has no spectra.
    """
    if "k" not in block:
        return {}
    within = within_half_nyquist(block)

    def mean_r(key):
        return float(np.nanmean(np.asarray(block[key], float)[within]))

    return {"mean_r_to_half_nyquist": mean_r("cross_corr"),
            "baseline_mean_r_to_half_nyquist": mean_r("baseline_cross_corr"),
            **power_ratio_range(block["power_ratio"], block)}


@register_statistic("spectra", summary=spectra_summary,
                    columns=("mean_r_to_half_nyquist", "baseline_mean_r_to_half_nyquist",
                             "power_ratio_min", "power_ratio_max"))
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


@register_statistic("pdf", columns=("pdf_w1", "baseline_pdf_w1"))
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


@register_statistic("boxes", columns=("mse_err", "baseline_mse_err", "n_test_boxes"))
def boxes(c: Comparison) -> dict:
    """The pixel statistics per test simulation (box), and how much the means scatter.

    `per_box`: one {"sim", "mse", "baseline_mse", "pixel_corr"} per simulation, sorted by
    sim, each over that box's maps; `n_test_boxes`; `mse_err`, `baseline_mse_err`: bootstrap
    standard errors of `mse` and `baseline_mse` (the means over all test maps) from
    `BOOTSTRAP_RESAMPLES` = 2000 resamples of the boxes with replacement
    (`metrics.group_bootstrap_error`, seeded with `BOOTSTRAP_SEED`, so eval.json is
    reproducible and model and baseline see the same resamples). With one test box the
    errors are NaN (null in eval.json): the scatter between boxes is then unknown.

    Args:
        c: The test split, model and baseline against the truth.

    Returns:
        {"per_box", "n_test_boxes", "mse_err", "baseline_mse_err"}.

    Raises:
        ValueError: If `c.sim_index` does not have one entry per map.
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


SAMPLE_COLUMNS = ("coverage_68", "coverage_95", "crps")


def samples_summary(block: dict) -> dict:
    """A generative run's coverage and CRPS, and its samples' own `pdf_w1` and power ratios.

    The power-ratio range is up to k_Nyq / 2; where a regression's `pdf_w1` and power
    ratios are of its prediction, a generative run's are of its samples themselves.

    Args:
        block: eval.json's "test" block.

    Returns:
        `pdf_w1`, `power_ratio_min`, `power_ratio_max` and the `SAMPLE_COLUMNS`; empty
        when the block has no samples.
    """
    drawn = block.get("samples")
    if drawn is None:
        return {}
    return {"pdf_w1": drawn["pdf_w1"], **power_ratio_range(drawn["power_ratio"], block),
            **{c: drawn[c] for c in SAMPLE_COLUMNS}}


@register_statistic("samples", summary=samples_summary,
                    columns=("pdf_w1", "power_ratio_min", "power_ratio_max", *SAMPLE_COLUMNS))
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

    Args:
        c: The test split, model and baseline against the truth, with the model's samples.

    Returns:
        {"samples": block}.

    Raises:
        FieldnetError: If `c` has no samples (not a generative run).
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
