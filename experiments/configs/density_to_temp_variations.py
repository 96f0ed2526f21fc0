r"""The variations of the paper's comparison table and its data-scaling curve, each a full
run of the default config (density_to_temp.py) with a few keys changed.

    python -m experiments.sweep --config experiments/configs/density_to_temp.py \
        --variations experiments/configs/density_to_temp_variations.py --workdir runs/sweep

Each variation is a name and a dict of config overrides applied to the base config. Every
run is scored on the same validation and test simulations; the `train_sims_*` variations
train on nested subsets of the training simulations (data.max_train_sims), which gives the
test MSE against the number of training simulations. The `flow` variation is
density_to_temp_flow.py as overrides of the default, so the generative run's samples sit in
the same table as the regressions (its MSE is of the samples' mean; its PDF distance and
power ratio are of the samples, beside their coverage and CRPS). On a 2-core CPU each run
takes about as long as the default job, so the sweep takes hours; it resumes run by run.
"""

from experiments.configs import density_to_temp, density_to_temp_flow
from experiments.studies import sweep

CONDITIONED = {"data.condition_on": "t0,gamma,heating_efficiency"}


def get_variations() -> dict[str, dict]:
    return {
        "baseline": {},
        "conditioned": CONDITIONED,
        "train_sims_4": {"data.max_train_sims": 4},
        "train_sims_8": {"data.max_train_sims": 8},
        "train_sims_16": {"data.max_train_sims": 16},
        "train_sims_32": {"data.max_train_sims": 32},
        "zero_padding": {"model.padding": "zero"},
        "dihedral": {"model.symmetry": "dihedral"},
        "no_augment": {"data.augment": False},
        "depth_2": {"model.depth": 2, "model.channel_mult": (1, 2, 4)},
        "width_8": {"model.width": 8},
        "width_24": {"model.width": 24},
        "dropout_0.1": {"model.dropout": 0.1},
        "weight_decay_0.05": {"train.weight_decay": 0.05},
        "lr_5e-4": {"train.learning_rate": 5e-4},
        "conditioned_exact": {**CONDITIONED, "data.condition_noise": 0.0},
        "flow": sweep.overrides_between(density_to_temp.get_config(),
                                        density_to_temp_flow.get_config()),
    }
