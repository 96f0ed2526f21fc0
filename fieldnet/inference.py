"""A trained run, opened for inference: its network with the best checkpoint, normalizer and
config (`open_run`), and the prediction of a whole file by exact periodic tiling
(`predict_file`, what `python -m experiments.predict` runs).

    run = open_run("runs/density_to_temp")
    y = predict_field(run.model, field, tile=64, batch=8)   # (*spatial, C_in) -> (*spatial, C_out)
    predict_file("runs/density_to_temp", "in.h5", "out.h5")

Tiled inference of a model itself lives in `fieldnet.eval.inference`; `predict_field` is
re-exported here, where the library's documented contract names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx

from fieldnet import data, objectives, rundir, train
from fieldnet.data import h5format
from fieldnet.data.source import FieldSource, parse_names
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from fieldnet.eval.inference import predict_field

__all__ = ["Run", "open_dataset", "open_run", "predict_field", "predict_file"]


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run (`open_run`).

    Attributes:
        workdir: The run's folder.
        config: Its config (config.json).
        normalizer: Its normalizer, as fitted on its train split.
        model: Its network with the best checkpoint's parameters.
        checkpoint_step: The training step of that checkpoint.
        io: What the network maps (model_io.json: "ndim", "in_channels", "out_channels",
            "input_names", "target_names", "target_units", "box_size", "condition_on").
        provenance: "run" (the folder, absolute), "checkpoint_step" and "config_sha256",
            the attributes of the files it writes.
        calibrations: A generative run's calibration of each target (calibration.json:
            {target label: `fieldnet.eval.calibration.Calibration`}), or None.
    """

    workdir: Path
    config: ml_collections.ConfigDict
    normalizer: Normalizer
    model: nnx.Module
    checkpoint_step: int
    io: dict
    provenance: dict
    calibrations: dict | None = None

    @property
    def objective(self) -> objectives.Objective:
        """The run's objective (`fieldnet.objectives.of(config.model)`)."""
        return objectives.of(self.config.model)

    @property
    def input_vectors(self) -> list[str]:
        """The run's inputs that are vector fields (data.vector_fields)."""
        vectors = parse_names(self.config.data.get("vector_fields", ""))
        return [name for name in self.io["input_names"] if name in vectors]

    def sample(self, x, n_samples: int, *, cond=None, seed: int = 0,
               steps: int | None = None, calibrated: bool = True, batch_size: int = 8,
               progress: bool = False) -> np.ndarray:
        """Samples of maps drawn by a generative run, calibrated if the run is
        (`Objective.sample`; a regression run refuses).

        Args:
            x: Normalized inputs, (N, *spatial, C_in) (`normalizer.forward_channels`).
            n_samples: Samples per map (at least 2 for calibrated samples).
            cond: Per map, the standardized parameters of a conditioned run, (N, P).
            seed: Seed of the noise (map i's is `sampling.sample_noise(seed, i, ...)`).
            steps: Heun steps per sample; None: the run's eval.sample_steps.
            calibrated: Apply the run's `calibrations`, if any; False: the raw samples.
            batch_size: Maps per batch of network evaluations.
            progress: Show a progress bar.

        Returns:
            The normalized samples, (N, S, *spatial, C) (`normalizer.inverse_channels`
            gives physical units).

        Raises:
            FieldnetError: For a regression run.
        """
        return self.objective.sample(self, x, n_samples, cond=cond, seed=seed, steps=steps,
                                     calibrated=calibrated, batch_size=batch_size,
                                     progress=progress)

    def dataset(self, data_root: str | Path | None = None) -> data.FieldDataset:
        """The run's dataset, with the normalizer the run saved (never refitted).

        Args:
            data_root: The folder a relative data.path is taken in (the one the run's command
                ran in); None for the working directory.

        Returns:
            The opened `FieldDataset` (a context manager).
        """
        return _dataset(self.config.data, self.normalizer, data_root)


def _dataset(data_config: ml_collections.ConfigDict, normalizer: Normalizer,
             data_root: str | Path | None) -> data.FieldDataset:
    data_config = data_config.copy_and_resolve_references()
    if data_root is not None:
        data_config.path = str(Path(data_root) / data_config.path)
    return data.FieldDataset(data_config, normalizer=normalizer)


