"""Classify ordered vs disordered 2D Ising configurations and locate T_c.

    python -m experiments.ising_phases --config experiments/configs/ising.py [--workdir DIR]

All the work is `fieldnet.phase_study.train_and_evaluate(config, workdir)`.
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
    from fieldnet import phase_study

    launch.run(lambda: phase_study.train_and_evaluate(_CONFIG.value, _WORKDIR.value), argv)


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
