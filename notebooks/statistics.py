# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Two-point statistics: model against the local baseline
#
# The power spectrum of log T fluctuations with the transfer function
# $\sqrt{P_\mathrm{pred}/P_\mathrm{true}}$, and the cross-correlation coefficient
# $r(k) = P_{pt}/\sqrt{P_{pp}P_{tt}}$, for the network and for the best local mapping
# T(ρ), on the run's held-out simulations. r(k) is drawn from the run's `eval.json`; P(k) is
# remade from the best checkpoint and its ratio checked against `eval.json`. Then a
# generative run's samples of the same test maps: their P(k) against the regression's and
# the truth's, and the calibration of their intervals.
#
# **Parameters.** `WORKDIR`: a `density_to_temp` run (`None`: a small run made here);
# `FLOW_WORKDIR`: a `density_to_temp_flow` run of the same data (`None`: a small run made
# here); `FIGDIR`; `QUICK`; environment variables `FIELDNET_DENSITY_WORKDIR`,
# `FIELDNET_FLOW_WORKDIR`, `FIELDNET_FIGDIR`, `FIELDNET_QUICK`.

# %%
import os

import numpy as np

from experiments.studies import sweep
from fieldnet import rundir
from fieldnet.figures import report
from fieldnet.figures import samples as sample_figures
from notebooks.lib import output, recompute, runs

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
FLOW_WORKDIR = os.environ.get("FIELDNET_FLOW_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"

# %%
workdir = runs.density_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
evaluation = rundir.read_eval(workdir)
test = evaluation["test"]
held_out = recompute.held_out(workdir)
recompute.check_against_eval(held_out.summary, evaluation)

# %% [markdown]
# The summary numbers are those of the sweep table (`fieldnet.sweep.table_row`): r(k)
# averaged over the bins up to half the Nyquist wavenumber, where the grid resolves the field.

# %%
row = sweep.table_row(str(workdir), {}, evaluation)
numbers = {key: row[key] for key in ("mse", "baseline_mse", "pixel_corr",
                                     "mean_r_to_half_nyquist",
                                     "baseline_mean_r_to_half_nyquist", "train_steps")}
numbers["k_nyquist"] = test["k_nyquist"]
output.print_numbers(numbers)

# %%
ratio_saved = np.array(test["power_ratio"], float)
ratio_again = np.asarray(held_out.spec_model["power_ratio"], float)
assert np.allclose(ratio_again, ratio_saved, rtol=recompute.RECOMPUTE_RTOL, equal_nan=True)

fig = output.drawn(report.power_figure, held_out.spec_model, held_out.spec_baseline, None)
output.title(fig, f"MSE {output.fmt(numbers['mse'])} (local baseline "
                  f"{output.fmt(numbers['baseline_mse'])}); {evaluation['n_test']} test maps")
output.show(output.save(fig, figdir, "statistics_power", numbers))

# %%
def as_array(values):
    return np.array([np.nan if v is None else v for v in values], float)


spec_model = {"k": as_array(test["k"]), "cross_corr": as_array(test["cross_corr"]),
              "k_nyquist": test["k_nyquist"]}
spec_baseline = {"cross_corr": as_array(test["baseline_cross_corr"])}
fig = output.drawn(report.cross_corr_figure, spec_model, spec_baseline, None)
output.title(fig, r"mean $r(k \leq k_\mathrm{Nyq}/2)$: model "
                  f"{output.fmt(numbers['mean_r_to_half_nyquist'], 3)}, local baseline "
                  f"{output.fmt(numbers['baseline_mean_r_to_half_nyquist'], 3)}; pixel $r$ "
                  f"{output.fmt(numbers['pixel_corr'], 3)}")
output.show(output.save(fig, figdir, "statistics_cross_corr", numbers))

# %% [markdown]
# ## Samples of a generative run
#
# A flow-matching run (`experiments/configs/density_to_temp_flow.py`) on the same test maps;
# its samples are those its evaluation drew and kept (`test_samples.h5`), read back, not
# drawn again. A regression predicts the conditional mean, whose P(k) falls below the
# truth's on small scales; samples should keep the truth's. The calibration curve is the
# fraction of test pixels whose truth lies in the samples' central interval against the
# interval's nominal level: on the diagonal when calibrated, below it when the samples are
# too narrow; beside it, the histogram of the truth's rank among the samples.

# %%
flow_workdir = runs.flow_run(FLOW_WORKDIR, QUICK)
flow, flow_evaluation = recompute.flow_beside(held_out, (workdir, flow_workdir))
samples_block = flow_evaluation["test"]["samples"]
assert np.allclose(as_array(flow.summary["samples"]["power_ratio"]),
                   as_array(samples_block["power_ratio"]), rtol=recompute.RECOMPUTE_RTOL,
                   equal_nan=True)

# %%
power_numbers = {"n_samples": samples_block["n_samples"], "samples_pdf_w1": samples_block["pdf_w1"],
                 "regression_pdf_w1": test["pdf_w1"], "k": test["k"],
                 "samples_power_ratio": samples_block["power_ratio"],
                 "regression_power_ratio": test["power_ratio"]}
fig = output.drawn(sample_figures.samples_power_figure, flow.true_log_t, flow.samples_log_t,
                   flow.grid, None, regression_log_t=held_out.pred_log_t)
output.title(fig, f"P(k) of {power_numbers['n_samples']} samples per test map, of their mean "
                  "and of the regression; one-point PDF distance $W_1$: samples "
                  f"{output.fmt(power_numbers['samples_pdf_w1'], 3)} dex, regression "
                  f"{output.fmt(power_numbers['regression_pdf_w1'], 3)} dex")
output.show(output.save(fig, figdir, "statistics_samples_power", power_numbers))

# %%
calibration_numbers = {key: samples_block[key]
                       for key in ("n_samples", "coverage_68", "coverage_95", "crps")}
calibration_numbers["n_test"] = flow_evaluation["n_test"]
fig = output.drawn(sample_figures.calibration_figure, flow.true_log_t, flow.samples_log_t, None)
output.title(fig, "truth in the samples' central 68% / 95% interval: "
                  f"{output.fmt(calibration_numbers['coverage_68'], 3)} / "
                  f"{output.fmt(calibration_numbers['coverage_95'], 3)} of the test pixels; "
                  f"CRPS {output.fmt(calibration_numbers['crps'], 3)}; "
                  f"{calibration_numbers['n_samples']} samples of each of "
                  f"{calibration_numbers['n_test']} test maps")
output.show(output.save(fig, figdir, "statistics_calibration", calibration_numbers))
