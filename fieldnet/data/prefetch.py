"""A background thread that computes items ahead of the consumer, into a bounded queue.

Reading and cropping HDF5 overlaps with the accelerator's work on the previous batch.
Items are a pure function of their step, so the producer owns no state that a restart
would need: `Prefetcher(make, start=k)` yields exactly make(k), make(k+1), ...
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher(Generic[T]):
    """Iterates make(start), make(start + 1), ... (up to `stop`, exclusive, if given).

    With size 0 items are computed in the caller's thread. An exception in the producer is
    re-raised in the consumer. Use as a context manager, or call `close()`, to stop the
    thread; it is a daemon, so a forgotten prefetcher never blocks interpreter exit.

    Args:
        make: Pure function of the step number that returns that step's item.
        start: First step made.
        size: Items computed ahead (the queue's bound); 0: none, in the caller's thread.
        stop: Step at which the iteration ends (exclusive); None: endless.
    """

    def __init__(self, make: Callable[[int], T], start: int = 0, size: int = 2,
                 stop: int | None = None):
        self._make = make
        self._next = start
        self._stop = stop
        self._queue: queue.Queue = queue.Queue(maxsize=max(size, 1))
        self._closed = threading.Event()
        self._thread = None
        if size > 0:
            self._thread = threading.Thread(target=self._produce, args=(start,), daemon=True,
                                            name="fieldnet-prefetch")
            self._thread.start()

    def _produce(self, step: int) -> None:
        while not self._closed.is_set() and (self._stop is None or step < self._stop):
            try:
                item = self._make(step)
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = _Failure(err)
            if not self._put(item) or isinstance(item, _Failure):
                return
            step += 1
        self._put(StopIteration())

    def _put(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._closed.is_set():
            raise StopIteration
        if self._thread is None:
            if self._stop is not None and self._next >= self._stop:
                raise StopIteration
            self._next += 1
            return self._make(self._next - 1)
        item = self._queue.get()
        if isinstance(item, StopIteration):
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stops the producer and waits for it (it notices within a poll interval)."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
