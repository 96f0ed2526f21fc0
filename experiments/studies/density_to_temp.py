"""The density -> temperature study as library calls: a notebook or a test runs

    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as study
    report = study.train_and_evaluate(density_to_temp.get_config("quick"), "runs/my_run")

exactly as the command line `python -m experiments.density_to_temp` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_collections
from flax import nnx

from fieldnet import data, models, objectives, rundir, train
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from fieldnet.eval import config as evaluation
from fieldnet.eval import held_out
from fieldnet.figures import calibration as calibration_figures
from fieldnet.figures import report, samples
from fieldnet.files import write_json
from fieldnet.grid import check_divisible
from fieldnet.inference import open_run


def check_config(config: ml_collections.ConfigDict) -> None:
    """Every value the study reads, checked in one line before any data is simulated or
    loaded and before the workdir is touched."""
    data.check_config(config.data)
    train.check_config(config.train)
    evaluation.check_config(config.eval)
    objectives.check_config(config)
    stride = models.stride_of(config.model)
    formula = models.stride_formula(config.model.get("name", "unet"))
    check_divisible([config.data.crop_size], stride, "data.crop_size", formula)
    sim = config.get("simulate")
    if sim is not None and sim.enabled and not Path(config.data.path).exists():
        check_divisible([sim.grid], stride, "simulate.grid (the size of the maps to be made)",
                        formula)


def check_field_sizes(ds: data.FieldDataset, stride: int) -> None:
    """Evaluation predicts whole held-out fields (or slabs): their sizes must fit the model
    too, which is checked before training rather than found after it."""
    for split in ("val", "test"):
        for region in ds.splits[split]:
            shape = (region.hi - region.lo, *ds.source.spatial_shape[1:])
            check_divisible(shape, stride, f"{ds.source.path}: the {split} fields' size")


def ensure_data(config: ml_collections.ConfigDict) -> Path:
    """The dataset path, simulating the dataset there first when it is absent and allowed
    (and saying so, since a mistyped data.path would otherwise quietly make a new one)."""
    path = Path(config.data.path)
    if path.exists():
        return path
    sim = config.get("simulate")
    if sim is None or not sim.enabled:
        raise FileNotFoundError(f"{path}: no such data file (data.path)")
    from data_tools.simulate import simulate_dataset

    print(f"data.path {path} does not exist: simulating {sim.n_sims} {sim.dim}D boxes of "
          f"{sim.grid} cells into it (simulate.*; --config.simulate.enabled=False refuses)",
          file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate_dataset(path, n_sims=sim.n_sims, grid=sim.grid, box=sim.box, seed=sim.seed,
                     dim=sim.dim)
    return path


def open_dataset(config: ml_collections.ConfigDict, workdir: Path,
                 **shard) -> data.FieldDataset:
    """Opens the data; the normalizer is fitted once on the train split and kept in the run
    (or, with train.init_normalizer="pretrained", taken from the train.init_from run)."""
    stats = rundir.normalizer(workdir)
    tc = config.train
    if (not stats.exists() and tc.get("init_from")
            and tc.get("init_normalizer", "data") == "pretrained"):
        Normalizer.load(rundir.normalizer(tc.init_from)).save(stats)
    normalizer = Normalizer.load(stats) if stats.exists() else None
    ds = data.FieldDataset(config.data, normalizer=normalizer, **shard)
    if normalizer is None:
        ds.normalizer.save(stats)
    return ds


def build_model(config: ml_collections.ConfigDict, ds: data.FieldDataset) -> nnx.Module:
    try:
        model = objectives.build(config.model, rngs=nnx.Rngs(config.seed),
                                 in_channels=ds.in_channels, out_channels=ds.out_channels,
                                 ndim=ds.ndim, cond_dim=ds.cond_dim)
    except ValueError as err:
        raise FieldnetError(f"model config: {err}") from None
    return model


def model_io(ds: data.FieldDataset) -> dict:
    """What the run's model maps, for inference on other files (fieldnet.inference)."""
    return {"ndim": ds.ndim, "in_channels": ds.in_channels, "out_channels": ds.out_channels,
            "input_names": ds.input_names, "target_names": ds.target_names,
            "target_units": [f.units for f in ds.targets], "box_size": list(ds.grid.lengths),
            "condition_on": ds.condition_names}


