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
from fieldnet.records import flatten

COLUMNS = ("variation", "overrides", "mse", "mse_err", "baseline_mse", "baseline_mse_err",
           "pixel_corr", "mean_r_to_half_nyquist", "baseline_mean_r_to_half_nyquist",
           "n_test_boxes", "n_train_sims", "train_steps", "checkpoint_step",
           "objective", "pdf_w1", "baseline_pdf_w1", "power_ratio_min", "power_ratio_max",
           "coverage_68", "coverage_95", "crps")
# A generative run's row compares with a regression's: its mse, pixel_corr and r(k) are of
# the samples' mean, its pdf_w1 and power ratio (the range over k <= k_Nyq/2) of the
# samples themselves, which a regression's are of its prediction; coverage and CRPS are
# the samples' own (empty for a regression).
SAMPLE_COLUMNS = ("coverage_68", "coverage_95", "crps")
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


def overrides_between(base: ml_collections.ConfigDict,
                      config: ml_collections.ConfigDict) -> dict:
    """The dotted overrides that make `base` into `config` (the name aside): another
    experiment's config file as a row of the base config's sweep."""
    old, new = flatten(base.to_dict()), flatten(config.to_dict())
    unknown = sorted(set(new) - set(old))
    if unknown:
        raise FieldnetError(f"the config has keys the sweep's base lacks: {', '.join(unknown)}")
    return {k: v for k, v in new.items() if k != "name" and v != old[k]}


def table_row(name: str, overrides: dict, report: dict) -> dict:
    """One variation's row from its eval.json. The errors over test boxes are None with one
    test box, and in an eval.json written before they were reported; so is a column whose
    key the eval.json lacks (`pdf_w1` without eval.statistics "pdf")."""
    test = report["test"]
    samples = test.get("samples")
    fields = samples or test          # what is compared with the truth as a field
    k = np.asarray(test["k"], float)
    within = k <= test["k_nyquist"] / 2

    def mean_r(key):
        return float(np.nanmean(np.asarray(test[key], float)[within]))

    power = np.asarray(fields["power_ratio"], float)[within]

    return {"variation": name, "overrides": " ".join(f"{k}={v}" for k, v in overrides.items()),
            "mse": test["mse"], "mse_err": test.get("mse_err"),
            "baseline_mse": test["baseline_mse"],
            "baseline_mse_err": test.get("baseline_mse_err"),
            "pixel_corr": test["pixel_corr"], "mean_r_to_half_nyquist": mean_r("cross_corr"),
            "baseline_mean_r_to_half_nyquist": mean_r("baseline_cross_corr"),
            "n_test_boxes": test.get("n_test_boxes"), "n_train_sims": report.get("n_train_sims"),
            "train_steps": report["train_steps"], "checkpoint_step": report.get("checkpoint_step"),
            "objective": "flow" if samples else "regression", "pdf_w1": fields.get("pdf_w1"),
            "baseline_pdf_w1": test.get("baseline_pdf_w1"),
            "power_ratio_min": float(np.nanmin(power)), "power_ratio_max": float(np.nanmax(power)),
            **{c: samples[c] if samples else None for c in SAMPLE_COLUMNS}}


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


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_tables(rows: list[dict], out: Path) -> None:
    """table.csv: every column of `COLUMNS`, numbers as numbers (a missing error is an empty
    cell); table.md: the same rows for reading, each mean with its error as "mean ± err"."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / rundir.TABLE_CSV, buffer.getvalue())
    shown = [c for c in COLUMNS if c not in ERRORS.values()]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = []
        for c in shown:
            error = r.get(ERRORS.get(c))
            cells.append(_cell(r[c]) + ("" if error is None else f" ± {_cell(error)}"))
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / rundir.TABLE_MD, "\n".join(lines) + "\n")
