"""Checkpoints of a run: the latest N and the best by validation loss (orbax).

Two orbax `CheckpointManager`s under `<workdir>/checkpoints/`: `latest/` keeps the newest
`keep` steps for resuming, `best/` keeps the one step with the lowest validation loss for
evaluation and inference. Orbax writes each step under a temporary name and renames it
when complete, so a crash mid-save leaves the previous checkpoints intact.
"""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp

from fieldnet.errors import FieldnetError


class Checkpoints:
    def __init__(self, directory: str | Path, keep: int = 3):
        directory = Path(directory).absolute()
        self.directory = directory
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
        return self.best.best_step() if best else self.latest.latest_step()

    def save(self, step: int, state, val_loss: float | None = None) -> None:
        """Saves asynchronously; with a validation loss, also offers the step as the best."""
        if step not in self.latest.all_steps():
            self.latest.save(step, args=ocp.args.StandardSave(state))
        if val_loss is not None and step not in self.best.all_steps():
            self.best.save(step, args=ocp.args.StandardSave(state),
                           metrics={"val_loss": float(val_loss)})

    def restore(self, template, step: int | None = None, best: bool = False):
        """Restores into the structure, shapes, dtypes and shardings of `template`."""
        manager = self.best if best else self.latest
        step = self.latest_step(best) if step is None else step
        if step is None:
            raise FieldnetError(f"{manager.directory}: no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, OSError, FileNotFoundError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err)
            raise FieldnetError(f"{manager.directory}/{step}: cannot restore the checkpoint "
                                f"(corrupt, or from a different model config?): "
                                f"{first_line}") from None

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)
