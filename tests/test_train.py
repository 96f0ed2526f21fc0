"""Training faults and data parallelism, on real (small) runs in separate processes."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from fieldnet import data, models, train
from fieldnet.errors import FieldnetError
from tests import train_worker
from tests.shared import made_once

ROOT = Path(__file__).resolve().parents[1]
STEPS = 20


def worker(workdir, *args, devices=1, wait=True):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "tests.train_worker", str(workdir), "--steps", str(STEPS), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        proc.output = out
    return proc


def params(workdir):
    with np.load(Path(workdir) / "params.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


# How close two trainings of the same 20 steps end. A resumed run restores the state bit
# for bit and repeats the same computations: RESUMED allows 80 float32 EPS, room for a
# reordered sum here and there. Splitting a batch over devices or processes sums every
# gradient in another order: a few EPS relative per step, which Adam's normalized updates
# pass on to the parameters over 20 steps, each step's error adding; SHARDED allows ten
# times RESUMED for that (an estimate of the growth, not a bound to the ulp).
RESUMED, SHARDED = 1e-5, 1e-4


def assert_same_params(a, b, rtol):
    for p, q in zip(params(a), params(b), strict=True):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * np.abs(q).max())


def wait_until_held(proc, timeout=300):
    """Waits for a worker started with --hold-at to say it is held there (its checkpoint of
    that step complete); a worker that dies first, or is not there in `timeout` seconds,
    fails the test with its stderr."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    assert line.strip() == train_worker.HELD_LINE, proc.stderr.read()[-2000:]


