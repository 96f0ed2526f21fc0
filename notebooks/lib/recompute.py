"""A density run's held-out set, recomputed from its best checkpoint (a generative run's from
the test samples it kept) and checked against the run's eval.json and against another
run's test maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import statistics
from notebooks.lib.runs import ROOT

# Recomputed test metrics that differ from eval.json by more than this (relative) mean
# the checkpoint or the data changed since the run was evaluated.
RECOMPUTE_RTOL = 1e-2
# Two runs' true log10 T [dex] of the same test maps differ by float rounding only (each
# run standardized them with its own normalizer).
SAME_TRUTH_ATOL = 1e-4


def held_out(workdir):
    """The run's objective's evaluation (`Objective.evaluate`) of its best checkpoint on its
    test split: the same predictions, baseline fit and metrics as its eval.json. A
    generative run's samples are those its evaluation drew and kept (test_samples.h5), read
    back, not drawn again, and calibrated by the calibration it kept (calibration.json)."""
    from fieldnet.inference import open_run

    run = open_run(workdir)
    with run.dataset(data_root=ROOT) as ds:
        return run.objective.evaluate(run.model, ds, run.config,
                                      run.objective.saved_samples(workdir, ds),
                                      run.calibrations)


def check_against_eval(summary: dict, evaluation: dict) -> dict:
    """{column: (eval.json, recomputed, relative difference)} of every registered
    statistic's columns that eval.json's test block gives (`statistics.summarize`: the
    numbers of a sweep's table); raises when they disagree by more than `RECOMPUTE_RTOL` (a
    run evaluated on another device may differ by rounding). A column null in both (the
    error over one test box) agrees."""
    saved, again = statistics.summarize(evaluation["test"]), statistics.summarize(summary)

    def difference(a, b):
        a, b = (None if v is None or v != v else v for v in (a, b))   # NaN as None
        if a is None or b is None:
            return 0.0 if a is None and b is None else float("inf")
        return abs(b - a) / max(abs(a), 1e-12)

    rows = {key: (value, again.get(key), difference(value, again.get(key)))
            for key, value in saved.items()}
    bad = {k: v for k, v in rows.items() if not v[2] <= RECOMPUTE_RTOL}
    if bad:
        raise FieldnetError("the checkpoint's test metrics differ from eval.json "
                            f"(key: saved, recomputed, relative difference) {bad}; the run "
                            "or its data changed after evaluation")
    return rows


def check_same_test_maps(first, second, workdirs: Sequence) -> None:
    """Raises a one-line `FieldnetError` unless two runs' held-out sets (`held_out`; their
    `workdirs`, for the message) are the same test maps: the same simulations in the same
    order, with the same true log10 T to `SAME_TRUTH_ATOL`."""
    def maps(h):
        return f"{len(h.sim_index)} maps of simulations {sorted(set(h.sim_index.tolist()))}"

    if not np.array_equal(first.sim_index, second.sim_index):
        why = f"{maps(first)} against {maps(second)}"
    elif first.true_log_t.shape != second.true_log_t.shape:
        why = f"maps of shape {first.true_log_t.shape[1:]} against {second.true_log_t.shape[1:]}"
    else:
        gap = float(np.max(np.abs(first.true_log_t - second.true_log_t)))
        if gap <= SAME_TRUTH_ATOL:
            return
        why = f"the same simulations, but their true log10 T differs by up to {gap:.3g} dex"
    raise FieldnetError(f"{workdirs[0]} and {workdirs[1]} were evaluated on different test maps "
                        f"({why}); compare runs of the same data and split")


def flow_beside(regression, workdirs: Sequence) -> tuple:
    """(held-out set, eval.json) of the flow run `workdirs[1]` (`held_out`, from its kept
    samples), checked against its eval.json and to show the test maps of `regression`, the
    held-out set of the run `workdirs[0]`."""
    evaluation = rundir.read_eval(workdirs[1])
    flow = held_out(workdirs[1])
    check_against_eval(flow.summary, evaluation)
    check_same_test_maps(regression, flow, workdirs)
    return flow, evaluation
