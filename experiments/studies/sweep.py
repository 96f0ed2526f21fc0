"""Runs one study under several config overrides and tabulates the test metrics.

The table's metric columns are the registered statistics' (`fieldnet.eval.statistics.columns`,
read back from each run's eval.json by `statistics.summarize`), so a new statistic shows up in
the table with no change here. A generative run's row compares with a regression's: its mse,
pixel_corr and r(k) are of the samples' mean, its pdf_w1 and power ratio (the range over
k <= k_Nyq/2) of the samples themselves, which a regression's are of its prediction; coverage
and CRPS are the samples' own (empty for a regression).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import ml_collections

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import statistics
from fieldnet.files import write_text
from fieldnet.records import flatten

# The columns that name a row and describe its run, around the statistics' columns.
NAME_COLUMNS = ("variation", "overrides")
RUN_COLUMNS = ("n_train_sims", "train_steps", "checkpoint_step", "objective")
# table.md writes an error beside its mean ("0.1710 ± 0.0123"); table.csv keeps both numeric.
ERRORS = {"mse": "mse_err", "baseline_mse": "baseline_mse_err"}


def apply_overrides(base: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """A copy of `base` with dotted-key overrides; unknown keys fail in one line."""
    config = base.copy_and_resolve_references()
    config.lock()  # an override may change a value, never invent a key
    try:
        config.update_from_flattened_dict(overrides)
    except (KeyError, AttributeError, TypeError) as err:
        raise FieldnetError(f"bad override in {overrides}: {err}") from None
    return config


def variation_config(base: ml_collections.ConfigDict, name: str,
                     overrides: dict) -> ml_collections.ConfigDict:
    """The config that `run_sweep` runs as variation `name`, in out/<name>.

    Args:
        base: The sweep's base config.
        name: The variation's name.
        overrides: Its dotted-key overrides of `base`.

    Returns:
        A copy of `base` with `overrides`, named "<base.name>_<name>".

    Raises:
        FieldnetError: If an override names a key `base` lacks.
    """
    config = apply_overrides(base, overrides)
    config.name = f"{base.name}_{name}"
    return config


def overrides_between(base: ml_collections.ConfigDict,
                      config: ml_collections.ConfigDict) -> dict:
    """The dotted overrides that make `base` into `config` (the name aside): another
    experiment's config file as a row of the base config's sweep."""
    old, new = flatten(base.to_dict()), flatten(config.to_dict())
    unknown = sorted(set(new) - set(old))
    if unknown:
        raise FieldnetError(f"the config has keys the sweep's base lacks: {', '.join(unknown)}")
    return {k: v for k, v in new.items() if k != "name" and v != old[k]}


def columns() -> tuple[str, ...]:
    """The table's columns: the variation and its overrides, every registered statistic's
    columns (`statistics.columns`), then what describes the run."""
    return (*NAME_COLUMNS, *statistics.columns(), *RUN_COLUMNS)


def table_row(name: str, overrides: dict, report: dict) -> dict:
    """One variation's row from its eval.json: `statistics.summarize` of its test block. A
    column whose statistic the eval.json lacks is None (`pdf_w1` without eval.statistics
    "pdf", coverage of a regression run, the errors over test boxes of an eval.json written
    before they were reported); so are those errors with one test box."""
    test = report["test"]
    return {"variation": name, "overrides": " ".join(f"{k}={v}" for k, v in overrides.items()),
            **dict.fromkeys(statistics.columns()), **statistics.summarize(test),
            "n_train_sims": report.get("n_train_sims"), "train_steps": report["train_steps"],
            "checkpoint_step": report.get("checkpoint_step"),
            "objective": "flow" if "samples" in test else "regression"}


def run_sweep(base: ml_collections.ConfigDict, variations: dict[str, dict], out: str | Path,
              study: Callable[[ml_collections.ConfigDict, Path], dict]) -> list[dict]:
    """Runs each variation in out/<name> (resuming finished or partial runs) and writes
    out/table.md and out/table.csv after every run, so a stopped sweep keeps its rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = {name: variation_config(base, name, o) for name, o in variations.items()}
    rows = []
    for name, config in configs.items():
        rows.append(table_row(name, variations[name], study(config, out / name)))
        write_tables(rows, out)
    return rows


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_tables(rows: list[dict], out: Path) -> None:
    """table.csv: every column of `columns()`, numbers as numbers (a missing error is an empty
    cell); table.md: the same rows for reading, each mean with its error as "mean ± err"."""
    every = columns()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=every)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / rundir.TABLE_CSV, buffer.getvalue())
    shown = [c for c in every if c not in ERRORS.values()]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for c in shown:
            error = r.get(ERRORS.get(c))
            cells.append(_cell(r[c]) + ("" if error is None else f" ± {_cell(error)}"))
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / rundir.TABLE_MD, "\n".join(lines) + "\n")
