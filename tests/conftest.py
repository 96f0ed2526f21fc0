"""What the whole test session shares: one persistent JAX compilation cache, one folder of
simulated datasets (`tests.shared`), one small trained run, and an order of the tests.

Many tests compile the same small models and training steps again: in both pytest-xdist
workers and in the command-line runs and worker processes they start. The controlling
process makes one temporary folder before any test runs and removes it at the end; every
process inherits it through the environment, so a function compiled once is loaded
afterwards, and a dataset simulated once is read afterwards. A JAX cache the caller has
configured (`JAX_COMPILATION_CACHE_DIR`) is used as it is and kept.

The end-to-end tests (marked slow) run first, so that on two workers the long ones start
early and the many short ones fill the end. The small trained runs that several tests
inspect are made once for all workers (`tests.shared.made_once`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import pytest

from tests.shared import DATA_ENV

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_made_here: str | None = None


def pytest_configure(config):
    global _made_here
    if hasattr(config, "workerinput") or DATA_ENV in os.environ:
        return  # an xdist worker inherits the controller's folders
    _made_here = tempfile.mkdtemp(prefix="fieldnet-tests-")
    os.environ[DATA_ENV] = os.path.join(_made_here, "data")
    os.mkdir(os.environ[DATA_ENV])
    if _CACHE_ENV in os.environ:
        return  # the caller chose a compilation cache
    from notebooks.make_figures import kernel_environment  # the notebooks' cache settings

    cache = os.path.join(_made_here, "jax_cache")
    os.environ.update(kernel_environment(cache))
    if "jax" in sys.modules:  # imported before this hook: it has read its settings already
        import jax

        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if _made_here is not None:
        shutil.rmtree(_made_here, ignore_errors=True)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_run():
    """The tiny density -> temperature run (`tests.test_experiment.tiny_run_config` on the
    shared simulation), trained and evaluated once: (config, workdir, eval.json). It is
    also the periodic row of the notebooks test's sweep, so it carries that row's name."""
    from experiments.studies import density_to_temp as study
    from fieldnet import rundir
    from tests.shared import made_once
    from tests.test_experiment import tiny_run_config

    folder = made_once("tiny_run", lambda folder: study.train_and_evaluate(
        tiny_run_config(), folder / "run"))
    workdir = folder / "run"
    return tiny_run_config(), workdir, json.loads(rundir.evaluation(workdir).read_text())