def open_dataset(workdir: str | Path, data_root: str | Path | None = None) -> data.FieldDataset:
    """A run's dataset as the run saw it, with the normalizer it saved (never refitted),
    without building its network (`open_run(workdir).dataset` is the same).

    Args:
        workdir: A run's folder (its config and normalizer are read).
        data_root: The folder a relative data.path is taken in (the one the run's command
            ran in); None for the working directory.

    Returns:
        The opened `FieldDataset` (a context manager).

    Raises:
        FieldnetError: If the folder lacks the run's config or normalizer.
    """
    workdir = rundir.require(Path(workdir), rundir.CONFIG, rundir.NORMALIZER, what="a run folder")
    return _dataset(rundir.read_config(workdir).data, Normalizer.load(rundir.normalizer(workdir)),
                    data_root)


def open_run(workdir: str | Path) -> Run:
    """A trained run: its config, normalizer, network with the best checkpoint's parameters
    and that checkpoint's step.

    Args:
        workdir: A trained run's folder.

    Returns:
        The `Run`.

    Raises:
        FieldnetError: If the folder lacks a file of a trained run.
    """
    workdir = rundir.require(Path(workdir), rundir.CONFIG, rundir.MODEL_IO,
                             rundir.NORMALIZER, rundir.CHECKPOINTS, what="a trained run folder")
    text = rundir.config(workdir).read_text()
    config = rundir.read_config(workdir)
    io = rundir.read_json(rundir.model_io(workdir))
    model = objectives.build(config.model, rngs=nnx.Rngs(0), in_channels=io["in_channels"],
                             out_channels=io["out_channels"], ndim=io["ndim"],
                             cond_dim=len(io.get("condition_on", [])))
    step = train.restore_params(model, workdir, config.train, best=True)
    provenance = {"run": str(workdir.absolute()), "checkpoint_step": step,
                  "config_sha256": hashlib.sha256(text.encode()).hexdigest()}
    return Run(workdir, config, Normalizer.load(rundir.normalizer(workdir)), model, step, io,
               provenance, objectives.of(config.model).saved_calibrations(workdir))


