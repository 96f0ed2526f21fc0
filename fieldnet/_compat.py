"""Workarounds for other libraries' internals: the one module of fieldnet that touches a
private API or a process-wide hook.

Each workaround names the versions it was checked on (those of `constraints.txt`) and the
upstream report. `tests/test_compat.py` checks the premise of each at the installed versions,
so an upgrade that removes an internal or fixes the report fails a test there that names the
workaround to revisit, instead of breaking a run.

- `make_grain_flags_readable`: grain reads an absl flag when it starts worker processes,
  which fails where absl flags were never parsed. grain 0.2.18; google/grain#1355.
- `finish_grain_shared_memory_frees`: grain frees dropped batches' shared memory on a pool
  that interpreter exit terminates, leaking segments. grain 0.2.18; google/grain#398.
- `run_before_grain_exit`: fieldnet's streams must close before grain's and
  multiprocessing's exit handlers. grain 0.2.18; the order of exit handlers.
- `map_shared_segment`: attaching to a segment registers it with the resource tracker,
  which unlinks it at exit. CPython 3.11 and 3.12 (3.13 has a public `track=False`);
  python/cpython#82300.
- `HeldBackOrbaxErrors`, `hold_back_abandoned_io_errors`: a failed orbax save or restore
  logs a traceback per background thread, and its abandoned I/O echoes as late, unraisable
  errors until exit. orbax-checkpoint 0.12.8, tensorstore 0.1.86; not reported upstream.

The grain workarounds serve only the opt-in worker processes (`data.workers > 0`); the default
loader (`data.workers = 0`) runs in the caller's process.
"""

from __future__ import annotations

import atexit
import logging
import mmap
import os
import re
import sys
from collections.abc import Callable

import numpy as np

# Longest wait for grain to free the shared memory of dropped batches (it takes ~ms).
GRAIN_FREE_TIMEOUT_S = 5.0
GRAIN_WORKER_PROFILING_FLAG = "grain_enable_multiprocess_worker_profiling"


# --------------------------------------------------------------------------- grain

def make_grain_flags_readable() -> None:
    """Lets grain read its worker-profiling absl flag in a program that never parsed absl
    flags (a library caller, a script); the flag's default is then what it should read.

    grain 0.2.18 reads it when it starts worker processes (google/grain#1355).
    """
    from absl import flags

    if not flags.FLAGS.is_parsed() and GRAIN_WORKER_PROFILING_FLAG in flags.FLAGS:
        flags.FLAGS[GRAIN_WORKER_PROFILING_FLAG].present = True


def grain_free_pool():
    """grain's one-thread pool that frees the shared memory of dropped batches, or None
    where this grain has none (the pool has no public handle)."""
    from grain._src.python.ipc import shared_memory_array

    return getattr(shared_memory_array.SharedMemoryArray, "_del_thread_pool", None)


def finish_grain_shared_memory_frees() -> None:
    """Waits for grain's queued frees of shared memory.

    grain frees the shared memory of the batches it drops on close on a one-thread pool,
    which multiprocessing terminates at interpreter exit, dropping the frees still queued:
    those segments then outlive the process until Python's resource tracker removes them,
    with a warning on stderr (google/grain#398). A no-op queued behind them returns once
    they are done.
    """
    pool = grain_free_pool()
    if pool is not None:
        pool.apply_async(int).wait(GRAIN_FREE_TIMEOUT_S)


def run_before_grain_exit(handler: Callable[[], None]) -> None:
    """Registers `handler` to run at exit before the exit handlers registered so far
    (grain's and multiprocessing's, which stop the workers and the pool that frees shared
    memory): exit handlers run last-registered first, so it moves to the end of the list.
    Call it again after anything that may register new ones (starting a grain pipeline)."""
    atexit.unregister(handler)
    atexit.register(handler)


def map_shared_segment(shared: np.ndarray) -> np.ndarray:
    """A plain array on a mapping of its own of the shared-memory segment behind `shared`
    (an array with a `.shm` segment, as grain's workers hand over), without a copy.

    Attaching through `multiprocessing.shared_memory.SharedMemory(name)` would register the
    segment with this process's resource tracker, which unlinks it at exit although grain
    owns it (python/cpython#82300). Python 3.13 adds `SharedMemory(name, track=False)`,
    the public way once 3.11 and 3.12 are no longer supported.
    """
    import _posixshmem  # how multiprocessing.shared_memory opens segments on POSIX

    fd = _posixshmem.shm_open("/" + shared.shm.name, os.O_RDWR, mode=0o600)
    try:
        mapping = mmap.mmap(fd, shared.nbytes)
    finally:
        os.close(fd)
    return np.frombuffer(mapping, shared.dtype, shared.size).reshape(shared.shape)


# --------------------------------------------------------------------------- orbax

def _orbax_sources() -> str:
    import orbax.checkpoint as ocp

    return os.path.dirname(ocp.__file__)


def first_line(err: BaseException | str) -> str:
    """The first line of an error's message, without tensorstore's JSON specs (or the
    error's type where it has no message)."""
    text = str(err).split(" [tensorstore_spec")[0].strip()
    if text:
        return text.splitlines()[0]
    return type(err).__name__ if isinstance(err, BaseException) else ""


class HeldBackOrbaxErrors(logging.Filter):
    """Drops orbax's error records from absl's logger, keeping their first lines in
    `messages`: a failed background save logs a traceback per thread (hundreds of lines)
    besides the error it raises."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []
        self._sources = _orbax_sources()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.pathname.startswith(self._sources):
            self.messages.append(first_line(record.getMessage()))
            return False
        return True


# how TensorStore's errors begin: an absl status code (they come from native code, with no
# Python traceback, when a read future that orbax abandoned fails)
_TENSORSTORE_STATUS = re.compile(
    r"^(CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|"
    r"PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|"
    r"UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED): ")


def is_abandoned_io_error(err: BaseException | None, traceback) -> bool:
    """Whether an error is the late echo of a failed orbax save or restore: asyncio's "Event
    loop is closed" from tensorstore callbacks that outlive orbax's event loop, a
    TensorStore error with no Python traceback, or an error raised in orbax's code."""
    if isinstance(err, RuntimeError) and str(err) == "Event loop is closed":
        return True
    if traceback is None and err is not None and _TENSORSTORE_STATUS.match(str(err)):
        return True
    sources = _orbax_sources()
    frame = traceback
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.startswith(sources):
            return True
        frame = frame.tb_next
    return False


class AbandonedIoRecords(logging.Filter):
    """Drops asyncio's "Task/Future exception was never retrieved" records of orbax's read
    and write tasks that a failure left behind (logged when the task is collected)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_abandoned_io_error(*record.exc_info[1:]))


ABANDONED_IO_RECORDS = AbandonedIoRecords()
_previous_unraisablehook = sys.unraisablehook


def _drop_abandoned_io_errors(unraisable) -> None:
    if not is_abandoned_io_error(unraisable.exc_value, unraisable.exc_traceback):
        _previous_unraisablehook(unraisable)


def hold_back_abandoned_io_errors() -> None:
    """Installs, for the rest of the process, the filters of the late echoes of a failed
    orbax operation: they come at any time after it, until exit, as unraisable errors or
    as asyncio's records of tasks whose exception nobody retrieved. Other unraisable errors
    and records pass to the hook and handlers that were there before. Idempotent."""
    global _previous_unraisablehook
    if sys.unraisablehook is not _drop_abandoned_io_errors:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _drop_abandoned_io_errors
    logging.getLogger("asyncio").addFilter(ABANDONED_IO_RECORDS)  # adding it again is a no-op
