"""Density -> temperature in 3D: 32³ periodic crops of 128³ simulated boxes.

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_3d.py

Meant for a GPU (pip install -e ".[cuda]"); ':quick' shrinks it to a CPU smoke run.
"""

from experiments.configs import density_to_temp


def get_config(arg: str | None = None):
    c = density_to_temp.get_config(arg)
    c.name = "density_to_temp_3d"
    c.data.path = "runs/data/sim3d_25mpc_g128_ps2.h5"
    c.simulate.dim = 3
    c.simulate.n_sims = 16
    c.simulate.grid = 128
    c.data.crop_size = 32
    c.model.width = 16
    c.model.depth = 3
    c.model.channel_mult = (1, 2, 4, 4)
    c.train.num_steps = 10000
    c.train.batch_size = 8
    c.train.eval_every = 1000
    c.train.checkpoint_every = 1000
    c.train.log_every = 100
    c.eval.batch_size = 1
    if arg == "quick":
        c.data.path = "runs/data/sim3d_quick_ps2.h5"
        c.simulate.n_sims = 6
        c.simulate.grid = 32
        c.data.crop_size = 16
        c.model.width = 4
        c.model.depth = 2
        c.model.channel_mult = (1, 2, 4)
        c.train.num_steps = 40
        c.train.batch_size = 4
        c.train.eval_every = c.train.checkpoint_every = 20
        c.train.log_every = 10
    return c
