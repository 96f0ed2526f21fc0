"""A small real training run in its own process, for the fault and parallelism tests.

    python -m tests.train_worker WORKDIR [--steps N] [--lr LR] [--hold-at STEP]
                                         [--objective flow]

Makes (once) a small synthetic periodic dataset in WORKDIR, trains a UNet on it with
`fieldnet.train.fit` (by regression, or by flow matching, whose loss draws noise), and
prints a JSON line with the final step and a checksum of the parameters on stdout.

With `--hold-at STEP` the run pauses before training step STEP + 1, once the checkpoint of
step STEP is complete on disk: it prints `HELD_LINE` on stdout and waits there for SIGTERM
or SIGINT (which stops the run after that step, as `fit` does with a signal) or a kill. A
test acts at that point without guessing how long the steps take.
"""

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx

from fieldnet import data, objectives, rundir, train
from fieldnet.data import h5format

SIZE, N_SIMS, MAPS = 16, 6, 4
HELD_LINE = "held"


def make_data(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = np.exp(rng.normal(size=(N_SIMS * MAPS, SIZE, SIZE))).astype(np.float32)
    # The target depends on neighbours, so there is something for a CNN to learn.
    y = (x + np.roll(x, 1, 1) + np.roll(x, -1, 2)) ** 0.7
    h5format.write_arrays(path, {"density": x, "temperature": y}, ndim=2, box_size=10.0,
                          source="test", sim_index=np.repeat(np.arange(N_SIMS), MAPS),
                          units={"density": "mean", "temperature": "K"})


def config(workdir: Path, steps: int, lr: float):
    c = data.default_config()
    c.path = str(workdir / "data.h5")
    c.crop_size = SIZE
    c.split_fractions = (4 / 6, 1 / 6, 1 / 6)
    t = train.default_config()
    t.num_steps, t.batch_size, t.learning_rate, t.warmup_steps = steps, 4, lr, 2
    t.log_every = t.eval_every = t.checkpoint_every = 5
    t.val_batches, t.progress = 1, False
    return c, t


def hold(workdir: Path, step: int, timeout: float = 600.0) -> None:
    """Waits for the checkpoint of `step`, which `fit` saves in the background before it
    asks for the next batch (orbax renames a step's folder into place once it is whole),
    prints HELD_LINE, then waits for SIGTERM or SIGINT: it passes the signal on to `fit`'s
    handler and returns, so the run stops after the next step. Gives up after `timeout`
    seconds (a test that died leaves no worker behind)."""
    deadline = time.monotonic() + timeout
    saved = rundir.checkpoints(workdir) / "latest" / str(step)
    while not saved.exists():
        if time.monotonic() > deadline:
            sys.exit(f"checkpoint {saved} not written in {timeout} s")
        time.sleep(0.01)
    received = []
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def passed_on(signum, frame):
        received.append(signum)
        handlers[signum](signum, frame)

    for s in handlers:
        signal.signal(s, passed_on)
    print(HELD_LINE, flush=True)
    try:
        while not received:  # a signal cuts the sleep short
            if time.monotonic() > deadline:
                sys.exit(f"no signal in {timeout} s")
            time.sleep(0.01)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hold-at", type=int, help="pause, once the checkpoint of this step "
                        "is complete, until a signal (see the module's docstring)")
    parser.add_argument("--coordinator", help="host:port of process 0 (multi-process run)")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--objective", choices=("regression", "flow"), default="regression")
    args = parser.parse_args()
    if args.coordinator:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not (args.workdir / "data.h5").exists() and jax.process_index() == 0:
        make_data(args.workdir / "data.h5")
    while not (args.workdir / "data.h5").exists():
        time.sleep(0.1)
    data_cfg, train_cfg = config(args.workdir, args.steps, args.lr)
    ds = data.FieldDataset(data_cfg, process_index=jax.process_index(),
                           process_count=jax.process_count())
    model_cfg = ml_collections.ConfigDict({"width": 4, "depth": 2, "objective": args.objective})
    model = objectives.build(model_cfg, rngs=nnx.Rngs(0), in_channels=1, out_channels=1,
                             ndim=2)
    if args.objective == "flow":
        train_cfg.loss = "flow_matching"

    def batches(start):
        for step in range(start, args.steps):
            if step == args.hold_at:
                hold(args.workdir, step)
            yield ds.batch("train", train_cfg.batch_size, seed=0, step=step)

    val = [ds.batch("val", train_cfg.batch_size, seed=0, step=0)]
    result = train.fit(model, batches, val, train_cfg, args.workdir)
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    print(json.dumps({"final_step": result.final_step,
                      "param_sum": float(sum(np.abs(np.asarray(p)).sum() for p in params)),
                      "devices": jax.device_count()}))
    if jax.process_index() == 0:
        np.savez(args.workdir / "params.npz", *[np.asarray(p) for p in params])


if __name__ == "__main__":
    main()
