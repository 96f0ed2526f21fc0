"""Classify ordered vs disordered 2D Ising configurations and locate T_c.

    python -m experiments.ising_phases --config experiments/configs/ising.py [--workdir DIR]

All the work is `experiments.studies.ising_phases.train_and_evaluate(config, workdir)`.
Each ensemble member trains in WORKDIR/member_k/ (a rerun resumes it); eval.json and
figures/ are in WORKDIR.
"""

from experiments import launch


def study():
    from experiments.studies import ising_phases

    return ising_phases.train_and_evaluate


if __name__ == "__main__":
    launch.start(study)
