"""Density -> temperature at paper scale: 256² maps from 64 simulations (for a GPU).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_gpu.py

Install JAX for the GPU first: pip install -e ".[cuda]". Uses bf16 compute.
"""

from experiments.configs import density_to_temp


def get_config(arg: str | None = None):
    c = density_to_temp.get_config(arg)
    c.name = "density_to_temp_gpu"
    c.data.path = "runs/data/sim2d_25mpc_g256_ps2.h5"
    c.simulate.n_sims = 64
    c.simulate.grid = 256
    c.data.crop_size = 128
    c.model.width = 32
    c.model.depth = 4
    c.model.channel_mult = (1, 2, 4, 8, 8)
    c.model.dtype = "bfloat16"
    c.train.num_steps = 20000
    c.train.batch_size = 32
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 500
    c.train.eval_every = 1000
    c.train.checkpoint_every = 1000
    c.train.log_every = 100
    return c
