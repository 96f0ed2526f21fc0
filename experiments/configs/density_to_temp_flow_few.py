"""Flow matching on few data: `density_to_temp_flow.py` trained on 4 simulations (48 maps)
with 32² crops, where the samples' intervals come out too narrow (coverage 0.590 / 0.927 of
the central 68% / 95% intervals on the validation maps).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_flow_few.py \
        --workdir runs/density_to_temp_flow_few

Same data file, splits and test boxes as the default flow run (8 validation and 8 test
simulations of 12 maps of 64² each); only the first 4 of the 64 training simulations are
used, in 32² crops, as on a small real set. The raw coverage of the samples' central
intervals is reported in eval.json's `test.samples`; `benchmarks/calibration.py` fits a
spread factor on the validation maps (`fieldnet.eval.calibration`) and scores the
calibrated samples on the test boxes:

    python -m benchmarks.calibration --workdir runs/density_to_temp_flow_few

About 15 minutes of CPU time on 2 cores (51 min wall time on a loaded, shared machine, most
of it the 16 samples of each of the 96 test maps); the measured numbers are in
docs/concepts/calibration.md. A smoke run of a minute or two, on the quick config's small data file:

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
        c.data.max_train_sims = 4   # of 64
        # 48 maps: longer training only fits them more closely
        c.train.num_steps = 1500
        c.train.eval_every = c.train.checkpoint_every = 250
    return c
