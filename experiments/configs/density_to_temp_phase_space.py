r"""Matter density and the dark matter's phase space -> gas temperature, on the default
simulated 2D maps.

    python -m experiments.density_to_temp \
        --config experiments/configs/density_to_temp_phase_space.py

Conditioned on the gas parameters of each simulation:

    python -m experiments.density_to_temp \
        --config experiments/configs/density_to_temp_phase_space.py \
        --config.data.condition_on=t0,gamma,heating_efficiency \
        --workdir runs/density_to_temp_phase_space_cond

The density alone leaves the shock-heated gas undetermined: its temperature follows the
velocity dispersion of the dark matter falling in, which a density map does not hold. The
inputs here are the simulator's dark-matter fields (`data_tools.simulate`, the same names
as the snapshot importer writes): `density`, `velocity_dispersion` (log10, with its floor),
`velocity_divergence` (signed, so standardized without a log: `data.transforms`) and the
in-plane `velocity` (a vector: rotated and reflected with the maps, scaled, never logged).
Everything else is `density_to_temp.py`'s, the data included (made on first use).
Measured 2026-12-07 in a fresh venv on 2 CPU cores, 8 test boxes (docs/studies/
density-to-temp.md): test MSE 0.294x the local baseline unconditioned (11 min 11 s,
simulating the data included), 0.115x conditioned. A smoke run of a minute or two:

    python -m experiments.density_to_temp \
        --config experiments/configs/density_to_temp_phase_space.py:quick
"""

import ml_collections

from experiments.configs import density_to_temp

PHASE_SPACE_INPUTS = "density,velocity_dispersion,velocity_divergence,velocity"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = density_to_temp.get_config(arg)
    c.name = "density_to_temp_phase_space"
    c.data.input_field = PHASE_SPACE_INPUTS
    c.data.vector_fields = "velocity"
    c.data.transforms = "velocity_divergence:none"
    return c
