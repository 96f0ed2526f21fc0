"""Checkpoints of a run: the latest N and the best by validation loss (orbax).

Two orbax `CheckpointManager`s under `<workdir>/checkpoints/`: `latest/` keeps the newest
`keep` steps for resuming, `best/` keeps the one step with the lowest validation loss for
evaluation and inference. Orbax writes each step under a temporary name and renames it
when complete, so a crash mid-save leaves the previous checkpoints intact.

A save that fails (a full disk, a lost mount), at once or later in orbax's background
threads, raises a one-line `FieldnetError` naming the folder and the reason, from `save`,
`check` or `wait`, whichever comes first; a checkpoint that cannot be read (corrupt files,
another model's structure) raises one from `restore`. The noise of such failures is held
back: orbax's logged tracebacks while the managers are open (one per background thread,
hundreds of lines; any that no raised error accounted for are logged at close, one line
each), and the "unraisable" errors of the failed operation's abandoned I/O that arrive
later, up to interpreter exit: asyncio's "Event loop is closed" from tensorstore callbacks
that outlive orbax's event loop, the errors of orbax's unawaited read coroutines, and
asyncio's records of orbax tasks, and of TensorStore read futures, whose exception nobody
retrieved. The filters that do this live in `fieldnet._compat`, with the versions they were
checked on.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from fieldnet import _compat
from fieldnet.errors import FieldnetError


class Checkpoints:
    """The two checkpoint managers of a run: `latest/` for resuming, `best/` for evaluation.

    Args:
        directory: The run's checkpoints folder (`rundir.checkpoints(workdir)`).
        keep: How many of the newest steps `latest/` keeps.
    """

    def __init__(self, directory: str | Path, keep: int = 3):
        directory = Path(directory).absolute()
        self.directory = directory
        self._held_back = _compat.HeldBackOrbaxErrors()  # before the managers read metadata
        self._failure: str | None = None  # the save failure already raised, if any
        self._closed = False
        logging.getLogger("absl").addFilter(self._held_back)
        _compat.hold_back_abandoned_io_errors()
        # Both managers save the same step; in a multi-process run their barriers need
        # distinct names.
        self.latest = ocp.CheckpointManager(
            directory / "latest", options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, multiprocessing_options=_barriers("latest")))
        self.best = ocp.CheckpointManager(
            directory / "best", options=ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda m: m["val_loss"], best_mode="min", create=True,
                multiprocessing_options=_barriers("best")))

    def latest_step(self, best: bool = False) -> int | None:
        """The newest saved step, or with `best` the step of the lowest validation loss.

        Args:
            best: Ask the `best/` manager instead of `latest/`.

        Returns:
            The step, or None when there is none.
        """
        return self.best.best_step() if best else self.latest.latest_step()

    def save(self, step: int, state, val_loss: float | None = None) -> None:
        """Saves asynchronously; with a validation loss, also offers the step as the best.

        Args:
            step: The completed step.
            state: The training state (a pytree of arrays).
            val_loss: The step's validation loss; None: not offered to `best/`.

        Raises:
            FieldnetError: If this save fails at once, or if an earlier one failed.
        """
        with self._failing_saves_raise(again=True):
            if step not in self.latest.all_steps():
                self.latest.save(step, args=ocp.args.StandardSave(state))
            if val_loss is not None and step not in self.best.all_steps():
                self.best.save(step, args=ocp.args.StandardSave(state),
                               metrics={"val_loss": float(val_loss)})

    def check(self) -> None:
        """Raises FieldnetError if a finished background save failed; does not wait for one
        still in progress."""
        with self._failing_saves_raise(again=True):
            for manager in (self.latest, self.best):
                if not manager.is_saving_in_progress():
                    manager.wait_until_finished()  # returns at once, raising its failure

    def restore(self, template, step: int | None = None, best: bool = False):
        """Restores into the structure, shapes, dtypes and shardings of `template`.

        Args:
            template: A pytree like the saved state.
            step: The step to restore; None: the newest (or the best, with `best`).
            best: Restore from `best/` instead of `latest/`.

        Returns:
            The restored state, structured as `template`.

        Raises:
            FieldnetError: If there is no checkpoint to restore, or it cannot be read into
                `template` (corrupt, or from a different model config).
        """
        manager = self.best if best else self.latest
        step = self.latest_step(best) if step is None else step
        if step is None:
            raise FieldnetError(f"{manager.directory}: no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # noqa: BLE001 - orbax wraps read errors in a bare Exception
            raise FieldnetError(f"{manager.directory}/{step}: cannot restore the checkpoint "
                                f"(corrupt, or from a different model config?): "
                                f"{_compat.first_line(_root_cause(err))}") from None

    def wait(self) -> None:
        """Waits for the background saves; raises FieldnetError if one failed."""
        with self._failing_saves_raise():
            self.latest.wait_until_finished()
            self.best.wait_until_finished()

    def close(self) -> None:
        """Waits for and closes both managers; raises FieldnetError if a save failed that
        was not raised before. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._failing_saves_raise():
                try:
                    self.latest.close()
                finally:
                    self.best.close()
        finally:
            logging.getLogger("absl").removeFilter(self._held_back)
            if self._failure is None:
                for message in self._held_back.messages:
                    logging.getLogger(__name__).warning("orbax: %s", message)

    @contextlib.contextmanager
    def _failing_saves_raise(self, again: bool = False):
        """Turns a failed save into a one-line FieldnetError. Orbax re-raises a failure on
        every later wait; unless `again`, one already raised is not raised a second time
        (so that shutting down after it does not replace the first error)."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - any failure to save stops the run
            if self._failure is not None:
                if again:
                    raise FieldnetError(self._failure) from None
                return
            latest = self.latest.latest_step()
            kept = (f"the last good checkpoint (step {latest}) is intact" if latest is not None
                    else "no checkpoint was saved before")
            reason = _compat.first_line(err)
            self._failure = (f"{self.directory}: saving a checkpoint failed ({reason}); "
                             f"{kept}; free space or fix the folder, then rerun to resume")
            raise FieldnetError(self._failure) from None


def _root_cause(err: BaseException) -> BaseException:
    """The innermost error of a chain: orbax's own messages about failed reads end in
    multi-line TensorStore specs, the tensorstore error they wrap names the problem."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)
