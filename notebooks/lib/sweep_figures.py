"""A hyperparameter sweep read back (one row per variation) and its test metrics drawn
against each varied setting."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fieldnet import rundir
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from fieldnet.figures import report
from fieldnet.records import flatten

METRIC_PANELS = (  # (row column, its baseline column, y label)
    ("mse", "baseline_mse", "test MSE\n(standardized $\\log_{10} T$)"),
    ("pixel_corr", None, "pixel $r$ of $\\log_{10} T$"),
    ("mean_r_to_half_nyquist", "baseline_mean_r_to_half_nyquist",
     r"mean $r(k)$, $k \leq k_\mathrm{Nyq}/2$"),
)


def changed_keys(configs: dict[str, dict], reference: str) -> dict[str, set[str]]:
    """{variation: the flattened config keys it changes from `reference`'s}, as a resumed run
    would see them (`rundir.config_differences`): keys that a newer fieldnet added (absent
    from older runs' configs) and settings that never change a result (the loader) are not
    changes, and neither is the run's name."""
    return {name: set(rundir.config_differences(configs[reference], config)) - {"name"}
            for name, config in configs.items()}


def sweep_rows(sweep_dir) -> list[dict]:
    """One row per variation of a sweep, in table.csv's order: `experiments.studies.sweep.table_row`
    of its eval.json (checked against table.csv), plus `settings`, {config key: value}
    where its config differs from the reference variation's (the one without overrides,
    else the first; `rundir.config_differences`), and `values`, its value of every key that
    some variation varies."""
    from experiments.studies import sweep

    sweep_dir = Path(sweep_dir)
    table_csv = sweep_dir / rundir.TABLE_CSV
    with open(table_csv, newline="") as f:
        table = list(csv.DictReader(f))
    if not table:
        raise FieldnetError(f"{table_csv} lists no variations")
    configs = {r["variation"]: flatten(rundir.read_json(rundir.config(sweep_dir / r["variation"])))
               for r in table}
    reference = next((r["variation"] for r in table if not r["overrides"]), table[0]["variation"])
    changed = changed_keys(configs, reference)
    varied = sorted(set().union(*changed.values()))
    rows = []
    for r in table:
        name = r["variation"]
        evaluation = rundir.read_eval(rundir.require(sweep_dir / name, rundir.EVAL))
        row = sweep.table_row(name, {}, evaluation)
        row["overrides"] = r["overrides"]
        for column in sweep.columns()[2:]:
            if not _same_cell(r.get(column), row[column]):
                raise FieldnetError(f"{table_csv}: {name} {column} = {r.get(column)} "
                                    f"but its {rundir.EVAL} gives {row[column]}; rerun the sweep")
        config = configs[name]
        row["settings"] = {k: config.get(k) for k in varied if k in changed[name]}
        row["values"] = {k: config.get(k) for k in varied}
        rows.append(row)
    return rows


def _same_cell(cell: str | None, value) -> bool:
    """Whether a table.csv cell holds `value` (a number, or a word such as the objective);
    an empty or absent cell (a table or an eval.json from before a column existed, or a null
    error of one test box) matches None."""
    if isinstance(value, str):
        return cell == value
    if value is None or not cell:
        return value is None and not cell
    return math.isclose(float(cell), value, rel_tol=1e-9, abs_tol=1e-12)


def _value_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _errors(points: list[dict], column: str) -> list[float] | None:
    """The errors over test boxes of a row column that has them (NaN where unknown: one
    test box), else None."""
    from experiments.studies import sweep

    key = sweep.ERRORS.get(column)
    if key is None:
        return None
    return [math.nan if p.get(key) is None else p[key] for p in points]


SCALING_KEY = "data.max_train_sims"


def scaling_rows(rows: list[dict]) -> list[dict]:
    """The data-scaling curve of a sweep: the reference variation and those that change
    only `data.max_train_sims`, by their number of training simulations (eval.json's
    `n_train_sims`), fewest first. Empty when the sweep has no such variations."""
    members = [r for r in rows if set(r["settings"]) == {SCALING_KEY}]
    if not members:
        return []
    reference = next(r for r in rows if not r["settings"])
    curve = [r for r in (reference, *members) if r.get("n_train_sims") is not None]
    return sorted(curve, key=lambda r: r["n_train_sims"])


def target_variance(sweep_dir, variation: str) -> float:
    """The variance of log10 T [dex^2] that a variation's normalized MSE is in units of:
    its normalizer's std of the first target, fitted on its own training split."""
    run = rundir.require(Path(sweep_dir) / variation, rundir.NORMALIZER, rundir.MODEL_IO)
    stats = Normalizer.load(rundir.normalizer(run))
    target = rundir.read_json(rundir.model_io(run))["target_names"][0]
    return float(stats[target].std) ** 2


def scaling_figure(rows: list[dict], sweep_dir) -> Figure:
    """Test MSE of log10 T in dex^2 (± its error over test boxes) against the number of
    training simulations, model and local baseline, for `scaling_rows(rows)`; the same test
    boxes at every point. Each run standardizes log10 T with its own training split, so its
    normalized MSE is converted with that split's variance (`target_variance`)."""
    curve = scaling_rows(rows)
    if not curve:
        raise FieldnetError(f"the sweep has no variations of {SCALING_KEY} alone")
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    n = [r["n_train_sims"] for r in curve]
    scale = np.array([target_variance(sweep_dir, r["variation"]) for r in curve])
    for column, fmt, label in (("mse", "o-", "model"), ("baseline_mse", "s--", "local baseline")):
        errors = _errors(curve, column)
        ax.errorbar(n, scale * [r[column] for r in curve],
                    yerr=None if errors is None else scale * errors, fmt=fmt,
                    capsize=2, color=report.COLORS["model" if column == "mse" else "baseline"],
                    label=label, ms=5 if column == "mse" else 4)
    ax.set_xscale("log")
    ax.set_xticks(n, [str(v) for v in n])
    ax.minorticks_off()
    ax.set_xlabel("training simulations")
    ax.set_ylabel("test MSE of $\\log_{10} T$ [dex$^2$]")
    ax.legend(frameon=False, fontsize=8)
    return fig


def nearest_base(rows: list[dict], row: dict) -> dict:
    """The variation `row` is best drawn against: the one whose changes are the largest
    proper part of `row`'s, with the same values (the conditioned run for conditioning
    without parameter noise), else the reference (the variation that changes nothing)."""
    settings = row["settings"]
    base = next(r for r in rows if not r["settings"])
    for other in rows:
        part = other["settings"]
        if (part and set(part) < set(settings) and len(part) > len(base["settings"])
                and all(settings[k] == v for k, v in part.items())):
            base = other
    return base


def _panels(rows: list[dict]) -> list[tuple[tuple[str, ...], dict, list[dict]]]:
    """(keys shown, base variation, its variations) per column of `variations_figure`: the
    variations grouped by the settings they change beyond their `nearest_base`."""
    panels: dict[tuple[tuple[str, ...], str], tuple[dict, list[dict]]] = {}
    for row in rows:
        base = nearest_base(rows, row)
        extra = {k: v for k, v in row["settings"].items() if k not in base["settings"]}
        keys = tuple(sorted(k for k, v in extra.items() if not isinstance(v, tuple))
                     or sorted(extra))
        if keys and keys != (SCALING_KEY,):
            panels.setdefault((keys, base["variation"]), (base, []))[1].append(row)
    return [(keys, base, members) for (keys, _), (base, members) in panels.items()]


def variations_figure(rows: list[dict]) -> Figure:
    """Test metrics against each varied setting (rows of `sweep_rows`): one column per
    setting, its base variation among its values (the reference, or the `nearest_base`
    whose settings the column's variations keep, named under the column); dashed: the
    local baseline. The MSEs carry their bootstrap errors over test boxes as error bars.
    The data-scaling variations (`data.max_train_sims` alone) are drawn by `scaling_figure`
    instead. A tuple-valued key that changes together with a scalar one (channel_mult with
    depth) is folded into it."""
    panels = _panels(rows)
    n_cols = max(len(panels), 1)
    fig = Figure(figsize=(2.8 * n_cols + 0.8, 7), layout="constrained")
    axes = fig.subplots(len(METRIC_PANELS), n_cols, squeeze=False, sharey="row")
    if not panels:
        axes[0, 0].text(0.5, 0.5, "one variation: nothing varied", ha="center",
                        transform=axes[0, 0].transAxes)
    for j, (keys, base, members) in enumerate(panels):
        points = [base, *members]
        if len(keys) == 1 and all(_numeric(p["values"][keys[0]]) for p in points):
            points.sort(key=lambda p: p["values"][keys[0]])
        labels = [", ".join(_value_label(p["values"][k]) for k in keys) for p in points]
        for i, (column, baseline_column, ylabel) in enumerate(METRIC_PANELS):
            ax = axes[i, j]
            ax.errorbar(range(len(points)), [p[column] for p in points],
                        yerr=_errors(points, column), fmt="o-", capsize=2,
                        color=report.COLORS["model"], label="model")
            if baseline_column is not None:
                ax.errorbar(range(len(points)), [p[baseline_column] for p in points],
                            yerr=_errors(points, baseline_column), fmt="s--", capsize=2,
                            color=report.COLORS["baseline"], ms=4, label="local baseline")
            ax.set_xticks(range(len(points)), labels, fontsize=8)
            ax.set_xlim(-0.5, len(points) - 0.5)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            if i == 0 and j == 0:
                ax.legend(frameon=False, fontsize=7)
        kept = "".join(f"\n{k}={_value_label(v)}" for k, v in sorted(base["settings"].items()))
        axes[-1, j].set_xlabel(", ".join(keys) + kept, fontsize=9)
    return fig
