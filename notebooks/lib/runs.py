"""Where the notebooks run, and the run each one shows.

A notebook shows a given run's workdir, or makes a small run itself through the library API
(`density_run`, `flow_run`, `sweep_run`, `ising_run`) under runs/notebooks/. Relative paths
(a workdir, a figure folder, a config's data file) mean paths in the repository root,
whatever the working directory: Jupyter starts a kernel in notebooks/,
`python -m notebooks.make_figures` in the root.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import ml_collections

from fieldnet import rundir
from fieldnet.errors import FieldnetError

ROOT = Path(__file__).resolve().parents[2]   # the checkout holding notebooks/
RUNS = ROOT / "runs" / "notebooks"


def at_root(path: str | os.PathLike) -> Path:
    """`path`, if relative, taken in the repository root."""
    return ROOT / path


def _size(quick: bool) -> str:
    return "quick" if quick else "default"


def own_workdir(kind: str, quick: bool, config: ml_collections.ConfigDict) -> Path:
    """Where a notebook keeps the run it makes: named by the config's hash, so that a
    changed config makes a new run instead of meeting a workdir that refuses it."""
    text = json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True)
    return RUNS / f"{kind}_{_size(quick)}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _own_config(get_config: Callable, quick: bool) -> ml_collections.ConfigDict:
    """A study's quick (or CPU default) config for a run made here: no progress bar, and
    its data file (runs/data/...) taken in the repository root, where the config means it."""
    config = get_config("quick" if quick else None)
    config.data.path = str(at_root(config.data.path))
    config.train.progress = False
    return config


def _own_run(kind: str, quick: bool, config: ml_collections.ConfigDict,
             study: Callable) -> Path:
    """Runs `study` in `own_workdir` unless it already holds this config's finished run
    (the folder is named by the config's hash, so a finished run there is this config's)."""
    workdir = own_workdir(kind, quick, config)
    if not rundir.evaluation(workdir).exists():
        study(config, workdir)
    return workdir


def _objective(workdir: Path):
    """The objective of the run in `workdir` (`fieldnet.objectives`)."""
    from fieldnet import objectives

    return objectives.of(rundir.read_config(workdir).model)


# What a given density (or flow) run's workdir must hold for the notebooks.
FIELD_RUN_FILES = (rundir.CONFIG, rundir.EVAL, rundir.NORMALIZER, rundir.MODEL_IO)


def density_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given (a regression run: the notebooks call its prediction "the
    regression"), else a density -> temperature run of `get_config("quick")` (or of the CPU
    default) made here, in runs/notebooks/, and reused once finished."""
    if workdir is not None:
        workdir = rundir.require(at_root(workdir), *FIELD_RUN_FILES)
        objective = _objective(workdir)
        if objective.generative:
            raise FieldnetError(f"{workdir}: a {objective.kind} run (model.objective="
                                f"{objective.name!r}); pass it as the flow run (--flow-workdir) "
                                "and a regression run as the density run")
        return workdir
    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as study

    return _own_run("density_to_temp", quick, _own_config(density_to_temp.get_config, quick),
                    study.train_and_evaluate)


def flow_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given (a generative run, model.objective "flow", with the test samples
    its evaluation kept), else a run of density_to_temp_flow's `get_config("quick")` (or of
    the CPU default) made here, in runs/notebooks/, and reused once finished. Its configs
    read the data of `density_run`'s, so a made flow run and a made density run show the
    same test maps."""
    if workdir is not None:
        workdir = rundir.require(at_root(workdir), *FIELD_RUN_FILES)
        objective = _objective(workdir)
        if not objective.generative:
            raise FieldnetError(f"{workdir}: a {objective.name} run; the samples figures need "
                                "a generative run (model.objective='flow')")
        if not rundir.test_samples(workdir).exists():
            raise FieldnetError(f"{workdir}: no {rundir.TEST_SAMPLES} (evaluated before the "
                                "test samples were kept); rerun its command to evaluate it "
                                "again")
        return workdir
    from experiments.configs import density_to_temp_flow
    from experiments.studies import density_to_temp as study

    return _own_run("density_to_temp_flow", quick,
                    _own_config(density_to_temp_flow.get_config, quick), study.train_and_evaluate)


def ising_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given, else an Ising phase study of `ising.get_config("quick")` (or of
    the default) made here, in runs/notebooks/, and reused once finished."""
    if workdir is not None:
        return rundir.require(at_root(workdir), rundir.CONFIG, rundir.EVAL)
    from experiments.configs import ising
    from experiments.studies import ising_phases as phase_study

    return _own_run("ising", quick, _own_config(ising.get_config, quick),
                    phase_study.train_and_evaluate)


def sweep_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given (an `experiments.sweep` output), else the paper's variations
    (experiments/configs/density_to_temp_variations.py) on the quick (or default) config,
    run here in runs/notebooks/. Variations that change nothing on that base config (the
    quick model already has depth 2 and width 8) are left out, and so is the quick
    config's data-scaling curve (its 6 simulations leave 4 to train on)."""
    if workdir is not None:
        return rundir.require(at_root(workdir), rundir.TABLE_CSV, rundir.TABLE_MD)
    from experiments.configs import density_to_temp, density_to_temp_variations
    from experiments.studies import density_to_temp as study
    from experiments.studies import sweep

    base = _own_config(density_to_temp.get_config, quick)
    variations = {name: overrides for name, overrides
                  in density_to_temp_variations.get_variations().items()
                  if not overrides
                  or (sweep.apply_overrides(base, overrides).to_dict() != base.to_dict()
                      and not (quick and "data.max_train_sims" in overrides))}
    out = own_workdir("sweep", quick, base)
    done = [out / rundir.TABLE_CSV, out / rundir.TABLE_MD] + [rundir.evaluation(out / name)
                                                            for name in variations]
    if not all(path.exists() for path in done):
        sweep.run_sweep(base, variations, out, study.train_and_evaluate)
    return out
