"""The training batch stream: make(start), make(start + 1), ... computed ahead of the consumer.

    with batch_stream(make, start=k, stop=n, loader="grain", workers=4, prefetch=2) as it:
        for batch in it:
            ...

`make(step)` is a pure function of the step, so where a batch is computed never changes
what it is: every loader and worker count yields the same arrays, and a stream started at
step k (a resumed run) yields what an uninterrupted one yields from k on.

Loaders:

- "thread": `Prefetcher`, one background thread (`prefetch` batches ahead; 0 = none).
- "grain": a grain pipeline over the step numbers. With `workers=0` it runs in this process,
  one thread `prefetch` batches ahead (0: in the caller's thread); with `workers=N` each of
  N worker processes computes every N-th step, keeps up to max(prefetch, 1) batches ready
  and hands them over through shared memory (/dev/shm; a container needs room there for
  about N × (2 × prefetch + 2) batches), and the stream interleaves them back in step order,
  as plain arrays that are not copied. Worker processes are started fresh ("spawn": a
  script needs the `if __name__ == "__main__":` guard) and get `make` pickled: a
  `FieldDataset` pickles as the recipe it was made from, and each worker opens the HDF5
  file itself (h5py handles cannot cross processes). h5py serializes HDF5 calls within a
  process, so processes, not threads, are what scale reading and decompression.

An error raised while making a batch reaches the consumer, in step order, as the same
exception (a one-line `FieldnetError` stays one); it stops the stream. `close()` (or
leaving `with`) stops the thread or the workers; a stream that is never closed does not
block interpreter exit (daemon thread and processes, closed at exit).
"""

from __future__ import annotations

import gc
import sys
import traceback
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

from fieldnet import _compat
from fieldnet.data.prefetch import Prefetcher

T = TypeVar("T")
LOADERS = ("grain", "thread")
# A grain dataset has a length; an endless stream is one too long to end.
_ENDLESS = sys.maxsize
# Streams not yet closed; closed at exit, while grain's modules are still there to do it.
_OPEN: weakref.WeakSet = weakref.WeakSet()


class GrainBatches(Generic[T]):
    """make(start), ..., make(stop - 1) (endless if stop is None) through a grain pipeline.

    In this process (workers=0) or in `workers` worker processes. See the module
    docstring.

    Args:
        make: Pure function of the step number that returns that step's batch (pickled to
            the workers).
        start: First step made.
        stop: Step at which the stream ends (exclusive); None: endless.
        workers: Worker processes; 0 computes in this process.
        prefetch: Batches computed ahead (per worker, with workers).
    """

    def __init__(self, make: Callable[[int], T], start: int = 0, stop: int | None = None,
                 workers: int = 0, prefetch: int = 2):
        import grain  # imports JAX, which `fieldnet.data` alone does not

        steps = grain.MapDataset.range(start, _ENDLESS if stop is None else max(stop, start))
        if workers:
            _compat.make_grain_flags_readable()
            # The workers are the parallelism; each computes its next batch while its
            # finished ones wait in its buffer.
            pipeline = steps.map(make).to_iter_dataset(
                grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)).mp_prefetch(
                grain.MultiprocessingOptions(num_workers=workers,
                                             per_worker_buffer_size=max(prefetch, 1)))
        else:
            pipeline = steps.map(make).to_iter_dataset(
                grain.ReadOptions(num_threads=min(prefetch, 1), prefetch_buffer_size=prefetch))
        self._workers = workers
        self._iterator = iter(pipeline)
        _OPEN.add(self)
        # before grain's and multiprocessing's own exit handlers, registered by now
        _compat.run_before_grain_exit(_close_open_streams)

    def __iter__(self) -> GrainBatches[T]:
        return self

    def __next__(self) -> T:
        if self._iterator is None:
            raise StopIteration
        try:
            item = next(self._iterator)
        except BaseException as err:  # the end, or a failed batch: either way workers stop
            if self._workers:
                # The traceback passes through grain's frames, whose locals hold batches in
                # shared memory; kept (as a reported error is, until exit) they would
                # outlive the stream. The frames, and so the printed traceback, stay.
                traceback.clear_frames(err.__traceback__)
            self.close()
            raise
        return _plain_arrays(item)

    def close(self) -> None:
        """Stops the prefetch thread or the worker processes and waits for them."""
        if self._iterator is not None:
            # Dropped and collected, not kept closed: grain's iterators hold the last batch
            # of each worker (in shared memory) in reference cycles, and their finalizers
            # fail once interpreter exit has torn down the modules they use.
            self._iterator.close()
            self._iterator = None
            if self._workers:
                gc.collect()
                _compat.finish_grain_shared_memory_frees()
        _OPEN.discard(self)

    def __enter__(self) -> GrainBatches[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_open_streams() -> None:
    for stream in list(_OPEN):
        stream.close()


def batch_stream(make: Callable[[int], T], start: int = 0, stop: int | None = None,
                 loader: str = "grain", workers: int = 0, *,
                 prefetch: int = 2) -> Prefetcher[T] | GrainBatches[T]:
    """make(start), make(start + 1), ... (up to `stop`, exclusive, if given) from `loader`.

    Args:
        make: Pure function of the step number that returns that step's batch.
        start: First step made.
        stop: Step at which the stream ends (exclusive); None for an endless stream.
        loader: One of `LOADERS`: `"grain"` (a grain pipeline) or `"thread"` (one
            background thread).
        workers: Worker processes of the grain loader; 0 computes in this process.
        prefetch: Batches computed ahead of the consumer (0: none ahead).

    Returns:
        An iterator (and context manager) over the batches, in step order: a `Prefetcher`
        for `"thread"`, else a `GrainBatches`.

    Raises:
        ValueError: On settings `check_settings` refuses.
    """
    check_settings(loader, workers)
    if loader == "thread":
        return Prefetcher(make, start=start, size=prefetch, stop=stop)
    return GrainBatches(make, start, stop, workers=workers, prefetch=prefetch)


def check_settings(loader: str, workers: int, where: str = "") -> None:
    """Checks a loader name and worker count.

    Args:
        loader: The loader, one of `LOADERS`.
        workers: Worker processes, an integer ≥ 0 (only the grain loader takes any).
        where: Prefix of the settings' names in the message (say `"data."`).

    Raises:
        ValueError: Naming the settings, for an unknown loader, a worker count that is not
            an integer ≥ 0, or workers for the thread loader.
    """
    if loader not in LOADERS:
        raise ValueError(f"{where}loader must be one of {LOADERS}, got {loader!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"{where}workers must be an integer ≥ 0, got {workers!r}")
    if workers and loader != "grain":
        raise ValueError(f"{where}workers={workers} needs {where}loader='grain' (the thread "
                         "loader runs in this process)")


def _plain_arrays(item):
    """Arrays from workers arrive in shared memory as grain's ndarray subclass, which frees
    its segment when collected and fails to if that happens at interpreter exit (a batch
    still referenced then, as by the traceback of a reported error, leaks the segment with a
    warning). Each becomes a plain array on a mapping of its own of the same segment, without
    a copy (copying measured 80% of the receiving process's time per 3D batch); grain's array
    is dropped at once, which unlinks the segment's name, and the memory goes when the plain
    array does."""
    if isinstance(item, dict):
        return {k: _plain_arrays(v) for k, v in item.items()}
    if isinstance(item, np.ndarray) and getattr(item, "shm", None) is not None:
        return _compat.map_shared_segment(item)
    return item

