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
# # Phases of the 2D Ising model
#
# A periodic, flip- and D4-invariant CNN classifier, trained only far from the transition,
# gives P(ordered | T) for each lattice size L on held-out Monte Carlo chains. Its 1/2
# crossings T_c(L) are extrapolated with $T_c(L) = T_c + a L^{-1/\nu}$ to the infinite
# lattice and compared with Onsager's $T_c = 2/\ln(1+\sqrt 2)$. Every number is read from
# the run's `eval.json`.
#
# **Parameters.** `WORKDIR`: an `ising_phases` run (`None`: a small run made here, in
# `runs/notebooks/`); `FIGDIR`; `QUICK`; environment variables `FIELDNET_ISING_WORKDIR`,
# `FIELDNET_FIGDIR`, `FIELDNET_QUICK`.

# %%
import os

from fieldnet import rundir
from fieldnet.figures import phases as phase_figures
from notebooks.lib import ising_results, output, runs

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_ISING_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"

# %%
workdir = runs.ising_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
config = rundir.read_config(workdir)
evaluation = rundir.read_eval(workdir)
nu = (evaluation.get("fit") or {}).get("nu", config.analysis.nu)
numbers = {"tc": evaluation["tc"], "tc_err": evaluation["tc_err"],
           "onsager_tc": evaluation["onsager_tc"], "per_L": evaluation["per_L"]}
pull = evaluation["pull"]
summary = (f"$T_c(L\\to\\infty) = {numbers['tc']:.4f} \\pm {numbers['tc_err']:.4f}$ "
           f"$J/k_B$, Onsager ${numbers['onsager_tc']:.4f}$ ({pull:+.1f}$\\sigma$)")
output.print_numbers(numbers)

# %%
fig = output.drawn(phase_figures.phase_curves, ising_results.curves(evaluation), None,
                   ordered_below=config.data.ordered_below,
                   disordered_above=config.data.disordered_above)
output.title(fig, summary)
output.show(output.save(fig, figdir, "ising_p_ordered", numbers))

# %%
sizes = sorted(int(L) for L in evaluation["per_L"])
fit = ising_results.extrapolation(evaluation, nu, config.analysis.get("corrections", 1))
fig = output.drawn(phase_figures.tc_extrapolation, sizes, evaluation["per_L"], fit, None,
                   nu=nu)
output.title(fig, ", ".join(f"$T_c({L}) = {evaluation['per_L'][str(L)]['tc']:.3f} \\pm "
                            f"{evaluation['per_L'][str(L)]['tc_err']:.3f}$" for L in sizes))
output.show(output.save(fig, figdir, "ising_tc_extrapolation", numbers))