def predict_file(workdir, input_path, output_path, *, fields: str | None = None,
                 tile: int = 64, batch: int = 8, overwrite: bool = False,
                 params: dict[str, float] | None = None, progress: bool = True,
                 samples: int | None = None, steps: int | None = None,
                 seed: int = 0, calibrated: bool = True,
                 argument_names: Mapping[str, str] | None = None) -> dict:
    """Predicts every sample of `input_path` with a trained run; writes physical units.

    Reads fieldnet-format files (/fields/<name>, a leading sample axis) or any HDF5 dataset
    path (with or without a sample axis), through `FieldSource` and so with its checks.
    A run conditioned on simulation parameters takes them from `params` ({name: value},
    the same for every sample) where given, else from the file's /params. The output is
    written under a temporary name and renamed when complete, so an error leaves nothing
    behind; it may never replace the input file.

    What is written is the run's objective's (`Objective.write_file`). A regression run
    writes /fields/<target> (M, *spatial) for the file's M maps. A generative run
    (model.objective "flow") draws `samples` samples of each map (`steps` Heun steps, default
    the run's eval.sample_steps; the noise of sample j of map i from
    `sampling.sample_noise(seed, i, ...)`, whole-field, with tiled network evaluations) and
    writes, per target, samples/<target> (M, samples, *spatial) and their mean/<target> and
    std/<target> (M, *spatial), all in the target's physical units. `samples` is required
    for a generative run and refused for a regression one. A generative run evaluated with
    a calibration (its calibration.json) calibrates the samples it draws
    (`fieldnet.eval.calibration`: each map's samples widened about their mean by the
    fitted spread) unless `calibrated` is False.

    Args:
        workdir: A trained run's folder.
        input_path: The HDF5 file with the input fields.
        output_path: The HDF5 file to write.
        fields: Input field names or dataset paths, comma-separated; None for the run's.
        tile: Core size in pixels, as for `predict_field`.
        batch: Tiles per forward pass, as for `predict_field`.
        overwrite: Replace an existing output file.
        params: Simulation parameters of a conditioned run, {name: value}; None reads the
            file's /params.
        progress: Show progress bars.
        samples: Samples to draw of each map (generative runs only, and required there).
        steps: Heun steps per sample; None for the run's eval.sample_steps.
        seed: Seed of the samples' noise.
        calibrated: Calibrate a calibrated generative run's samples; False: its raw samples.
        argument_names: How error messages name the arguments `output_path`, `samples`,
            `params` and `calibrated` ({argument: name}; a command line passes its flags);
            None names them as here.

    Returns:
        A summary: "output" (the path), "samples" (maps predicted), "samples_per_map"
        (None for a regression run), and the run's provenance (run, checkpoint step, config
        hash).

    Raises:
        FieldnetError: On a bad run folder, input file, field, parameter, tile, batch,
            `samples` or `steps`, or an output that would replace the input.
    """
    def named(argument: str) -> str:
        return (argument_names or {}).get(argument, argument)

    if Path(output_path).resolve() == Path(input_path).resolve():
        raise FieldnetError(f"{named('output_path')} {output_path} is the input file; write "
                            "elsewhere")
    run = open_run(workdir)
    objective = run.objective
    objective.check_file_request(workdir, samples, named)
    if calibrated and run.calibrations and samples is not None and samples < 2:
        off = (argument_names or {}).get("calibrated", "calibrated=False")
        raise FieldnetError(f"{named('samples')} {samples}: {workdir} is calibrated, which "
                            "widens each map's samples about their mean: draw at least 2, or "
                            f"take them uncalibrated ({off})")
    io = run.io
    names = parse_names(fields) if fields else io["input_names"]
    if len(names) != len(io["input_names"]):
        raise FieldnetError(f"the run takes {len(io['input_names'])} input field(s) "
                            f"{io['input_names']}, got {names}")
    vectors = [given for given, name in zip(names, io["input_names"], strict=True)
               if name in run.input_vectors]
    source = FieldSource(input_path, names, (), vector_fields=vectors, sample_axis=None,
                         ndim=io["ndim"], default_box_size=io["box_size"])
    try:
        if source.ndim != io["ndim"]:
            raise FieldnetError(f"{input_path}: the run maps {io['ndim']}D fields, the input "
                                f"is {source.ndim}D (shape {source.spatial_shape})")
        conditions = _conditions(io.get("condition_on", []), params, source, run.normalizer,
                                 named)
        with h5format.create(output_path, ndim=io["ndim"], box_size=source.grid.lengths,
                             source="fieldnet.inference", overwrite=overwrite) as out:
            out.attrs.update(source_file=str(Path(input_path).absolute()), **run.provenance)
            objective.write_file(out, run, source, conditions, tile=tile, batch=batch,
                                 samples=samples, steps=steps, seed=seed, progress=progress,
                                 calibrated=calibrated)
            h5format.add_index(out, source.sim_index)
    finally:
        source.close()
    return {"output": str(output_path), "samples": source.num_samples,
            "samples_per_map": samples, **run.provenance}


def _conditions(names: list[str], given: dict[str, float] | None, source: FieldSource,
                normalizer: Normalizer, named) -> list[np.ndarray | None]:
    """Per sample, the standardized parameters a conditioned run needs (None each for an
    unconditioned run); a parameter neither given nor in the file is a one-line error."""
    n = source.num_samples
    if not names:
        if given:
            raise FieldnetError(f"{named('params')} given, but the run is not conditioned on "
                                f"any (got {sorted(given)})")
        return [None] * n
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise FieldnetError(f"{named('params')} {unknown}: the run is conditioned on {names} "
                            "only")
    in_file = {name: j for j, name in enumerate(source.param_names)}
    missing = [name for name in names if name not in given and name not in in_file]
    if missing:
        raise FieldnetError(f"the run is conditioned on {names}; {missing} missing: pass "
                            f"{named('params')} {missing[0]}=VALUE,... or use a file whose "
                            "/params has them")
    values = np.empty((n, len(names)), np.float64)
    for j, name in enumerate(names):
        values[:, j] = given[name] if name in given else source.params[:, in_file[name]]
    return list(normalizer.forward_params(names, values))
