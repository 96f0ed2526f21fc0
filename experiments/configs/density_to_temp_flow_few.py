"""Flow matching on few data: `density_to_temp_flow.py` trained on 4 simulations (48 maps)
with 32² crops, where the samples' intervals come out too narrow (coverage 0.657 / 0.939
of the central 68% / 95% intervals over 196 test boxes, 0.642 / 0.929 over 196 validation
boxes), and a calibration fitted on the validation boxes brings the test boxes to 0.692 /
0.949 (with `--config.data.split_seed=1`: from 0.609 / 0.924 to 0.690 / 0.950).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp_flow_few.py \
        --workdir runs/density_to_temp_flow_few

Its own data file, made on first use: 400 simulations of 12 maps of 64² each, split
8 / 196 / 196. The first 4 training simulations are used, in 32² crops, as on a small real
set. Coverage varies from box to box far more than from map to map within a box, so the
run scores one map of each of many boxes (`data.eval_maps_per_sim`), which measures the
coverage to about ±0.011. The run fits an offset per sample on the 196 validation maps
(`fieldnet.eval.calibration`), which keeps the samples' power spectrum, and reports the
raw and calibrated coverage in eval.json's `test.samples`. `benchmarks/calibration.py`
fits either method on the same maps and scores it on the run's test samples:

    python -m benchmarks.calibration --workdir runs/density_to_temp_flow_few --max-val-maps 196

About 44 minutes of wall time on a 2-core CPU: 19 to simulate the data, 3 to train, 11 for
the validation samples and 10 for the test samples; the measured numbers are in
docs/concepts/calibration.md. A smoke run of a minute or two, on the quick config's small
data file:

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
        # Coverage varies mostly from box to box (the 12 maps of one box share its
        # parameters, and so its level), so this run measures it on many boxes at one map
        # each: 400 simulations, split 8 / 196 / 196, the first map of each validation and
        # test box. Coverage then has an error of about ±0.011 (±0.026 over 36 boxes of 12
        # maps each), and a fit on the validation boxes transfers to the test boxes.
        c.data.path = "runs/data/sim2d_25mpc_g64_n400_ps2.h5"
        c.simulate.n_sims = 400     # about 19 minutes on 2 CPU cores
        c.data.split_fractions = (0.02, 0.49, 0.49)
        c.data.max_train_sims = 4   # of 8
        c.data.eval_maps_per_sim = 1
        c.eval.calibration_maps = 196   # every validation box
        # the spread's coverage, with the samples' power as drawn
        c.eval.calibration_method = "offset"
        # 48 maps: longer training only fits them more closely
        c.train.num_steps = 1500
        c.train.eval_every = c.train.checkpoint_every = 250
    return c
