"""The density -> temperature study as library calls: a notebook or a test runs

    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as study
    report = study.train_and_evaluate(density_to_temp.get_config("quick"), "runs/my_run")

exactly as the command line `python -m experiments.density_to_temp` does.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
from flax import nnx

from fieldnet import data, models, rundir, train
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from fieldnet.eval import held_out
from fieldnet.figures import report
from fieldnet.files import write_json


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
    stats = rundir.normalizer(workdir)
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


def evaluate_run(model: nnx.Module, ds, config, workdir: str | Path, *, train_steps: int,
                 checkpoint_step: int | None = None) -> dict:
    """Writes eval.json and figures/ into the workdir and returns eval.json's content."""
    h = held_out.held_out(model, ds, config)
    result = {"test": h.summary, "n_test": int(len(h.log_rho)), "train_steps": int(train_steps),
              "checkpoint_step": checkpoint_step}
    write_json(rundir.evaluation(workdir), result)
    report.write_all(rundir.figures(workdir), log_rho=h.log_rho, true_log_t=h.true_log_t,
                     pred_log_t=h.pred_log_t, baseline_log_t=h.baseline_log_t,
                     spec_model=h.spec_model, spec_baseline=h.spec_baseline,
                     metrics_jsonl=rundir.metrics(workdir),
                     baseline_mse=h.summary["baseline_mse"], density_units=h.density_units,
                     box_size=h.box_size, n_maps=config.eval.n_maps)
    return result


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | Path | None = None) -> dict:
    """Makes the data if needed, trains (resuming), evaluates; returns eval.json's content."""
    import jax

    ensure_data(config)
    workdir = rundir.prepare(config, workdir)
    with open_dataset(config, workdir, process_index=jax.process_index(),
                      process_count=jax.process_count()) as ds:
        model = build_model(config, ds)
        write_json(rundir.model_io(workdir), model_io(ds))
        tc = config.train
        val = [ds.batch("val", tc.batch_size, config.seed, step=i) for i in range(tc.val_batches)]
        result = train.fit(
            model,
            lambda start: ds.batches("train", tc.batch_size, config.seed, start_step=start,
                                     num_steps=tc.num_steps - start),
            val, tc, workdir)
        step = train.restore_params(model, workdir, tc, best=True)
        return evaluate_run(model, ds, config, workdir, train_steps=result.final_step,
                            checkpoint_step=step)