def evaluate_run(model: nnx.Module, ds, config, workdir: str | Path, *, train_steps: int,
                 checkpoint_step: int | None = None) -> dict:
    """Writes eval.json and figures/ into the workdir (and what the objective keeps to
    evaluate the run again, a generative run's test_samples.h5, before eval.json marks the
    run evaluated) and returns eval.json's content. The first target's figures go to
    figures/, every further target's to figures/<target>/."""
    objective = objectives.of(config.model)
    h = objective.evaluate(model, ds, config)
    objective.save_evaluation(workdir, h, ds, config)
    result = {"test": h.summary, "n_test": int(len(h.log_rho)), "train_steps": int(train_steps),
              "checkpoint_step": checkpoint_step, "n_train_sims": ds.n_sims("train")}
    write_json(rundir.evaluation(workdir), result)
    figures = rundir.figures(workdir)
    for i, (label, name, _) in enumerate(held_out.scored_targets(ds)):
        c = h.targets[label]
        target = report.field_label(label, ds.normalizer[name].transform,
                                    next(f.units for f in ds.targets if f.name == name))
        report.write_all(figures if i == 0 else figures / label, log_rho=h.log_rho,
                         true_log_t=c.true_log, pred_log_t=c.pred_log,
                         baseline_log_t=c.baseline_log, spec_model=c.spec_model,
                         spec_baseline=c.spec_baseline,
                         metrics_jsonl=rundir.metrics(workdir) if i == 0 else None,
                         density_units=h.density_units, grid=h.grid,
                         n_maps=config.eval.n_maps, summary=h.summary["fields"][label],
                         target=target)
    if h.samples_log_t is not None:
        samples.write_all(figures, log_rho=h.log_rho, true_log_t=h.true_log_t,
                          samples_log_t=h.samples_log_t, grid=h.grid,
                          density_units=h.density_units, n_maps=config.eval.n_maps)
    for i, (label, fitted) in enumerate((h.calibrations or {}).items()):
        c = h.targets[label]
        calibration_figures.calibration_figure(
            c.samples_norm, c.true_norm, fitted,
            (figures if i == 0 else figures / label) / calibration_figures.FIGURE_NAME)
    return result


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | Path | None = None) -> dict:
    """Makes the data if needed, trains (resuming), evaluates; returns eval.json's content."""
    import jax

    check_config(config)
    rundir.check_creatable(workdir or rundir.default_workdir(config.name))
    ensure_data(config)
    workdir = rundir.prepare(config, workdir)
    with open_dataset(config, workdir, process_index=jax.process_index(),
                      process_count=jax.process_count()) as ds:
        model = build_model(config, ds)
        check_field_sizes(ds, model.stride)
        write_json(rundir.model_io(workdir), model_io(ds))
        tc = config.train
        if tc.get("init_from") and not rundir.has_trained(workdir):
            train.load_pretrained(model, tc.init_from, config.model, model_io(ds))
        val = [ds.batch("val", tc.batch_size, config.seed, step=i) for i in range(tc.val_batches)]
        result = train.fit(
            model,
            lambda start: ds.batches("train", tc.batch_size, config.seed, start_step=start,
                                     num_steps=tc.num_steps - start),
            val, tc, workdir, loss_fn=objectives.of(config.model).loss(tc), seed=config.seed)
        run = open_run(workdir)   # the best checkpoint, as inference opens the run
        return evaluate_run(run.model, ds, config, workdir, train_steps=result.final_step,
                            checkpoint_step=run.checkpoint_step)