def saved_steps(workdir):
    return sorted(int(p.name) for p in (Path(workdir) / "checkpoints" / "latest").iterdir()
                  if p.name.isdigit())


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted one-device run the fault and parallelism tests compare with, made
    once for all workers (`made_once`)."""
    return made_once("train_reference", worker)


def logged_steps(workdir):
    return [json.loads(l)["step"] for l in (Path(workdir) / "metrics.jsonl").read_text()
            .splitlines()]


@pytest.mark.slow
def test_loss_decreases_and_logs(reference):
    lines = [json.loads(l) for l in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [5, 10, 15, 20]
    assert lines[-1]["val_loss"] < 0.95 * lines[0]["val_loss"]
    assert sorted((reference / "checkpoints" / "latest").iterdir())
    assert any((reference / "tensorboard").iterdir())


@pytest.mark.slow
def test_four_devices_give_the_same_training(reference, tmp_path):
    proc = worker(tmp_path, devices=4)
    assert '"devices": 4' in proc.output
    # Same math; only the order of the gradient all-reduce differs.
    assert_same_params(tmp_path, reference, rtol=SHARDED)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_same_training(reference, tmp_path):
    """jax.distributed on localhost: each process feeds half of every global batch."""
    train_worker.make_data(tmp_path / "data.h5")
    address = f"127.0.0.1:{free_port()}"
    procs = [worker(tmp_path, "--coordinator", address, "--num-processes", "2",
                    "--process-id", str(i), wait=False) for i in (1, 0)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        assert '"devices": 2' in out
    assert_same_params(tmp_path, reference, rtol=SHARDED)


@pytest.mark.slow
def test_kill9_then_restart_ends_like_an_uninterrupted_run(reference, tmp_path):
    proc = worker(tmp_path, "--hold-at", "10", wait=False)
    wait_until_held(proc)
    proc.kill()
    proc.wait()
    assert saved_steps(tmp_path)[-1] == 10
    worker(tmp_path)
    assert_same_params(tmp_path, reference, rtol=RESUMED)
    assert logged_steps(tmp_path) == logged_steps(reference)  # each step once


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly_then_resumes(reference, tmp_path):
    proc = worker(tmp_path, "--hold-at", "5", wait=False)
    wait_until_held(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "SIGTERM after step 6" in err and "rerun the same command to resume" in err
    assert saved_steps(tmp_path)[-1] == 6  # the step in flight finished and was saved
    worker(tmp_path)
    assert_same_params(tmp_path, reference, rtol=RESUMED)


@pytest.mark.slow
def test_flow_training_noise_is_a_function_of_seed_and_step(tmp_path):
    """Flow matching draws t and z inside the step: four devices draw the same numbers as
    one, and a run killed after its step-10 checkpoint and restarted ends like one that
    never stopped."""
    single, sharded, resumed = tmp_path / "one", tmp_path / "four", tmp_path / "resumed"
    worker(single, "--objective", "flow")
    worker(sharded, "--objective", "flow", devices=4)
    assert_same_params(sharded, single, rtol=SHARDED)
    proc = worker(resumed, "--objective", "flow", "--hold-at", "10", wait=False)
    wait_until_held(proc)
    proc.kill()
    proc.wait()
    assert saved_steps(resumed)[-1] == 10
    worker(resumed, "--objective", "flow")
    assert_same_params(resumed, single, rtol=RESUMED)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    train_worker.make_data(tmp_path / "data.h5")
    data_cfg, train_cfg = train_worker.config(tmp_path, 10, 3e-3)
    ds = data.FieldDataset(data_cfg)

    def batches(start):
        for step in range(start, 10):
            b = ds.batch("train", 4, seed=0, step=step)
            if step == 7:
                b["y"][0, 0, 0, 0] = np.nan
            yield b

    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    val = [ds.batch("val", 4, seed=0, step=0)]
    with pytest.raises(train.TrainingDiverged, match="step 8.*checkpoint \\(step 5\\) is intact"):
        train.fit(model, batches, val, train_cfg, tmp_path)
    fresh = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(1))
    assert train.restore_params(fresh, tmp_path, train_cfg, best=False) == 5
    import jax

    assert all(np.isfinite(p).all() for p in jax.tree.leaves(nnx.state(fresh, nnx.Param)))

    # A corrupt checkpoint is a one-line error, and nothing is deleted.
    files = sorted((tmp_path / "checkpoints" / "latest" / "5").rglob("_METADATA"))
    assert files
    for f in files:
        f.write_bytes(b"\xa7 not a checkpoint")
    with pytest.raises(FieldnetError, match="checkpoints/latest/5: cannot restore"):
        train.restore_params(fresh, tmp_path, train_cfg, best=False)
    assert all(f.exists() for f in files)


def small_run(tmp_path, steps):
    """(dataset, train config, batches(start), val batches) of a small in-process run."""
    train_worker.make_data(tmp_path / "data.h5")
    data_cfg, train_cfg = train_worker.config(tmp_path, steps, 3e-3)
    ds = data.FieldDataset(data_cfg)

    def batches(start):
        for step in range(start, steps):
            yield ds.batch("train", 4, seed=0, step=step)

    return ds, train_cfg, batches, [ds.batch("val", 4, seed=0, step=0)]


@pytest.mark.slow
def test_host_does_not_wait_for_the_device_between_log_points(tmp_path, monkeypatch):
    """Each step's loss is still unfinished when the host dispatches the next step, except
    after the steps where the loop reads the losses back (logs, evaluations, checkpoints).

    No timing margin decides this: every step's batch passes through a gate, a host
    callback that the test opens only once the host has dispatched the next step (or at
    once before a read-back). A loop that synced on every step (float(loss), device_get,
    block_until_ready) would wait on a closed gate until its 20 s timeout, and would then
    find that step's loss ready."""
    import threading

    import jax
    import jax.numpy as jnp

    from fieldnet.train import loop

    steps = 12
    _, cfg, batches, val = small_run(tmp_path, steps)
    cfg.log_every, cfg.eval_every, cfg.checkpoint_every = 4, 6, steps
    read_back = {4, 6, 8, 12}
    opened = [threading.Event() for _ in range(steps)]

    def wait_for_host(step):
        opened[int(step)].wait(20)
        return np.zeros((), np.float32)

    @jax.jit
    def seed(x):  # ~0.3 s of device work: unfinished when the gate that follows is dispatched
        m = jnp.tile(x, (x.size, 1)) / x.size
        return 0.0 * jax.lax.fori_loop(0, 300, lambda i, m: jnp.tanh(m @ m), m).mean()

    @jax.jit
    def gate(token, step):  # finishes once the host opens the step's gate
        return token + jax.pure_callback(
            wait_for_host, jax.ShapeDtypeStruct((), jnp.float32), step)

    @jax.jit
    def through(batch, token):
        return {**batch, "x": batch["x"] + token.astype(batch["x"].dtype)}

    x0 = jnp.zeros((512,))
    opened[-1].set()  # the warm-up call below passes its gate at once
    jax.block_until_ready(gate(seed(x0), np.int32(steps - 1)))  # compiled before the run
    opened[-1].clear()
    ready_at_next_dispatch, token = {}, None
    real_step_functions = loop.step_functions

    def probed_step_functions(*args, **kwargs):
        fns = real_step_functions(*args, **kwargs)
        losses = []

        def probed_train(state, batch, window, step):
            nonlocal token
            if losses:
                ready_at_next_dispatch[step] = losses[-1].is_ready()
                opened[step - 1].set()
            if token is None or token.is_ready():  # a gate after a finished one runs inline
                token = seed(x0)
            token = gate(token, np.int32(step))
            out = fns.train(state, through(batch, token), window, step)
            losses.append(out[2])
            if step + 1 in read_back:
                opened[step].set()  # the loop is about to wait for this step
            return out

        return loop.StepFunctions(probed_train, fns.evaluate)

    monkeypatch.setattr(loop, "step_functions", probed_step_functions)
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    try:
        result = train.fit(model, batches, val, cfg, tmp_path)
    finally:
        for event in opened:
            event.set()
    assert result.final_step == steps and np.isfinite(result.final_train_loss)
    assert sorted(ready_at_next_dispatch) == list(range(1, steps))
    waited = sorted(step for step, ready in ready_at_next_dispatch.items() if ready)
    assert waited == sorted(read_back - {steps})


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_FSIZE")
def test_failed_save_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch, caplog):
    """After the step-4 checkpoint the kernel refuses every write past 32 kB (a file-size
    limit: EFBIG, as a full disk gives ENOSPC), so orbax's background save of step 8 fails:
    the run stops with one line that names the folder and the reason, orbax's tracebacks
    are not logged, and step 4 stays restorable."""
    import logging
    import resource

    from fieldnet.train import loop

    _, cfg, batches, val = small_run(tmp_path, 16)
    cfg.log_every, cfg.eval_every, cfg.checkpoint_every = 2, 16, 4
    opened = []

    class RecordedCheckpoints(loop.Checkpoints):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    pulled = []

    def limited(start):
        for step, batch in enumerate(batches(start), start):
            if step == 4:
                opened[0].wait()  # step 4 is on disk
                resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, hard))
            pulled.append(step)
            yield batch

    monkeypatch.setattr(loop, "Checkpoints", RecordedCheckpoints)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    try:
        with pytest.raises(FieldnetError) as failure:
            train.fit(model, limited, val, cfg, tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'checkpoints'}: saving a checkpoint failed (")
    assert "File too large" in message and "(step 4) is intact" in message
    assert max(pulled) <= 11  # stopped at the save of step 12 at the latest, not at the end
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    fresh = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(1))
    assert train.restore_params(fresh, tmp_path, cfg, best=False) == 4


