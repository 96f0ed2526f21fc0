"""The density -> temperature study as library calls: a notebook or a test runs

    from experiments.configs import density_to_temp
    config = density_to_temp.get_config("quick")
    report = experiment.train_and_evaluate(config, "runs/my_run")

exactly as the command line `python -m experiments.density_to_temp` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections
from flax import nnx

from fieldnet import data, evaluate, models, train
from fieldnet.errors import FieldnetError
from fieldnet.transforms import Normalizer

# Keys that may differ between a run and its resumption without changing the result.
RESUMABLE_DIFFERENCES = {"train.progress"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def write_json(path: Path, obj) -> None:
    """Writes JSON under a temporary name, then renames: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str | Path | None) -> Path:
    """Creates the workdir and records the config; refuses a workdir of a different run."""
    workdir = Path(workdir or Path("runs") / config.name)
    workdir.mkdir(parents=True, exist_ok=True)
    new = json.loads(config.to_json_best_effort())
    saved = workdir / "config.json"
    if saved.exists():
        old = _flatten(json.loads(saved.read_text()))
        flat = _flatten(new)
        changed = sorted(k for k in set(old) | set(flat)
                         if old.get(k) != flat.get(k) and k not in RESUMABLE_DIFFERENCES)
        if changed:
            raise FieldnetError(f"{workdir} holds a run with a different config (differs in "
                                f"{', '.join(changed[:6])}); choose another --workdir")
    else:
        write_json(saved, new)
    return workdir


def ensure_data(config: ml_collections.ConfigDict) -> Path:
    """The dataset path, simulating the dataset there first when it is absent and allowed."""
    path = Path(config.data.path)
    if path.exists():
        return path
    sim = config.get("simulate")
    if sim is None or not sim.enabled:
        raise FileNotFoundError(f"{path}: no such data file (data.path)")
    from data_tools.simulate import simulate_dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    simulate_dataset(path, n_sims=sim.n_sims, grid=sim.grid, box=sim.box, seed=sim.seed,
                     dim=sim.dim)
    return path


def open_dataset(config: ml_collections.ConfigDict, workdir: Path,
                 **shard) -> data.FieldDataset:
    """Opens the data; the normalizer is fitted once on the train split and kept in the run."""
    stats = workdir / "normalizer.json"
    normalizer = Normalizer.load(stats) if stats.exists() else None
    ds = data.FieldDataset(config.data, normalizer=normalizer, **shard)
    if normalizer is None:
        ds.normalizer.save(stats)
    return ds


def build_model(config: ml_collections.ConfigDict, ds: data.FieldDataset) -> nnx.Module:
    try:
        model = models.build(config.model, rngs=nnx.Rngs(config.seed),
                             in_channels=ds.in_channels, out_channels=ds.out_channels,
                             ndim=ds.ndim)
    except ValueError as err:
        raise FieldnetError(f"model config: {err}") from None
    stride = getattr(model, "stride", 1)
    if config.data.crop_size % stride:
        raise FieldnetError(f"data.crop_size={config.data.crop_size} must be divisible by the "
                            f"model's total stride {stride} (2**model.depth)")
    return model


def model_io(ds: data.FieldDataset) -> dict:
    """What the run's model maps, for inference on other files (fieldnet.inference)."""
    return {"ndim": ds.ndim, "in_channels": ds.in_channels, "out_channels": ds.out_channels,
            "input_names": ds.input_names, "target_names": ds.target_names,
            "target_units": [f.units for f in ds.targets], "box_size": ds.box_size}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | Path | None = None) -> dict:
    """Makes the data if needed, trains (resuming), evaluates; returns eval.json's content."""
    import jax

    ensure_data(config)
    workdir = prepare_workdir(config, workdir)
    with open_dataset(config, workdir, process_index=jax.process_index(),
                      process_count=jax.process_count()) as ds:
        model = build_model(config, ds)
        write_json(workdir / "model_io.json", model_io(ds))
        tc = config.train
        val = [ds.batch("val", tc.batch_size, config.seed, step=i) for i in range(tc.val_batches)]
        result = train.fit(
            model,
            lambda start: ds.batches("train", tc.batch_size, config.seed, start_step=start,
                                     num_steps=tc.num_steps - start),
            val, tc, workdir)
        step = train.restore_params(model, workdir, tc, best=True)
        return evaluate.evaluate_run(model, ds, config, workdir, train_steps=result.final_step,
                                     checkpoint_step=step)
