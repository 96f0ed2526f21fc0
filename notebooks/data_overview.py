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

from fieldnet.eval import held_out as evaluate
from notebooks import helpers as nbf

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"
N_MAPS = 3          # example maps, one per training simulation
MAX_SAMPLES = 64    # training maps read for the phase diagram and the PDFs

# %%
nbf.use_repository_root()
workdir = nbf.density_run(WORKDIR, QUICK)
config = nbf.load_config(workdir)
print(f"run: {workdir}")

ds = nbf.open_run_dataset(workdir)
print(ds.describe())
train = nbf.training_maps(ds, MAX_SAMPLES)
test = ds.read("test")
train_log_rho, train_log_t = nbf.log_fields(ds, train)
test_log_rho, test_log_t = nbf.log_fields(ds, test)
density_units = train["units"][ds.input_names[0]]
dataset = {"box_size": ds.box_size, "train_maps": len(train_log_rho),
           "train_simulations": len(np.unique(train["sim_index"])), "test_maps": len(test_log_t),
           "test_simulations": len(np.unique(test["sim_index"]))}
nbf.print_numbers(dataset)

# %% [markdown]
# ## Example maps
# One training map from each of the first simulations; the density is the projected mass per
# pixel and the temperature the mass-weighted temperature of the slab.

# %%
picks = nbf.pick_by_simulation(train["sim_index"], N_MAPS)
fig = nbf.example_maps(train_log_rho[picks], train_log_t[picks], train["sim_index"][picks],
                       box_size=ds.box_size, density_units=density_units)
nbf.title(fig, f"{ds.box_size:g} Mpc/$h$ boxes, {dataset['train_maps']} training maps from "
               f"{dataset['train_simulations']} simulations")
nbf.show(nbf.save(fig, FIGDIR, "data_maps", dataset))

# %% [markdown]
# ## T–ρ phase diagram of the training set
# The local baseline is the best any function of the local density alone can do; what the
# network gains over it comes from the environment.

# %%
baseline = evaluate.fit_baseline(ds, config.eval.baseline_bins)
curve = (ds.normalizer[ds.input_names[0]].unstandardize(baseline.centres),
         ds.normalizer[ds.target_names[0]].unstandardize(baseline.means))
fig = nbf.training_phase_diagram(train_log_rho, train_log_t, density_units=density_units,
                                 baseline=curve)
nbf.title(fig, f"training set: {dataset['train_maps']} maps, "
               f"{train_log_t.size:,} pixels")
nbf.show(nbf.save(fig, FIGDIR, "data_phase_diagram", dataset))

# %% [markdown]
# ## One-point PDFs
# Train and test splits are separate simulations; their PDFs should agree within sample
# variance.

# %%
fig = nbf.one_point_pdfs({"train": (train_log_rho, train_log_t),
                          "test": (test_log_rho, test_log_t)}, density_units=density_units)
nbf.show(nbf.save(fig, FIGDIR, "data_pdfs", dataset))

# %%
ds.close()