def test_save_failing_at_once_raises_one_line(tmp_path, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    ckpts = train.Checkpoints(tmp_path / "checkpoints")
    state = {"w": np.arange(3.0)}
    ckpts.save(1, state)
    ckpts.wait()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    with pytest.raises(FieldnetError, match=r"checkpoints: saving a checkpoint failed "
                       r"\(\[Errno 28\] No space left on device\); the last good checkpoint "
                       r"\(step 1\) is intact"):
        ckpts.save(2, state)
    ckpts.wait()  # the failure was raised already: shutting down does not raise it again
    ckpts.close()
    assert train.Checkpoints(tmp_path / "checkpoints").latest_step() == 1


def save_initial_checkpoint(tmp_path, cfg, step):
    """The small U-Net's initial state saved as checkpoint `step`; returns the model."""
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    _, _, state = train.split_model(model)
    state["opt_state"] = train.optimizer(cfg).init(state["params"])
    ckpts = train.Checkpoints(tmp_path / "checkpoints")
    ckpts.save(step, state)
    ckpts.close()
    return model


@pytest.mark.slow
def test_resume_drops_the_metrics_logged_after_the_checkpoint(tmp_path):
    """A kill after the step-10 checkpoint left records of steps 15 and 20 and a half-written
    line; the resumed run logs those steps anew, each once."""
    _, cfg, batches, val = small_run(tmp_path, 20)
    model = save_initial_checkpoint(tmp_path, cfg, 10)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(f'{{"step": {step}, "train_loss": 999.0}}\n'
                               for step in (5, 10, 15, 20)) + '{"step": 2')
    train.fit(model, batches, val, cfg, tmp_path)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert [r["train_loss"] == 999 for r in records] == [True, True, False, False]


RESTORE = """
import sys
from pathlib import Path
from flax import nnx
from fieldnet import models, train
from fieldnet.errors import FieldnetError
from tests import train_worker
_, cfg = train_worker.config(Path(sys.argv[1]), 10, 3e-3)
model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
try:
    train.restore_params(model, sys.argv[1], cfg, best=False)
except FieldnetError as err:
    sys.exit(f"error: {err}")
"""


