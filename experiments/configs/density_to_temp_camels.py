"""Density -> temperature on CAMELS Multifield Dataset maps (IllustrisTNG, LH set).

First convert the CMD files (see README, "CAMELS"):

    python -m data_tools.camels --maps-dir CMD/2D_maps/data --input Mtot --target T \
        --suite IllustrisTNG --set LH --out runs/data/camels_tng_lh.h5

then

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_camels.py
"""

from experiments.configs import density_to_temp


def get_config(arg: str | None = None):
    c = density_to_temp.get_config(arg)
    c.name = "density_to_temp_camels"
    c.data.path = "runs/data/camels_tng_lh.h5"
    c.data.input_field = "Mtot"
    c.data.target_field = "T"
    c.simulate.enabled = False
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
