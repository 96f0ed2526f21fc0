r"""Density -> temperature on CAMELS Multifield Dataset maps (IllustrisTNG, LH set).

First convert the CMD files (see README, "CAMELS"):

    python -m data_tools.camels --maps-dir CMD/2D_maps/data --input Mtot --target T \
        --suite IllustrisTNG --set LH --out runs/data/camels_tng_lh.h5

then

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_camels.py
"""

from experiments.configs import density_to_temp_gpu


def get_config(arg: str | None = None):
    """The paper-scale model and training of density_to_temp_gpu, on the CMD maps."""
    c = density_to_temp_gpu.get_config(arg)
    c.name = "density_to_temp_camels"
    c.data.path = "runs/data/camels_tng_lh.h5"
    c.data.input_field = "Mtot"
    c.data.target_field = "T"
    c.simulate.enabled = False
    return c
