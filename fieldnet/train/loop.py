"""The training loop shared by every experiment.

The NNX model is split once into a static graph and its state; the step is one `jax.jit`
function that merges them inside, with the state buffers donated. Data parallelism is a
1-D device mesh: the batch is sharded along "data", the state replicated, and the
compiler inserts the gradient all-reduce. Across hosts, each process feeds its own
slice of every global batch (`jax.make_array_from_process_local_data`).

The host never waits for the device between log points: the step adds its loss to a
device-side window (sum, count, first non-finite step), which is read back only every
`log_every` steps, at evaluations, and before every checkpoint save, so the accelerator
runs ahead of the Python loop.

Faults: checkpoints every `checkpoint_every` steps (asynchronous, atomic); SIGTERM and
SIGINT save and stop; a NaN/Inf loss stops before anything is saved (the window is checked
before each save), so the last good checkpoint stays intact; a rerun resumes from the
latest checkpoint, and since batches are a pure function of (seed, step) it ends where an
uninterrupted run would. So is the noise of a loss that draws some (flow matching): the step
gives the loss batch["key"], a key folded from (seed, step) inside the jitted step (with
threefry's partitionable draws, the same numbers on any number of devices).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from fieldnet import rundir
from fieldnet.errors import FieldnetError, Stopped
from fieldnet.files import write_text
from fieldnet.train.checkpoint import Checkpoints
from fieldnet.train.losses import LossFn, get_loss
from fieldnet.train.pretrained import check_source, model_differences

Batch = dict[str, np.ndarray]


class TrainingDiverged(FieldnetError):
    """The loss became NaN or Inf."""


class TrainingInterrupted(Stopped):
    """SIGTERM or SIGINT arrived; a checkpoint was saved.

    Its `exit_code` is 128 + the signal number.

    Args:
        signum: The signal received.
        step: The last step done (and saved).
    """

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; "
                         "checkpoint saved, rerun the same command to resume")
        self.signum, self.step, self.exit_code = signum, step, 128 + signum


def default_config() -> ml_collections.ConfigDict:
    """All training keys with their defaults; experiment configs embed this as `config.train`."""
    c = ml_collections.ConfigDict()
    c.num_steps = 1000
    c.batch_size = 16
    c.learning_rate = 2e-3
    c.loss = "mse"                  # a registered loss (fieldnet.train.losses)
    c.warmup_steps = 50
    c.final_lr_fraction = 0.02      # cosine decay ends at this fraction of the peak
    c.weight_decay = 1e-4
    c.grad_clip = 1.0               # global gradient norm
    c.log_every = 20
    c.eval_every = 100
    c.val_batches = 4
    c.checkpoint_every = 100
    c.keep_checkpoints = 3
    c.progress = True
    c.init_from = ""                # a workdir whose best parameters start this run ("": none)
    c.init_normalizer = "data"      # with init_from: "data" (this run's) or "pretrained"
    return c


def check_config(c: ml_collections.ConfigDict) -> None:
    """Fails at start, in one line, on values that would fail (or silently misbehave) later.

    Args:
        c: The run's `config.train` (keys as `default_config()`).

    Raises:
        FieldnetError: Naming the key, on a step count, batch size, learning rate or cadence
            that is not positive, warmup steps outside [0, num_steps), a final learning-rate
            fraction outside [0, 1], a negative weight decay or a non-positive clip, an
            unknown loss, an `init_from` that is not a trained run, or a batch size not
            divisible by the number of devices.
    """
    positive = ("num_steps", "batch_size", "learning_rate", "log_every", "eval_every",
                "val_batches", "checkpoint_every", "keep_checkpoints")
    for key in positive:
        if not c[key] > 0:
            raise FieldnetError(f"train.{key} must be positive, got {c[key]!r}")
    if c.warmup_steps < 0 or c.warmup_steps >= c.num_steps:
        raise FieldnetError(f"train.warmup_steps must be in [0, num_steps={c.num_steps}), got "
                            f"{c.warmup_steps}")
    if not 0 <= c.final_lr_fraction <= 1 or c.weight_decay < 0 or not c.grad_clip > 0:
        raise FieldnetError("train.final_lr_fraction must be in [0, 1], weight_decay ≥ 0, "
                            "grad_clip > 0")
    get_loss(c.loss)
    if c.get("init_from"):
        check_source(c.init_from, c.get("init_normalizer", "data"))
    global_devices = jax.device_count()
    if c.batch_size % global_devices:
        raise FieldnetError(f"train.batch_size={c.batch_size} must be divisible by the "
                            f"{global_devices} devices it is sharded over")


def learning_rate_schedule(c: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warmup to the peak, then cosine decay to final_lr_fraction of it.

    Args:
        c: The run's `config.train` (`learning_rate`, `warmup_steps`, `num_steps`,
            `final_lr_fraction`).

    Returns:
        The schedule, step -> learning rate.
    """
    return optax.warmup_cosine_decay_schedule(
        0.0, c.learning_rate, c.warmup_steps, c.num_steps, c.learning_rate * c.final_lr_fraction)


