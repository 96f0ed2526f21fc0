"""Stochastic density -> temperature: a flow-matching U-Net that draws temperature maps
from their distribution given the density, on the default simulated 2D maps.

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_flow.py

A regression network predicts the conditional mean, a map blurred where the density does
not fix the temperature; this run learns the velocity of the straight path from noise to
the target (rectified flow, `fieldnet.nn.flow`) and samples with a 20-step Heun solver.
eval.json's test block gains `samples` (power of the samples, calibration of their
intervals, CRPS); the usual keys are of the samples' mean. Data as
`density_to_temp.py` (made on first use); within 30 minutes on a 2-core CPU, training and
16 samples of each test map. A smoke run of a minute or two:

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_flow.py:quick
"""

import ml_collections

from experiments.configs import density_to_temp


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = density_to_temp.get_config(arg)
    c.name = "density_to_temp_flow"
    c.model.objective = "flow"       # "regression" (density_to_temp.py) or "flow"
    c.train.loss = "flow_matching"
    # eval.n_samples and eval.sample_steps: density_to_temp.py (16 samples, 20 Heun steps)
    c.eval.batch_size = 16           # trajectories integrated together
    if arg == "quick":
        c.train.num_steps = 60
        c.eval.n_samples = 8
        c.eval.sample_steps = 8
        c.eval.batch_size = 8
    else:
        c.model.width = 16
        c.train.num_steps = 2000
        c.train.batch_size = 16
        c.train.eval_every = c.train.checkpoint_every = 250
    return c
