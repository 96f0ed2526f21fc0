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
# # Predictions on held-out simulations
#
# The maps panel of a run: log density, true and predicted log temperature, the local
# baseline's prediction, and the residuals, for test maps from different simulations. The
# predictions are remade from the run's best checkpoint exactly as the evaluation made them,
# and checked against the run's `eval.json`, whose numbers the figure shows. Then the
# samples of a generative run on the same test maps, beside the truth and this prediction,
# and their per-pixel spread.
#
# **Parameters.** `WORKDIR`: a `density_to_temp` run (`None`: a small run made here);
# `FLOW_WORKDIR`: a `density_to_temp_flow` run of the same data (`None`: a small run made
# here); `FIGDIR`; `QUICK`; environment variables `FIELDNET_DENSITY_WORKDIR`,
# `FIELDNET_FLOW_WORKDIR`, `FIELDNET_FIGDIR`, `FIELDNET_QUICK`.

# %%
import os

from fieldnet import rundir
from fieldnet.figures import report
from fieldnet.figures import samples as sample_figures
from notebooks.lib import output, recompute, runs, samples

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
FLOW_WORKDIR = os.environ.get("FIELDNET_FLOW_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"

# %%
workdir = runs.density_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
config = rundir.read_config(workdir)
evaluation = rundir.read_eval(workdir)
held_out = recompute.held_out(workdir)
# eval.json against the recomputation: (saved, recomputed, relative difference)
recompute.check_against_eval(held_out.summary, evaluation)

# %%
test = evaluation["test"]
numbers = {"mse": test["mse"], "baseline_mse": test["baseline_mse"],
           "pixel_corr": test["pixel_corr"], "baseline_pixel_corr": test.get("baseline_pixel_corr"),
           "n_test": evaluation["n_test"], "train_steps": evaluation["train_steps"]}
output.print_numbers(numbers)

# %%
picks = samples.pick_by_simulation(held_out.sim_index, config.eval.n_maps)
fig = output.drawn(report.maps_panel, held_out.log_rho[picks], held_out.true_log_t[picks],
                   held_out.pred_log_t[picks], None, held_out.baseline_log_t[picks],
                   density_units=held_out.density_units, grid=held_out.grid,
                   n_samples=len(picks))
sims = ", ".join(map(str, sorted(set(held_out.sim_index[picks].tolist()))))
output.title(fig, f"test maps of held-out simulation(s) {sims}: "
                  f"MSE {output.fmt(numbers['mse'])} "
                  f"(local baseline {output.fmt(numbers['baseline_mse'])}), "
                  f"pixel $r$ {output.fmt(numbers['pixel_corr'])} "
                  f"(baseline {output.fmt(numbers['baseline_pixel_corr'])}); "
                  f"{numbers['n_test']} test maps, {numbers['train_steps']} steps")
output.show(output.save(fig, figdir, "predictions_maps", numbers))

# %% [markdown]
# ## Samples of a generative run
#
# A flow-matching run (`experiments/configs/density_to_temp_flow.py`) draws temperature maps
# from their distribution given the density, where the regression above predicts their
# mean. Its samples of the same test maps were drawn once, when the run was evaluated, and
# kept in its `test_samples.h5`: they are read back here, not drawn again, and their
# statistics checked against its `eval.json`. The panel shows them beside the truth and the
# regression's prediction; the spread map shows their per-pixel standard deviation beside
# the error of their mean and of the regression, which it should match where calibrated.

# %%
flow_workdir = runs.flow_run(FLOW_WORKDIR, QUICK)
flow, flow_evaluation = recompute.flow_beside(held_out, (workdir, flow_workdir))

# %%
samples_block = flow_evaluation["test"]["samples"]
sample_numbers = {key: samples_block[key]
                  for key in ("n_samples", "mse_of_mean", "crps", "coverage_68", "coverage_95")}
sample_numbers.update(regression_mse=numbers["mse"], n_test=flow_evaluation["n_test"],
                      train_steps=flow_evaluation["train_steps"])
output.print_numbers(sample_numbers)
# the maps of both figures: the test maps shown above, with the regression's prediction
shown = {"n_maps": len(picks), "grid": flow.grid,
         "regression_log_t": held_out.pred_log_t[picks]}

# %%
fig = output.drawn(sample_figures.samples_panel, flow.log_rho[picks], flow.true_log_t[picks],
                   flow.samples_log_t[picks], None, density_units=flow.density_units, **shown)
output.title(fig, f"{sample_numbers['n_samples']} samples of each test map of held-out "
                  f"simulation(s) {sims}: MSE of their mean "
                  f"{output.fmt(sample_numbers['mse_of_mean'])} (regression "
                  f"{output.fmt(sample_numbers['regression_mse'])}), CRPS "
                  f"{output.fmt(sample_numbers['crps'])}; {sample_numbers['train_steps']} steps")
output.show(output.save(fig, figdir, "predictions_samples", sample_numbers))

# %%
fig = output.drawn(sample_figures.std_figure, flow.true_log_t[picks], flow.samples_log_t[picks],
                   None, **shown)
output.title(fig, f"spread of {sample_numbers['n_samples']} samples per pixel: the truth lies in "
                  f"their central 68% / 95% interval at "
                  f"{output.fmt(sample_numbers['coverage_68'], 3)} / "
                  f"{output.fmt(sample_numbers['coverage_95'], 3)} of "
                  f"{sample_numbers['n_test']} test maps' pixels")
output.show(output.save(fig, figdir, "predictions_samples_std", sample_numbers))
