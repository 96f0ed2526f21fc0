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
# # Symmetry: periodic against zero padding, dihedral against none
#
# The simulation box is periodic and its statistics isotropic. A U-Net with periodic padding
# commutes with periodic shifts by multiples of its total stride $2^\mathrm{depth}$; with
# zero padding the box edges break that. With `symmetry="dihedral"` every kernel is
# invariant under the grid's rotations and reflections, so the network commutes with them
# exactly, for any weights. The equivariance error
#
# $$\epsilon_g(\mathbf x) = \left|\, g^{-1} f(g\,x) - f(x)\,\right|(\mathbf x)$$
#
# is measured on a held-out density map of the run, in dex of the predicted log10 T
# (the normalized output times the run's σ of log10 T).
#
# - **Padding**: the run's trained weights, run once with periodic and once with zero padding.
# - **Rotations and reflections**: the run's trained network, and fresh initializations of
#   the same architecture without and with `symmetry="dihedral"` (exactness by construction
#   holds for any weights, so untrained ones show it as well).
#
# **Parameters.** `WORKDIR`: a `density_to_temp` run (`None`: a small run made here);
# `FIGDIR`; `QUICK`; `SEED` of the fresh initializations; environment variables
# `FIELDNET_DENSITY_WORKDIR`, `FIELDNET_FIGDIR`, `FIELDNET_QUICK`.

# %%
import os

import numpy as np
from flax import nnx

from fieldnet import models, rundir, symmetry
from fieldnet.eval.inference import jitted_forward
from fieldnet.inference import open_run
from notebooks.lib import equivariance, output, runs, samples, symmetry_figures

# %% tags=["parameters"]
WORKDIR = os.environ.get("FIELDNET_DENSITY_WORKDIR")
FIGDIR = os.environ.get("FIELDNET_FIGDIR", "notebooks/figures")
QUICK = os.environ.get("FIELDNET_QUICK", "1") != "0"
SEED = 0

# %%
workdir = runs.density_run(WORKDIR, QUICK)
figdir = runs.at_root(FIGDIR)
config = rundir.read_config(workdir)
run = open_run(workdir)
trained, normalizer, io = run.model, run.normalizer, run.io
with samples.open_run_dataset(workdir) as ds:
    sample = next(ds.iter_samples("test"))
    dex = normalizer[ds.target_names[0]].std   # normalized output -> dex of log10 T
    box_size = ds.grid.lengths[0]
x = sample["x"][None]
shape = {k: io[k] for k in ("in_channels", "out_channels", "ndim")}


def build(**overrides):
    return models.build(config.model, rngs=nnx.Rngs(SEED), **shape, **overrides)


def with_trained_weights(padding):
    model = build(padding=padding, symmetry=config.model.symmetry)
    nnx.update(model, nnx.state(trained))
    return model


stride = trained.stride
shift = stride * max(1, x.shape[1] // (4 * stride))
print(f"map {x.shape[1:-1]} of simulation {sample['sim_index']}, box {box_size:g} Mpc/h; "
      f"stride {stride}, shift {shift} px = {shift * box_size / x.shape[1]:.3g} Mpc/h")

# %% [markdown]
# ## Periodic shifts

# %%
forward = {padding: jitted_forward(with_trained_weights(padding))
           for padding in ("periodic", "zero")}
shifted = {padding: equivariance.translation_error(forward[padding], x, shift) * dex
           for padding in forward}
off_grid = equivariance.translation_error(forward["periodic"], x, 1) * dex
prediction = np.asarray(forward["periodic"](x)) * dex
rounding = float(np.finfo(np.float32).eps * equivariance.rms(prediction))

# %% [markdown]
# ## Rotations and reflections

# %%
group_models = {"trained (symmetry=" + config.model.symmetry + ")": trained,
                "untrained, symmetry=none": build(padding="periodic", symmetry="none"),
                "untrained, symmetry=dihedral": build(padding="periodic", symmetry="dihedral")}
group = {name: {g: err * dex
                 for g, err in equivariance.group_errors(jitted_forward(m), x).items()}
         for name, m in group_models.items()}
rotation = equivariance.element_name(
    next(g for g in symmetry.group_elements(x.ndim - 2)
         if sum(g.flips) == 1 and g.perm != tuple(range(x.ndim - 2))))

# %%
rms = equivariance.rms
errors = {f"periodic padding, shift {shift} px": rms(shifted["periodic"]),
          f"zero padding, shift {shift} px": rms(shifted["zero"]),
          f"periodic padding, shift 1 px (not a multiple of {stride})": rms(off_grid)}
errors.update({f"{name}: {len(g)} rotations/reflections": rms(np.stack(list(g.values())))
               for name, g in group.items()})
numbers = {"rms_error_dex": errors, "max_error_dex": {
    "periodic_shift": float(shifted["periodic"].max()),
    "zero_shift": float(shifted["zero"].max())}, "float32_rounding_dex": rounding,
    "stride": stride, "shift": shift}
output.print_numbers(numbers)

# %%
def rms_label(error):
    return f"RMS {output.fmt(rms(error), 2)} dex" if error.any() else "bitwise equal"


maps = {f"{padding} padding, shift {shift} px\n{rms_label(error)}": error
        for padding, error in shifted.items()}
for name in list(group)[1:]:
    maps[f"{name}\nrotation {rotation}, {rms_label(group[name][rotation])}"] = \
        group[name][rotation]
fig = symmetry_figures.error_maps_figure(maps, box_size=box_size, units="dex")
output.title(fig, r"$|g^{-1} f(g\,x) - f(x)|$ on a held-out map")
output.show(output.save(fig, figdir, "symmetry_maps", numbers))

# %%
fig = symmetry_figures.error_bars_figure(errors, units="dex", rounding=rounding)
output.title(fig, "equivariance error of the U-Net's predicted $\\log_{10} T$")
output.show(output.save(fig, figdir, "symmetry_errors", numbers))
