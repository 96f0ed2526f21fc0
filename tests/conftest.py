"""One persistent JAX compilation cache for the whole test session.

Many tests compile the same small models and training steps again: in both pytest-xdist
workers and in the command-line runs and worker processes they start. The controlling
process makes one temporary cache folder before any test runs and removes it at the end;
every process inherits it through the environment, so a function compiled once is loaded
afterwards. A cache the caller has configured (`JAX_COMPILATION_CACHE_DIR`) is used as it
is and kept.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_made_here: str | None = None


def pytest_configure(config):
    global _made_here
    if hasattr(config, "workerinput") or _CACHE_ENV in os.environ:
        return  # an xdist worker inherits the controller's; or the caller chose one
    from notebooks.make_figures import kernel_environment  # the notebooks' cache settings

    _made_here = tempfile.mkdtemp(prefix="fieldnet-tests-jax-cache-")
    os.environ.update(kernel_environment(_made_here))
    if "jax" in sys.modules:  # imported before this hook: it has read its settings already
        import jax

        jax.config.update("jax_compilation_cache_dir", _made_here)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    if _made_here is not None:
        shutil.rmtree(_made_here, ignore_errors=True)
