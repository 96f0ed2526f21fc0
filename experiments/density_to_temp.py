"""Learn matter density -> gas temperature and report how well it worked.

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py \
        [--config.train.num_steps=3000 ...] [--workdir runs/my_run]

All the work is `fieldnet.experiment.train_and_evaluate(config, workdir)`.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import launch

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (default runs/<config.name>); "
                               "an existing run there is resumed.")
flags.mark_flags_as_required(["config"])


def main(argv):
    from fieldnet import experiment

    launch.run(lambda: experiment.train_and_evaluate(_CONFIG.value, _WORKDIR.value), argv)


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
