r"""The hyperparameter variations of the paper's comparison table.

    python -m experiments.sweep --config experiments/configs/density_to_temp.py \
        --variations experiments/configs/density_to_temp_variations.py --workdir runs/sweep

Each variation is a name and a dict of config overrides applied to the base config.
"""


def get_variations() -> dict[str, dict]:
    return {
        "baseline": {},
        "zero_padding": {"model.padding": "zero"},
        "dihedral": {"model.symmetry": "dihedral"},
        "depth_2": {"model.depth": 2, "model.channel_mult": (1, 2, 4)},
        "width_8": {"model.width": 8},
        "lr_5e-4": {"train.learning_rate": 5e-4},
    }
