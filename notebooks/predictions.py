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
# and checked against the run's `eval.json`, whose numbers the figure shows.
#
# **Parameters.** `WORKDIR`: a `density_to_temp` run (`None`: a small run made here);
# `FIGDIR`; `QUICK`; environment variables `FIELDNET_DENSITY_WORKDIR`, `FIELDNET_FIGDIR`,
# `FIELDNET_QUICK`.

# %%
import os

from fieldnet import rundir
from fieldnet.figures import report
from notebooks.lib import output, recompute, runs, samples

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
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
                   density_units=held_out.density_units, box_size=held_out.box_size,
                   n_samples=len(picks))
sims = ", ".join(map(str, sorted(set(held_out.sim_index[picks].tolist()))))
output.title(fig, f"test maps of held-out simulation(s) {sims}: "
                  f"MSE {output.fmt(numbers['mse'])} "
                  f"(local baseline {output.fmt(numbers['baseline_mse'])}), "
                  f"pixel $r$ {output.fmt(numbers['pixel_corr'])} "
                  f"(baseline {output.fmt(numbers['baseline_pixel_corr'])}); "
                  f"{numbers['n_test']} test maps, {numbers['train_steps']} steps")
output.show(output.save(fig, figdir, "predictions_maps", numbers))
