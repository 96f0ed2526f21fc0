"""Runs one study under several config overrides and tabulates the test metrics."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import ml_collections
import numpy as np

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.files import write_text

COLUMNS = ("variation", "overrides", "mse", "baseline_mse", "pixel_corr",
           "mean_r_to_half_nyquist", "baseline_mean_r_to_half_nyquist", "train_steps")


def apply_overrides(base: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """A copy of `base` with dotted-key overrides; unknown keys fail in one line."""
    config = base.copy_and_resolve_references()
    config.lock()  # an override may change a value, never invent a key
    try:
        config.update_from_flattened_dict(overrides)
    except (KeyError, AttributeError, TypeError) as err:
        raise FieldnetError(f"bad override in {overrides}: {err}") from None
    return config


def table_row(name: str, overrides: dict, report: dict) -> dict:
    test = report["test"]
    k = np.asarray(test["k"], float)
    within = k <= test["k_nyquist"] / 2

    def mean_r(key):
        return float(np.nanmean(np.asarray(test[key], float)[within]))

    return {"variation": name, "overrides": " ".join(f"{k}={v}" for k, v in overrides.items()),
            "mse": test["mse"], "baseline_mse": test["baseline_mse"],
            "pixel_corr": test["pixel_corr"], "mean_r_to_half_nyquist": mean_r("cross_corr"),
            "baseline_mean_r_to_half_nyquist": mean_r("baseline_cross_corr"),
            "train_steps": report["train_steps"]}


def run_sweep(base: ml_collections.ConfigDict, variations: dict[str, dict], out: str | Path,
              study: Callable[[ml_collections.ConfigDict, Path], dict]) -> list[dict]:
    """Runs each variation in out/<name> (resuming finished or partial runs) and writes
    out/table.md and out/table.csv after every run, so a stopped sweep keeps its rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = {name: apply_overrides(base, o) for name, o in variations.items()}
    rows = []
    for name, config in configs.items():
        config.name = f"{base.name}_{name}"
        rows.append(table_row(name, variations[name], study(config, out / name)))
        write_tables(rows, out)
    return rows


def write_tables(rows: list[dict], out: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / rundir.TABLE_CSV, buffer.getvalue())
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])
                                       for c in COLUMNS) + " |")
    write_text(out / rundir.TABLE_MD, "\n".join(lines) + "\n")
