"""Learn matter density -> gas temperature and report how well it worked.

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py \
        [--config.train.num_steps=3000 ...] [--workdir runs/my_run]

All the work is `fieldnet.experiment.train_and_evaluate(config, workdir)`.
"""

from experiments import launch


def study():
    from fieldnet import experiment

    return experiment.train_and_evaluate


if __name__ == "__main__":
    launch.start(study)
