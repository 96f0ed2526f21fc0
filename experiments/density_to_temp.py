r"""Learn matter density -> gas temperature and report how well it worked.

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py \
        [--config.train.num_steps=3000 ...] [--workdir runs/my_run]

All the work is `experiments.studies.density_to_temp.train_and_evaluate(config, workdir)`.
"""

from experiments import launch


def study():
    from experiments.studies import density_to_temp

    return density_to_temp.train_and_evaluate


if __name__ == "__main__":
    launch.start(study)
