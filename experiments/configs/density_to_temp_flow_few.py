"""Flow matching on few data: `density_to_temp_flow.py` trained on 4 simulations (48 maps)
with 32² crops, where the samples' intervals come out too narrow (coverage 0.605 / 0.929
of the central 68% / 95% intervals over 36 test boxes).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_flow_few.py \
        --workdir runs/density_to_temp_flow_few

The default data file, split 8 / 36 / 36 simulations of 12 maps of 64² each: the first 4
training simulations are used, in 32² crops, as on a small real set, and the many
validation and test boxes measure coverage to about ±0.03 (±0.07 over the default split's
8). The run fits an offset per sample on 108 validation maps (3 of each validation box;
`fieldnet.eval.calibration`), which keeps the samples' power spectrum, and reports the raw
and calibrated coverage in eval.json's `test.samples`. `benchmarks/calibration.py` fits
either method on the same maps and scores it on the run's test samples:

    python -m benchmarks.calibration --workdir runs/density_to_temp_flow_few --max-val-maps 108

About 52 minutes of wall time on a shared 2-core CPU, most of it the 16 samples of each of
the 432 test maps; the measured numbers are in docs/concepts/calibration.md. A smoke run of
a minute or two, on the quick config's small data file:

    python -m experiments.density_to_temp \
        --config experiments/configs/density_to_temp_flow_few.py:quick
"""

import ml_collections

from experiments.configs import density_to_temp_flow


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = density_to_temp_flow.get_config(arg)
    c.name = "density_to_temp_flow_few"
    c.data.crop_size = 32
    if arg == "quick":
        c.data.max_train_sims = 2   # of the quick file's 4 training simulations
    else:
        # 8 / 36 / 36 simulations: coverage over 36 test boxes has an error of about
        # ±0.03 (±0.07 over 8), and a calibration fitted on 36 validation boxes is steadier
        c.data.split_fractions = (0.1, 0.45, 0.45)
        c.data.max_train_sims = 4   # of 8
        c.eval.calibration_maps = 108   # 3 of each validation box
        # the spread's coverage, with the samples' power as drawn
        c.eval.calibration_method = "offset"
        # 48 maps: longer training only fits them more closely
        c.train.num_steps = 1500
        c.train.eval_every = c.train.checkpoint_every = 250
    return c
