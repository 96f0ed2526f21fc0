"""A density run's held-out set, recomputed from its best checkpoint and checked against the
run's eval.json."""

from __future__ import annotations

from collections.abc import Sequence

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from notebooks.lib.samples import open_run_dataset

# Recomputed test metrics that differ from eval.json by more than this (relative) mean
# the checkpoint or the data changed since the run was evaluated.
RECOMPUTE_RTOL = 1e-2


def held_out(workdir):
    """`fieldnet.eval.held_out.held_out` of the run's best checkpoint on its test split: the same
    predictions, baseline fit and metrics as its eval.json."""
    from fieldnet.eval import held_out as evaluate
    from fieldnet.eval.inference import load_run

    model, _, _ = load_run(workdir)
    with open_run_dataset(workdir) as ds:
        return evaluate.held_out(model, ds, rundir.read_config(workdir))


def check_against_eval(summary: dict, evaluation: dict,
                       keys: Sequence[str] = ("mse", "baseline_mse", "pixel_corr")) -> dict:
    """{key: (eval.json, recomputed, relative difference)}; raises when they disagree by
    more than `RECOMPUTE_RTOL` (a run evaluated on another device may differ by rounding)."""
    rows = {}
    for key in keys:
        saved, again = evaluation["test"][key], summary[key]
        rows[key] = (saved, again, abs(again - saved) / max(abs(saved), 1e-12))
    bad = {k: v for k, v in rows.items() if not v[2] <= RECOMPUTE_RTOL}
    if bad:
        raise FieldnetError("the checkpoint's test metrics differ from eval.json "
                            f"(key: saved, recomputed, relative difference) {bad}; the run "
                            "or its data changed after evaluation")
    return rows
