"""The workarounds in `fieldnet._compat`: each still does its job, and the premise it rests on
(another library's internal, or its reported misbehaviour) still holds at the installed
versions. A failure here after an upgrade names the workaround to revisit."""

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fieldnet import _compat


def _record(err, pathname=__file__, level=logging.ERROR):
    return logging.LogRecord("asyncio", level, pathname, 1,
                             "Future exception was never retrieved", None,
                             (type(err), err, err.__traceback__))


def test_grain_keeps_its_free_pool_where_the_workaround_looks():
    """`finish_grain_shared_memory_frees` waits on grain's private pool: the class attribute
    must still exist (None until grain first frees asynchronously)."""
    from grain._src.python.ipc import shared_memory_array

    assert hasattr(shared_memory_array.SharedMemoryArray, "_del_thread_pool")
    _compat.finish_grain_shared_memory_frees()  # no pool yet, or an idle one: returns


def test_grain_worker_flag_is_unreadable_until_made_readable():
    """google/grain#1355: the flag grain reads when starting workers raises where absl flags
    were never parsed; after the workaround it reads its default."""
    script = textwrap.dedent(f"""
        import grain  # defines the flag
        from absl import flags
        from fieldnet import _compat
        name = {_compat.GRAIN_WORKER_PROFILING_FLAG!r}
        try:
            getattr(flags.FLAGS, name)
            print("readable before")
        except flags.UnparsedFlagAccessError:
            print("unreadable before")
        _compat.make_grain_flags_readable()
        print("after", getattr(flags.FLAGS, name))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "unreadable before"
    assert out[1] == "after False"


def test_shared_segment_is_mapped_without_a_copy_and_outlives_the_owner():
    """`map_shared_segment` gives a plain array on the same memory (a write through grain's
    array shows in it), which stays readable after grain's array unlinks the segment."""
    from grain._src.python.ipc import shared_memory_array

    shared = shared_memory_array.SharedMemoryArray((3, 4), np.float32)
    shared[...] = np.arange(12, dtype=np.float32).reshape(3, 4)
    plain = _compat.map_shared_segment(shared)
    assert type(plain) is np.ndarray and plain.shape == (3, 4) and plain.dtype == np.float32
    shared[0, 0] = 42.0
    assert plain[0, 0] == 42.0
    shared.unlink_on_del()
    del shared
    np.testing.assert_array_equal(plain.ravel()[1:], np.arange(1, 12, dtype=np.float32))


def test_run_before_grain_exit_moves_the_handler_last_registered():
    """Exit handlers run last-registered first; the stream closer must run before handlers
    registered after it was first registered."""
    script = textwrap.dedent("""
        import atexit
        from fieldnet import _compat
        def closer(): print("closer")
        _compat.run_before_grain_exit(closer)
        atexit.register(lambda: print("grain's handler"))
        _compat.run_before_grain_exit(closer)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["closer", "grain's", "handler"]


def test_late_records_of_abandoned_tensorstore_reads_are_held_back():
    """asyncio's "Future exception was never retrieved" for a TensorStore read that a failed
    restore abandoned carries the native error, with no Python traceback: it is dropped; an
    error of the same kind from anywhere else is kept."""
    read = ValueError('FAILED_PRECONDITION: Error reading "params.w/0.0" in OCDBT database')
    assert not _compat.ABANDONED_IO_RECORDS.filter(_record(read))
    assert _compat.ABANDONED_IO_RECORDS.filter(_record(ValueError("a bad value")))
    try:
        raise ValueError("FAILED_PRECONDITION: raised in Python, not by TensorStore")
    except ValueError as err:
        assert _compat.ABANDONED_IO_RECORDS.filter(_record(err))
    assert not _compat.ABANDONED_IO_RECORDS.filter(_record(RuntimeError("Event loop is closed")))


def test_unraisable_hook_drops_only_abandoned_io_errors(monkeypatch):
    """Installed twice, the hook is installed once; it passes every other unraisable error to
    the hook that was there before."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    _compat.hold_back_abandoned_io_errors()
    _compat.hold_back_abandoned_io_errors()
    hook = sys.unraisablehook

    class Unraisable:
        def __init__(self, err):
            self.exc_value, self.exc_traceback = err, err.__traceback__

    hook(Unraisable(RuntimeError("Event loop is closed")))
    hook(Unraisable(ValueError("DATA_LOSS: corrupt chunk")))
    other = Unraisable(ValueError("a user's error"))
    hook(other)
    assert seen == [other]


@pytest.mark.parametrize("inside_orbax", [True, False])
def test_orbax_error_records_are_held_back_with_their_first_line(inside_orbax):
    import os

    import orbax.checkpoint as ocp

    held = _compat.HeldBackOrbaxErrors()
    where = os.path.join(os.path.dirname(ocp.__file__), "x.py") if inside_orbax else __file__
    record = logging.LogRecord("absl", logging.ERROR, where, 1,
                               "save failed [tensorstore_spec='{...}']\nTraceback ...", None,
                               None)
    assert held.filter(record) is not inside_orbax
    assert held.messages == (["save failed"] if inside_orbax else [])
