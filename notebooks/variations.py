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
# # Hyperparameter variations
#
# The comparison table of a sweep (`python -m experiments.sweep`: periodic against zero
# padding, symmetry, depth, width, learning rate) and its test metrics against each varied
# setting. Every number is read from the variations' `eval.json` (checked against the sweep's
# `table.csv`).
#
# **Parameters.** `WORKDIR`: a sweep folder (with `table.csv` and one run per variation);
# `None` runs the paper's variations on the small config here (`runs/notebooks/`; the
# variations that change nothing on that config are left out). `FIGDIR`; `QUICK`;
# environment variables `FIELDNET_SWEEP_WORKDIR`, `FIELDNET_FIGDIR`, `FIELDNET_QUICK`.

# %%
import os

from IPython.display import Markdown

from experiments.studies import sweep
from fieldnet import files, rundir
from notebooks.lib import output, runs, sweep_figures

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_SWEEP_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"

# %%
sweep_dir = runs.sweep_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
rows = sweep_figures.sweep_rows(sweep_dir)
print(f"sweep: {sweep_dir}")
table = (sweep_dir / rundir.TABLE_MD).read_text()
figdir.mkdir(parents=True, exist_ok=True)
files.write_text(figdir / "variations_table.md", table)
Markdown(table)

# %% [markdown]
# MSE is in the normalized target space (standardized log10 T), the mean over the test maps
# ± its bootstrap standard error over the test simulations (none with a single test box);
# r is the Pearson correlation of log10 T per pixel, and r(k) is averaged over the bins up to
# half the Nyquist wavenumber. Dashed: the local baseline T(ρ), which is the same for every
# variation of the model.

# %%
numbers = {"variations": {r["variation"]: {k: r[k] for k in sweep.columns()[2:]} for r in rows}}
fig = sweep_figures.variations_figure(rows)
best = min(rows, key=lambda r: r["mse"])
output.title(fig, f"{len(rows)} variations; lowest test MSE: {best['variation']} "
                  f"({output.fmt(best['mse'])}, local baseline "
                  f"{output.fmt(best['baseline_mse'])})")
output.show(output.save(fig, figdir, "variations_metrics", numbers))

# %% [markdown]
# The data-scaling curve: test MSE against the number of training simulations (variations
# of `data.max_train_sims` alone, nested training sets, the same validation and test boxes),
# in dex² of log10 T, since each run standardizes log10 T with its own training split.

# %%
curve = sweep_figures.scaling_rows(rows)
if curve:
    fig = sweep_figures.scaling_figure(rows, sweep_dir)
    ratios = {r["n_train_sims"]: r["mse"] / r["baseline_mse"] for r in curve}
    output.title(fig, "test MSE / local baseline against training simulations: "
                      + ", ".join(f"{n}: {output.fmt(v, 2)}" for n, v in ratios.items()))
    output.show(output.save(fig, figdir, "variations_scaling", {"scaling": ratios}))
else:
    print("no data-scaling variations (data.max_train_sims) in this sweep")