def optimizer(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW on the schedule, after global-norm gradient clipping.

    Args:
        c: The run's `config.train` (the schedule's keys, `grad_clip`, `weight_decay`).

    Returns:
        The optax optimizer.
    """
    return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                       optax.adamw(learning_rate_schedule(c), weight_decay=c.weight_decay))


def data_mesh() -> tuple[NamedSharding, NamedSharding]:
    """(batch sharding over every device of every process, replicated sharding)."""
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    return NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())


def global_batch(local: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's slice of a batch as global arrays sharded by `sharding`.

    Args:
        local: This process's slice of the batch, {name: array `(b_local, ...)`}.
        sharding: The batch sharding over every device of every process.

    Returns:
        {name: global array `(b_global, ...)`}.
    """
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}


def empty_window() -> dict[str, jax.Array]:
    """The device-side record of the training losses since the last log: their sum, the
    number of steps, and the first non-finite loss (its index in the window, -1 if none)."""
    return {"loss_sum": jnp.zeros((), jnp.float32), "steps": jnp.zeros((), jnp.int32),
            "first_bad": jnp.full((), -1, jnp.int32), "bad_loss": jnp.zeros((), jnp.float32)}


def _add_to_window(window: dict, loss: jax.Array) -> dict:
    loss = loss.astype(jnp.float32)
    first = ~jnp.isfinite(loss) & (window["first_bad"] < 0)
    return {"loss_sum": window["loss_sum"] + loss, "steps": window["steps"] + 1,
            "first_bad": jnp.where(first, window["steps"], window["first_bad"]),
            "bad_loss": jnp.where(first, loss, window["bad_loss"])}


@dataclass
class StepFunctions:
    """The jitted training and validation steps of `step_functions`."""

    train: Callable      # (state, batch, window, step) -> (state, window, loss, grad_norm)
    evaluate: Callable   # (state, batch, index) -> loss


# The two streams of loss noise: training steps and validation batches.
_TRAIN_STREAM, _VAL_STREAM = 0, 1


def loss_key(seed: int, stream: int, index) -> jax.Array:
    """The PRNG key batch["key"] of a training step or of a validation batch.

    A pure function of the three arguments.

    Args:
        seed: The run's seed.
        stream: 0 for training steps, 1 for validation batches.
        index: The training step (counted from 0), or the validation batch's index.

    Returns:
        A JAX PRNG key.
    """
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), stream), index)


