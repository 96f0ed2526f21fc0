"""What several tests read, made once per test session across the pytest-xdist workers.

`made_once(name, make)` fills a folder of the session's shared folder (made by
conftest.py, `DATA_ENV`) with `make(folder)`, under a file lock: the first process to ask
makes it, any other waits for it and then reads it whole. A `simulate` config section
names one deterministic dataset (`data_tools.simulate`), so the tests that train on the
same small simulation share it (`simulated_file`), and the trained runs that several tests
inspect are made so too (conftest.py's fixtures). The tests only read what is shared; one
that changes a run works on a copy. Tests of simulating on first use (`ensure_data`) keep
their own data path.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import ml_collections

DATA_ENV = "FIELDNET_TESTS_DATA_DIR"


def data_dir() -> Path:
    """The session's shared folder (a temporary one outside a session)."""
    if DATA_ENV not in os.environ:
        os.environ[DATA_ENV] = tempfile.mkdtemp(prefix="fieldnet-tests-data-")
    return Path(os.environ[DATA_ENV])


def made_once(name: str, make: Callable[[Path], object]) -> Path:
    """The shared folder `name`, filled by `make(folder)` by the first process that asks.

    Args:
        name: The folder's name in `data_dir()`.
        make: Fills the (new, empty) folder; if it raises, the next caller tries again.

    Returns:
        The folder, complete.
    """
    folder = data_dir() / name
    with open(data_dir() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = data_dir() / f"{name}.made"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def simulated_file(sim: ml_collections.ConfigDict) -> Path:
    """The dataset that `simulate` section `sim` describes, simulated on the first call.

    Args:
        sim: A study config's `simulate` section (n_sims, grid, box, seed, dim, and
            redshift where set).

    Returns:
        The HDF5 file's path.
    """
    from data_tools.simulate import simulate_dataset

    settings = dict(n_sims=int(sim.n_sims), grid=int(sim.grid), box=float(sim.box),
                    seed=int(sim.seed), dim=int(sim.dim),
                    redshift=float(sim.get("redshift", 0.0)))
    name = "sim_" + "_".join(f"{k}{v}" for k, v in settings.items())
    folder = made_once(name, lambda folder: simulate_dataset(folder / "sim.h5", progress=False,
                                                             **settings))
    return folder / "sim.h5"


def with_shared_data(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Points config's data.path at the session's simulation of its `simulate` section.

    Args:
        config: A density_to_temp-style study config (changed in place).

    Returns:
        The same config.
    """
    config.data.path = str(simulated_file(config.simulate))
    return config
