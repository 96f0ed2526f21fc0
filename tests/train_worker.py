"""A small real training run in its own process, for the fault and parallelism tests.

    python -m tests.train_worker WORKDIR [--steps N] [--lr LR] [--sleep S] [--objective flow]

Makes (once) a small synthetic periodic dataset in WORKDIR, trains a UNet on it with
`fieldnet.train.fit` (by regression, or by flow matching, whose loss draws noise), and
prints the per-step losses as JSON lines on stdout.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx

from fieldnet import data, models, train
from fieldnet.data import h5format

SIZE, N_SIMS, MAPS = 16, 6, 4


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sleep", type=float, default=0.0, help="pause per step (s)")
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
    model = models.build(model_cfg, rngs=nnx.Rngs(0), in_channels=1, out_channels=1, ndim=2)
    if args.objective == "flow":
        train_cfg.loss = "flow_matching"

    def batches(start):
        for step in range(start, args.steps):
            time.sleep(args.sleep)
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