def step_functions(graphdef, eval_graphdef, tx, loss_fn: LossFn,
                   replicated: NamedSharding, seed: int = 0) -> StepFunctions:
    """The jitted training and validation steps of a split model.

    The training step does the forward, backward, optimizer update, and the loss window;
    losses that draw noise get batch["key"] from `loss_key(seed, ...)`.

    Args:
        graphdef: The model's graph in train mode (`split_model`).
        eval_graphdef: Its graph in eval mode.
        tx: The optimizer.
        loss_fn: The loss, `(model, batch) -> scalar`.
        replicated: The sharding of the state and the outputs (replicated over devices).
        seed: Seed of the loss noise keys.

    Returns:
        The jitted steps.
    """

    def train(state, batch, window, step):
        batch = {**batch, "key": loss_key(seed, _TRAIN_STREAM, step)}

        def loss(params):
            # Fresh copies of the non-parameter state: merge would otherwise reuse the
            # Variables made at the jit level, and a layer that updates its own state
            # under the gradient trace (dropout advancing its RNG count) would be refused.
            model = nnx.merge(graphdef, params, jax.tree.map(jnp.asarray, state["rest"]))
            value = loss_fn(model, batch)
            return value, nnx.split(model, nnx.Param, ...)[2]

        (value, rest), grads = jax.value_and_grad(loss, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {"params": params, "rest": rest, "opt_state": opt_state}
        return new_state, _add_to_window(window, value), value, optax.tree.norm(grads)

    def evaluate(state, batch, index):
        batch = {**batch, "key": loss_key(seed, _VAL_STREAM, index)}
        return loss_fn(nnx.merge(eval_graphdef, state["params"], state["rest"]), batch)

    return StepFunctions(
        train=jax.jit(train, donate_argnums=0, out_shardings=replicated),
        evaluate=jax.jit(evaluate, out_shardings=replicated))


def split_model(model: nnx.Module):
    """(train graphdef, eval graphdef, initial state) of an NNX model.

    The model is left in train mode.

    Args:
        model: The NNX model.

    Returns:
        The train and eval graphdefs and the state {"params", "rest"}.
    """
    model.eval()
    eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, eval_graphdef, {"params": params, "rest": rest}

@dataclass
class TrainingSetup:
    """What `fit` trains with, made by `setup_training`: the jitted steps, the initial
    state (parameters, the other model variables and the optimizer state, replicated over
    the devices), the learning-rate schedule, and the shardings of batches and state."""

    steps: StepFunctions
    state: dict
    schedule: optax.Schedule
    batch_sharding: NamedSharding
    replicated: NamedSharding

    def global_batch(self, local: Batch) -> dict[str, jax.Array]:
        """This process's slice of a batch as global arrays, sharded along the batch.

        Args:
            local: This process's slice of the batch, {name: array `(b_local, ...)`}.

        Returns:
            {name: global array `(b_global, ...)`}.
        """
        return global_batch(local, self.batch_sharding)

    def empty_window(self) -> dict[str, jax.Array]:
        """An empty loss window (`empty_window`) on the devices, for the training step."""
        return jax.device_put(empty_window(), self.replicated)


def setup_training(model: nnx.Module, config: ml_collections.ConfigDict,
                   loss_fn: LossFn | None = None, seed: int = 0) -> TrainingSetup:
    """Splits `model` once and builds what trains it under the train config `config`.

    AdamW on the schedule (`optimizer`), the step functions for `loss_fn` (else the
    registered loss `config.loss` names; its noise keys come from `seed`), on a mesh of
    every device (`data_mesh`). The model itself is left as it is.

    Args:
        model: The NNX model.
        config: The run's `config.train`.
        loss_fn: The loss, `(model, batch) -> scalar`; None: the one `config.loss` names.
        seed: Seed of the loss noise keys.

    Returns:
        The steps, the replicated initial state, the schedule and the shardings.

    Raises:
        FieldnetError: If `config.loss` names no registered loss (with `loss_fn` None).
    """
    loss_fn = loss_fn or get_loss(config.loss)
    batch_sharding, replicated = data_mesh()
    graphdef, eval_graphdef, state = split_model(model)
    tx = optimizer(config)
    state["opt_state"] = tx.init(state["params"])
    steps = step_functions(graphdef, eval_graphdef, tx, loss_fn, replicated, seed)
    return TrainingSetup(steps, jax.device_put(state, replicated), learning_rate_schedule(config),
                         batch_sharding, replicated)



@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """Collects SIGTERM/SIGINT into a list instead of dying mid-step."""
    received: list[int] = []
    handler = lambda signum, frame: received.append(signum)  # noqa: E731
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class MetricsLog:
    """metrics.jsonl (one JSON object per logged step) plus TensorBoard events.

    A run resumed from step `start` continues the log as if uninterrupted: records of later
    steps, written before a kill, are dropped (metrics.jsonl rewritten atomically, along
    with any half-written last line; TensorBoard's purge_step hides those events).

    Args:
        workdir: The run folder.
        enabled: Write anything at all (False on every process but the first).
        start: The step the run resumes from (0: a fresh start).
    """

    def __init__(self, workdir: Path, enabled: bool = True, start: int = 0):
        self.enabled = enabled
        if enabled:
            from tensorboardX import SummaryWriter

            self.path = rundir.metrics(workdir)
            self._drop_records_after(start)
            self.tb = SummaryWriter(str(rundir.tensorboard(workdir)), purge_step=start + 1)

    def _drop_records_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [r for r in rundir.read_metrics(self.path)
                if isinstance(r.get("step"), int) and r["step"] <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, step: int, **values) -> None:
        """Appends the record of step `step` to metrics.jsonl and TensorBoard.

        Args:
            step: The completed step.
            **values: The scalars to record, by name (e.g. `train_loss`, `val_loss`).
        """
        if not self.enabled:
            return
        record = {"step": step, **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in values.items():
            self.tb.add_scalar(k, float(v), step)
        self.tb.flush()

    def close(self) -> None:
        """Closes the TensorBoard writer (nothing when disabled)."""
        if self.enabled:
            self.tb.close()


@dataclass
class TrainResult:
    """What `fit` returns: the last step, the best step by validation loss (None without
    validation), the final training loss and the best validation loss."""

    final_step: int
    best_step: int | None
    final_train_loss: float
    best_val_loss: float


@dataclass(frozen=True)
class Cadence:
    """Which completed steps (`done`, counted from 1) the host acts on: it validates every
    `eval_every` steps and at the last, logs those and every `log_every`, and saves every
    `checkpoint_every` steps and at the last."""

    log_every: int
    eval_every: int
    checkpoint_every: int
    num_steps: int

    @classmethod
    def of(cls, config: ml_collections.ConfigDict) -> Cadence:
        """The cadence of a train config.

        Args:
            config: The run's `config.train` (`log_every`, `eval_every`, `checkpoint_every`,
                `num_steps`).

        Returns:
            The cadence.
        """
        return cls(config.log_every, config.eval_every, config.checkpoint_every,
                   config.num_steps)

    def evaluate(self, done: int) -> bool:
        """Whether to validate after step `done`: every `eval_every` steps and at the last.

        Args:
            done: Completed steps, counted from 1.

        Returns:
            True to validate.
        """
        return done % self.eval_every == 0 or done == self.num_steps

    def log(self, done: int) -> bool:
        """Whether to log after step `done`: when validating, and every `log_every` steps.

        Args:
            done: Completed steps, counted from 1.

        Returns:
            True to log.
        """
        return self.evaluate(done) or done % self.log_every == 0

    def save(self, done: int) -> bool:
        """Whether to save after step `done`: every `checkpoint_every` steps and at the last.

        Args:
            done: Completed steps, counted from 1.

        Returns:
            True to save a checkpoint.
        """
        return done % self.checkpoint_every == 0 or done == self.num_steps


class LossWindow:
    """The training losses since the last log point.

    Summed on the device by the step (`empty_window`) and read back, and checked for
    NaN/Inf, only when the host needs them.

    Args:
        setup: The training setup (its empty window on the devices).
        first: The first step (counted from 1) the window holds.

    Attributes:
        device: the window the next step adds its loss to.
        first: the first step (counted from 1) the window holds.
        started: `time.perf_counter()` when the window was emptied, for the sample rate.
    """

    def __init__(self, setup: TrainingSetup, first: int):
        self._empty = setup.empty_window()
        self.restart(first)

    def restart(self, first: int) -> None:
        """Empties the window; its next loss is that of step `first`.

        Args:
            first: The step (counted from 1) of the next loss.
        """
        self.device, self.first, self.started = self._empty, first, time.perf_counter()

    def read(self, last: int, checkpoints: Checkpoints) -> dict:
        """The window of steps first..last read back to the host.

        Args:
            last: The last step (counted from 1) the window holds.
            checkpoints: The run's checkpoints, named in the message of a divergence.

        Returns:
            The window: `loss_sum`, `steps`, `first_bad` and `bad_loss`, as host values.

        Raises:
            TrainingDiverged: one of those losses was not finite; it is called before
                anything is saved, so the last good checkpoint stays intact.
        """
        seen = jax.device_get(self.device)
        if seen["first_bad"] >= 0:
            raise TrainingDiverged(
                f"loss is {float(seen['bad_loss'])} at step {self.first + int(seen['first_bad'])}"
                f" (the first non-finite of steps {self.first}-{last}, read back together); "
                f"stopped without saving, the last good checkpoint (step "
                f"{checkpoints.latest_step()}) is intact in {checkpoints.directory}; lower "
                f"train.learning_rate or check the data")
        return seen


class TrainLogger:
    """Where `fit` reports: metrics.jsonl and TensorBoard, and the progress bar.

    Both by process 0 only (`MetricsLog`; the bar with train.progress).

    Args:
        workdir: The run folder.
        config: The run's `config.train` (`batch_size`, `num_steps`, `progress`).
        schedule: The learning-rate schedule, for the records.
        start: The step the run resumes from.
    """

    def __init__(self, workdir: Path, config: ml_collections.ConfigDict,
                 schedule: optax.Schedule, start: int):
        is_main = jax.process_index() == 0
        self.batch_size, self.schedule = config.batch_size, schedule
        self.metrics = MetricsLog(workdir, enabled=is_main, start=start)
        self.bar = tqdm(total=config.num_steps, initial=start, desc="train", unit="step",
                        disable=not (config.progress and is_main), dynamic_ncols=True)

    def write(self, done: int, window: LossWindow, seen: dict, grad_norm: jax.Array,
              val_loss: float | None) -> None:
        """One record of step `done`.

        The mean training loss of the window read back as `seen`, the last gradient norm, the
        learning rate, samples/s, and the validation loss when there is one.

        Args:
            done: The completed step, counted from 1.
            window: The loss window (when it started, for samples/s).
            seen: The window read back (`LossWindow.read`).
            grad_norm: The global gradient norm of the last step.
            val_loss: The validation loss, or None when not validated at this step.
        """
        n = int(seen["steps"])
        train_loss = float(seen["loss_sum"]) / n
        rate = n * self.batch_size / max(time.perf_counter() - window.started, 1e-9)
        extra = {} if val_loss is None else {"val_loss": val_loss}
        self.metrics.write(done, train_loss=train_loss, grad_norm=grad_norm,
                           learning_rate=self.schedule(done), samples_per_s=rate, **extra)
        self.bar.set_postfix(loss=f"{train_loss:.4f}", samples_s=f"{rate:.1f}",
                             **({} if val_loss is None else {"val": f"{val_loss:.4f}"}))


def resume(checkpoints: Checkpoints, state: dict) -> tuple[int, dict]:
    """(step, state) of the latest checkpoint, restored into the structure of `state`.

    The checkpoints are closed if restoring fails.

    Args:
        checkpoints: The run's checkpoints.
        state: The initial state, whose structure the checkpoint is restored into.

    Returns:
        (latest step, its state), or (0, `state`) when there is no checkpoint.
    """
    start = checkpoints.latest_step() or 0
    if not start:
        return 0, state
    try:
        return start, checkpoints.restore(state, start)
    except BaseException:
        checkpoints.close()
        raise


def validate(setup: TrainingSetup, state: dict, val: list[dict[str, jax.Array]]) -> float:
    """The mean validation loss of `state` over the (global) batches `val`, read back once.

    Args:
        setup: The training setup (its evaluation step).
        state: The training state.
        val: The validation batches, as global arrays.

    Returns:
        The mean of the batches' losses (NaN with no batches).
    """
    losses = jax.device_get([setup.steps.evaluate(state, b, i) for i, b in enumerate(val)])
    return float(np.mean([float(v) for v in losses]))


def fit(model: nnx.Module, train_batches: Callable[[int], Iterable[Batch]],
        val_batches: list[Batch], config: ml_collections.ConfigDict, workdir: str | Path,
        loss_fn: LossFn | None = None, seed: int = 0) -> TrainResult:
    """Trains `model` in place (it ends with the final parameters) and checkpoints to workdir.

    `train_batches(start_step)` yields this process's slice of the batches from that step
    on. Resumes from `workdir/checkpoints` when it holds a checkpoint. The loss is
    `loss_fn` if given, else the registered loss that `config.loss` names
    (`fieldnet.train.losses`); a loss that draws noise takes it from batch["key"],
    `loss_key(seed, ...)` of the step or validation batch.

    Args:
        model: The NNX model, trained in place.
        train_batches: Maps the first step to train to an iterable of this process's
            slices of the batches from that step on.
        val_batches: This process's slices of the validation batches.
        config: The run's `config.train`.
        workdir: The run folder (checkpoints, metrics.jsonl, TensorBoard events).
        loss_fn: The loss, `(model, batch) -> scalar`; None: the one `config.loss` names.
        seed: Seed of the loss noise keys.

    Returns:
        The last step, the best step, the final training loss and the best validation
        loss.

    Raises:
        FieldnetError: On a bad `config` (`check_config`).
        TrainingDiverged: If a loss becomes NaN or Inf (nothing is saved after it).
        TrainingInterrupted: On SIGTERM or SIGINT, after saving a checkpoint.
    """
    check_config(config)
    workdir = Path(workdir)
    setup = setup_training(model, config, loss_fn, seed)
    checkpoints = Checkpoints(rundir.checkpoints(workdir), config.keep_checkpoints)
    start, state = resume(checkpoints, setup.state)
    log = TrainLogger(workdir, config, setup.schedule, start)
    batches = None
    try:
        batches = train_batches(start)
        state, result = train_steps(setup, state, batches, val_batches, config, checkpoints,
                                    log, start)
    finally:
        best_step = finish(checkpoints, log, batches)
    # fresh device arrays: the host copies device_get returns are read-only, and eager
    # code mutates the model's state in place (a dropout stream's count)
    nnx.update(model, *jax.tree.map(jnp.asarray, jax.device_get([state["params"],
                                                                 state["rest"]])))
    return dataclasses.replace(result, best_step=best_step)


def train_steps(setup: TrainingSetup, state: dict, batches: Iterable[Batch],
                val_batches: list[Batch], config: ml_collections.ConfigDict,
                checkpoints: Checkpoints, log: TrainLogger,
                start: int) -> tuple[dict, TrainResult]:
    """The loop of `fit`: steps start+1.. until config.num_steps or the end of `batches`.

    The host reads the device back only on the steps its `Cadence` acts on (and before a
    save on a signal): it checks the losses since the last read-back, validates, logs and
    saves there.

    Args:
        setup: The training setup.
        state: The training state to start from.
        batches: This process's slices of the training batches from step `start` on.
        val_batches: This process's slices of the validation batches.
        config: The run's `config.train`.
        checkpoints: The run's checkpoints.
        log: Where the records go.
        start: Steps already done.

    Returns:
        The final state and the result, without its best step.

    Raises:
        TrainingDiverged: If a loss becomes NaN or Inf.
        TrainingInterrupted: On SIGTERM or SIGINT, after saving a checkpoint.
    """
    cadence = Cadence.of(config)
    window = LossWindow(setup, start + 1)
    val = [setup.global_batch(b) for b in val_batches]
    best_val, loss, step = math.inf, None, start
    with stop_signals() as received:
        for step, local in zip(range(start, config.num_steps), batches, strict=False):
            state, window.device, loss, grad_norm = setup.steps.train(
                state, setup.global_batch(local), window.device, step)
            done = step + 1
            log.bar.update(1)
            stop = bool(received)  # once per step: a signal arriving later waits a step
            save = cadence.save(done) or stop
            if not (cadence.log(done) or save):
                continue  # nothing on the host needs this step's results yet
            seen = window.read(done, checkpoints)
            checkpoints.check()  # a background save that failed stops the run here
            val_loss = None
            if cadence.evaluate(done):
                val_loss = validate(setup, state, val)
                best_val = min(best_val, val_loss)
            if cadence.log(done):
                log.write(done, window, seen, grad_norm, val_loss)
                window.restart(done + 1)
            if save:
                checkpoints.save(done, state, val_loss)
            if stop:
                raise TrainingInterrupted(received[0], done)
        final = step + 1 if config.num_steps > start else start
        if loss is not None:  # the batches may end between read-backs
            window.read(final, checkpoints)
    last_loss = math.nan if loss is None else float(loss)
    return state, TrainResult(final, None, last_loss, best_val)


def finish(checkpoints: Checkpoints, log: TrainLogger, batches: Iterable | None) -> int | None:
    """Closes a run, whether it ended or failed.

    The progress bar, the batch stream (when it has a `close`), the checkpoints once every
    save is complete, and the metrics log.

    Args:
        checkpoints: The run's checkpoints.
        log: The run's logger.
        batches: The training batch stream, or None if it was never made.

    Returns:
        The best checkpoint's step (None without one).
    """
    log.bar.close()
    close = getattr(batches, "close", None)
    if close is not None:
        close()
    try:
        checkpoints.wait()
        return checkpoints.latest_step(best=True)  # every save of this run is complete
    finally:
        checkpoints.close()
        log.metrics.close()


def restore_params(model: nnx.Module, workdir: str | Path, config: ml_collections.ConfigDict,
                   best: bool = True) -> int:
    """Loads the best (else the latest) checkpoint of a run into `model`; returns its step.

    `config` is the run's `train` config, which fixes the optimizer state's structure.

    Args:
        model: The NNX model, built as the run's.
        workdir: The run folder.
        config: The run's `config.train`.
        best: Load the best checkpoint when there is one; False: the latest.

    Returns:
        The step of the checkpoint loaded.

    Raises:
        FieldnetError: If the run has no checkpoint.
    """
    _, _, state = split_model(model)
    state["opt_state"] = optimizer(config).init(state["params"])
    ckpts = Checkpoints(rundir.checkpoints(workdir))
    try:
        use_best = best and ckpts.latest_step(best=True) is not None
        if ckpts.latest_step(best=use_best) is None:
            raise FieldnetError(f"{ckpts.directory}: no checkpoint found (has the run trained?)")
        step = ckpts.latest_step(best=use_best)
        restored = ckpts.restore(state, step, best=use_best)
    finally:
        ckpts.close()
    nnx.update(model, restored["params"], restored["rest"])
    return step


def load_pretrained(model: nnx.Module, source: str | Path,
                    model_config: ml_collections.ConfigDict, model_io: dict) -> int:
    """Loads the best parameters of the run in `source` into `model`.

    Args:
        model: the new run's model, built from `model_config`.
        source: the pretrained run's workdir (`train.init_from`).
        model_config: the new run's `config.model`.
        model_io: what the new model maps (the study's `model_io.json` content: `ndim`,
            `in_channels`, `out_channels`, `condition_on`).

    Returns:
        The checkpoint step of the pretrained run that was loaded.

    Raises:
        FieldnetError: the source is not a trained run, or its model differs (naming the
            keys).
    """
    source = check_source(source)
    changed = model_differences(source, model_config, model_io)
    if changed:
        raise FieldnetError(f"train.init_from={source}: its model differs in "
                            f"{', '.join(changed[:6])}; fine-tuning needs the same model")
    return restore_params(model, source, rundir.read_config(source).train, best=True)
