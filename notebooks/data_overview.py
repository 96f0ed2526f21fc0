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
# # Data overview: the simulated density and temperature fields
#
# Example maps of the matter density and the gas temperature, the T–ρ phase diagram of the
# training set with the local baseline ⟨log T | ρ⟩, and the one-point PDFs of the train and
# test splits, all read through the run's own data config and normalizer (so log floors and
# splits are those the network saw).
#
# **Parameters.** `WORKDIR`: a `density_to_temp` run; `None` makes a small run here
# (`runs/notebooks/`). `FIGDIR`: where figures go (PNG and PDF). `QUICK`: size of that small
# run. Environment variables `FIELDNET_DENSITY_WORKDIR`, `FIELDNET_FIGDIR`, `FIELDNET_QUICK`
# set the defaults; `python -m notebooks.make_figures` injects them.

# %%
import os

import numpy as np

from fieldnet import rundir
from fieldnet.eval import held_out as evaluate
from fieldnet.figures import report
from notebooks.lib import data_figures, output, runs, samples

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"
N_MAPS = 3          # example maps, one per training simulation
MAX_SAMPLES = 64    # training maps read for the phase diagram and the PDFs

# %%
workdir = runs.density_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
config = rundir.read_config(workdir)
print(f"run: {workdir}")

ds = samples.open_run_dataset(workdir)
print(ds.describe())
train = samples.training_maps(ds, MAX_SAMPLES)
test = ds.read("test")
train_log_rho, train_log_t = samples.log_fields(ds, train)
test_log_rho, test_log_t = samples.log_fields(ds, test)
density_units = train["units"][ds.input_names[0]]
dataset = {"box_size": list(ds.grid.lengths), "train_maps": len(train_log_rho),
           "train_simulations": len(np.unique(train["sim_index"])), "test_maps": len(test_log_t),
           "test_simulations": len(np.unique(test["sim_index"]))}
output.print_numbers(dataset)

# %% [markdown]
# ## Example maps
# One training map from each of the first simulations; the density is the projected mass per
# pixel and the temperature the mass-weighted temperature of the slab.

# %%
picks = samples.pick_by_simulation(train["sim_index"], N_MAPS)
fig = data_figures.example_maps(train_log_rho[picks], train_log_t[picks],
                                train["sim_index"][picks], box_size=ds.grid.lengths[0],
                                density_units=density_units)
box = " x ".join(f"{length:g}" for length in ds.grid.lengths)
output.title(fig, f"{box} Mpc/$h$ boxes, {dataset['train_maps']} training maps from "
                  f"{dataset['train_simulations']} simulations")
output.show(output.save(fig, figdir, "data_maps", dataset))

# %% [markdown]
# ## T–ρ phase diagram of the training set
# The local baseline is the best any function of the local density alone can do; what the
# network gains over it comes from the environment.

# %%
baseline = evaluate.fit_baseline(ds, config.eval.baseline_bins)
curve = (ds.normalizer[ds.input_names[0]].unstandardize(baseline.centres),
         ds.normalizer[ds.target_names[0]].unstandardize(baseline.means))
fig = output.drawn(report.phase_diagram_panels, {"train": (train_log_rho, train_log_t)}, None,
                  baseline=curve, density_units=density_units)
output.title(fig, f"training set: {dataset['train_maps']} maps, "
                  f"{train_log_t.size:,} pixels")
output.show(output.save(fig, figdir, "data_phase_diagram", dataset))

# %% [markdown]
# ## One-point PDFs
# Train and test splits are separate simulations; their PDFs should agree within sample
# variance.

# %%
train_label = f"train ({len(train_log_t)} maps)"
test_label = f"test ({len(test_log_t)} maps)"
fig = output.drawn(report.pdf_panels,
                   {report.log_rho_label(density_units): {train_label: train_log_rho,
                                                          test_label: test_log_rho},
                    report.LOG_T_LABEL: {train_label: train_log_t, test_label: test_log_t}},
                   None)
output.show(output.save(fig, figdir, "data_pdfs", dataset))

# %%
ds.close()
