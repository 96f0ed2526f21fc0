"""Matter density -> gas temperature on the built-in simulator's 2D maps (CPU-sized default).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py

Makes the dataset with `data_tools.simulate` on first use (runs/data/, reused afterwards):
80 simulations of 12 maps each, split 64 / 8 / 8 into train, validation and test, so every
score is a mean over 8 test boxes with an error. Trains a periodic U-Net, evaluates it
against the local T(rho) baseline and writes the report to the workdir (default
runs/density_to_temp). Conditioned on the gas parameters of each simulation:

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py \
        --config.data.condition_on=t0,gamma,heating_efficiency --workdir runs/density_to_temp_cond

A smoke run of a minute or two:

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py:quick
"""

import ml_collections

from fieldnet import data, train
from fieldnet.eval import config as evaluation


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "density_to_temp"
    c.seed = 0

    c.data = data.default_config()
    # "_ps2": phase-space fields with the maps' dispersion as the cells' rms (a file named
    # "_ps" holds the older column dispersion, data_tools.phase_space); same density and T
    c.data.path = "runs/data/sim2d_25mpc_g64_n80_ps2.h5"
    c.data.input_field = "density"
    c.data.target_field = "temperature"
    c.data.crop_size = 64
    # Used only with data.condition_on: without it the model keys on the 64 exact parameter
    # vectors of the training simulations, and its validation loss turns upward early.
    c.data.condition_noise = 0.2

    # Used only when data.path does not exist yet: the simulator makes it there.
    c.simulate = ml_collections.ConfigDict()
    c.simulate.enabled = True
    c.simulate.n_sims = 80          # about 2 minutes on 2 CPU cores
    c.simulate.grid = 64
    c.simulate.box = 25.0
    c.simulate.dim = 2
    c.simulate.seed = 1

    c.model = ml_collections.ConfigDict()
    c.model.name = "unet"
    c.model.objective = "regression"   # or "flow": see density_to_temp_flow.py
    c.model.width = 16
    c.model.depth = 3
    c.model.padding = "periodic"
    c.model.symmetry = "none"
    c.model.channel_mult = (1, 2, 4, 4)
    c.model.blocks_per_level = 1
    c.model.kernel_size = 3
    c.model.norm = "layer"
    c.model.act = "gelu"
    c.model.dropout = 0.0
    c.model.global_residual = False
    c.model.dtype = "float32"

    c.train = train.default_config()
    c.train.num_steps = 1500
    c.train.batch_size = 16
    c.train.learning_rate = 2e-3
    c.train.eval_every = 250
    c.train.checkpoint_every = 250

    c.eval = evaluation.default_config()

    if arg == "quick":
        c.data.path = "runs/data/sim2d_quick_ps2.h5"
        c.simulate.n_sims = 6
        c.simulate.grid = 32
        c.data.crop_size = 32
        c.model.width = 8
        c.model.depth = 2
        c.model.channel_mult = (1, 2, 4)
        c.train.num_steps = 60
        c.train.warmup_steps = 10
        c.train.batch_size = 8
        c.train.eval_every = 30
        c.train.checkpoint_every = 30
        c.train.log_every = 10
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; use ':quick' or nothing")
    return c