@pytest.mark.parametrize("data_folder", ["default", "ocdbt.process_0"])
def test_corrupt_checkpoint_data_is_a_one_line_error(tmp_path, data_folder):
    """Random bytes in orbax's array data files (the merged OCDBT database, or the
    per-process one): the process that restores prints one line naming the checkpoint and
    the reading error, and nothing else up to its exit (orbax wraps a read error in a bare
    Exception whose message ends in multi-line TensorStore specs, and the callbacks of
    abandoned reads report "Event loop is closed" later)."""
    _, cfg, _, _ = small_run(tmp_path, 10)
    save_initial_checkpoint(tmp_path, cfg, 5)
    data_files = [f for f in (tmp_path / "checkpoints" / "latest" / "5").rglob("*")
                  if f.is_file() and f.parent.name == "d" and f.parent.parent.name == data_folder]
    assert data_files
    rng = np.random.default_rng(0)
    for f in data_files:
        f.write_bytes(rng.bytes(f.stat().st_size))
    proc = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"error: {tmp_path / 'checkpoints' / 'latest' / '5'}: cannot "
                               "restore the checkpoint")
    assert "Error reading" in lines[0] and "TensorStore" not in lines[0]
    assert all(f.exists() for f in data_files)


def test_bad_train_config_fails_at_start(tmp_path):
    _, train_cfg = train_worker.config(tmp_path, 10, 3e-3)
    train_cfg.batch_size = 0
    with pytest.raises(FieldnetError, match="batch_size must be positive"):
        train.check_config(train_cfg)


def test_cadence_reads_back_on_log_eval_and_save_steps_only(tmp_path):
    _, cfg = train_worker.config(tmp_path, 12, 3e-3)
    cfg.log_every, cfg.eval_every, cfg.checkpoint_every = 4, 6, 5
    cadence = train.Cadence.of(cfg)
    steps = range(1, 13)
    assert [d for d in steps if cadence.evaluate(d)] == [6, 12]
    assert [d for d in steps if cadence.log(d)] == [4, 6, 8, 12]
    assert [d for d in steps if cadence.save(d)] == [5, 10, 12]


@pytest.mark.slow  # compiles a whole training step, as the fit tests do
def test_setup_training_steps_a_batch_without_touching_the_model(tmp_path):
    """The set-up `fit` trains with, alone: its steps (the first at learning rate 0, in the
    warmup) move its state, not the model's, and add their losses to the window."""
    ds, cfg, batches, _ = small_run(tmp_path, 4)
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    before = [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]
    setup = train.setup_training(model, cfg)
    state, window, losses = setup.state, setup.empty_window(), []
    for step, batch in zip(range(2), batches(0), strict=False):
        state, window, loss, _ = setup.steps.train(state, setup.global_batch(batch), window,
                                                   step)
        losses.append(float(loss))
    ds.close()
    assert int(window["steps"]) == 2 and int(window["first_bad"]) == -1
    np.testing.assert_allclose(float(window["loss_sum"]), sum(losses), rtol=1e-6)
    after = jax.tree.leaves(state["params"])
    assert any(not np.array_equal(np.asarray(a), b) for a, b in zip(after, before, strict=True))
    now = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(now, before, strict=True))


@pytest.mark.slow
def test_dropout_trains_with_fresh_masks_and_evaluates_deterministically(tmp_path):
    """Dropout draws from the model's RNG stream inside the jitted, differentiated step:
    training runs (it used to fail on mutating the stream across trace levels), the
    stream's count advances with the steps (a new mask each), the trained model
    evaluates deterministically, and it can still be called in training mode outside jit
    (fit used to hand back read-only host arrays, so the stream's count could not
    advance)."""
    import jax

    ds, train_cfg, batches, val = small_run(tmp_path, 4)
    model = models.UNet(1, 1, 2, width=4, depth=2, dropout=0.5, rngs=nnx.Rngs(0))
    result = train.fit(model, batches, val, train_cfg, tmp_path / "run")
    assert np.isfinite(result.final_train_loss)
    counts = [int(v[...]) for v in jax.tree.leaves(nnx.state(model, nnx.RngCount),
                                                   is_leaf=lambda x: isinstance(x, nnx.Variable))]
    assert counts and max(counts) >= 4        # one draw per step at least
    x = val[0]["x"]
    model.eval()
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))
    model.train()  # eager training-mode calls after fit still advance the stream
    assert not np.array_equal(np.asarray(model(x)), np.asarray(model(x)))
