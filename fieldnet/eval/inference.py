"""Full-field inference by exact periodic tiling, for fields larger than memory.

    y = predict_field(model, field, tile=64, batch=8)  # (*spatial, C_in) -> (*spatial, C_out)

The field is cut into cores of `tile` pixels; each is cut out with a periodic halo of the
model's receptive field (rounded up to a multiple of its stride, so every tile sits on the
same downsampling grid as the whole field), run in batches, and only the cores are kept.
Each output pixel then sees exactly the inputs it sees in a whole-field prediction, so the
two agree to float rounding. Peak memory is set by `tile` and `batch`, not by the field.

    s = sample_field(model, field, noise, steps=20, tile=64)   # a flow run's sample

samples a generative run's velocity network the same way: every network evaluation of
the ODE solver (`fieldnet.eval.sampling`) is tiled, the noise covers the whole field.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from fieldnet import models, rundir, train
from fieldnet.data import h5format
from fieldnet.data.source import FieldSource, parse_names
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from fieldnet.eval import sampling
from fieldnet.grid import check_divisible
from fieldnet.nn import flow
from fieldnet.receptive import receptive_field


def tile_plan(size: int, tile: int, stride: int) -> list[int]:
    """Core start positions along one axis: multiples of `tile`, the last one moved back
    so that it ends at the edge (all cores have the same size; overlaps are harmless).

    Args:
        size: Pixels along the axis.
        tile: Core size in pixels, at most `size`.
        stride: The model's stride; every start must be a multiple of it.

    Returns:
        The start of every core, increasing.

    Raises:
        FieldnetError: If a start is not a multiple of the stride.

    Examples:
        >>> from fieldnet.eval.inference import tile_plan
        >>> tile_plan(96, 32, 8), tile_plan(80, 32, 8)
        ([0, 32, 64], [0, 32, 48])
    """
    starts = list(range(0, size - tile + 1, tile))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    if any(s % stride for s in starts):
        raise FieldnetError(f"tile starts {starts} must be multiples of the stride {stride}")
    return starts


def _check_model(model: models.FieldModel, tile: int, batch: int) -> tuple[int, int]:
    """(stride, halo) of a model that tiled inference serves, with `tile` and `batch`."""
    if not isinstance(model, models.FieldModel):
        raise FieldnetError(f"tiled inference needs a field-to-field model "
                            f"(fieldnet.models.FieldModel); {type(model).__name__} lacks "
                            f"{', '.join(models.missing_members(model))}")
    if model.padding != "periodic":
        raise FieldnetError("tiled inference is exact only for padding='periodic' models")
    stride = model.stride
    if tile < stride or tile % stride or batch < 1:
        raise FieldnetError(f"tile must be a positive multiple of the stride {stride} and "
                            f"batch ≥ 1, got tile={tile}, batch={batch}")
    return stride, math.ceil(receptive_field(model) / stride) * stride


def _check_field(model: models.FieldModel, field: np.ndarray) -> None:
    ndim = model.ndim
    if field.ndim != ndim + 1 or field.shape[-1] != model.in_channels:
        raise FieldnetError(f"expected a field of shape (*spatial, {model.in_channels}) with "
                            f"{ndim} spatial axes, got {field.shape}")
    check_divisible(field.shape[:-1], model.stride, "field size")
    if not np.isfinite(field).all():
        raise FieldnetError(f"the field contains {np.size(field) - np.isfinite(field).sum()} "
                            "NaN/Inf values")


def _tile(field: np.ndarray, start: tuple[int, ...], tile: int,
          halos: tuple[int, ...]) -> np.ndarray:
    """The tile at `start` with its periodic halo (`halos`, per axis)."""
    window = field
    for axis, (s, halo) in enumerate(zip(start, halos, strict=True)):
        window = np.take(window, np.arange(s - halo, s + tile + halo), axis=axis, mode="wrap")
    return window


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, x, cond):
    model = nnx.merge(graphdef, state)
    return model(x) if cond is None else model(x, cond)


def jitted_forward(model: nnx.Module):
    """`model(x)` (or `model(x, cond)` for a conditioned model) in eval mode (dropout off) as
    one jitted function of x and cond. The compiled code
    is cached by architecture and input shape, so later calls on a model of the same
    architecture (any weights) do not compile again.

    Args:
        model: The model; it is put in eval mode and split into graph and state once.

    Returns:
        `forward(x, cond=None)`, the model's output for a batch x.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    return lambda x, cond=None: _forward(graphdef, state, x, cond)


def predict_field(model: models.FieldModel, field: ArrayLike, tile: int = 64, batch: int = 8,
                  *, params: ArrayLike | None = None, progress: bool = False) -> np.ndarray:
    """Prediction for one whole periodic field (*spatial, C_in), no batch axis.

    Equals `model(field[None])[0]` to float rounding, with peak memory set by `tile` and
    `batch` instead of by the field. Along an axis no longer than `tile` the field is taken
    whole, without a halo (periodic padding wraps it exactly).

    Args:
        model: A `FieldModel` with `padding="periodic"` that is also an `nnx.Module` (it is
            split once into graph and state and its forward pass compiled). Its halo comes
            from `receptive_field(model)`.
        field: The input, shape (*spatial, in_channels) with `model.ndim` spatial axes,
            each a multiple of `model.stride`; finite values. Converted to float32.
        tile: Core size along every axis in pixels, a positive multiple of the stride;
            a field smaller than it is predicted as one tile.
        batch: Tiles per forward pass, ≥ 1; the last batch is padded to this size so that
            one compiled shape serves all.
        params: For a model conditioned on simulation parameters (`cond_dim > 0`), the
            conditioning vector of this field, shape (cond_dim,), standardized as in
            training (`Normalizer.forward_params`); None for an unconditioned model.
        progress: Show a progress bar over the tiles.

    Returns:
        The prediction, float32 of shape (*spatial, out_channels).

    Raises:
        FieldnetError: (a ValueError) If the model is not a `FieldModel` or not periodic,
            the field's shape does not fit it, `tile` or `batch` is invalid, or the field
            holds NaN or Inf.
        ValueError: If the model's receptive field is not finite (group normalization).

    Examples:
        >>> import numpy as np
        >>> from flax import nnx
        >>> from fieldnet import models
        >>> from fieldnet.inference import predict_field
        >>> m = models.UNet(1, 1, ndim=2, width=4, depth=1, rngs=nnx.Rngs(0))
        >>> field = np.random.default_rng(0).normal(size=(16, 16, 1)).astype(np.float32)
        >>> y = predict_field(m, field, tile=8, batch=4)   # four 8² cores, each with its halo
        >>> y.shape
        (16, 16, 1)
        >>> bool(np.allclose(y, np.asarray(m(field[None]))[0], atol=1e-5))
        True
    """
    return field_predictor(model, tile, batch)(field, params=params, progress=progress)


def field_predictor(model: models.FieldModel, tile: int = 64, batch: int = 8):
    """`predict(field, params=None, progress=False)`: `predict_field` with this model, tile
    and batch, the model split and its halo found once, for callers that predict many
    fields (a sampler evaluates the network twice per ODE step). `field` may also be a
    stack (K, *spatial, C_in) of fields of one size with the same `params`: their tiles
    share the batches, so K fields smaller than `batch` tiles take one forward pass, not K;
    each comes out as it would alone, to float rounding.

    Args:
        model: As for `predict_field`.
        tile: As for `predict_field`.
        batch: As for `predict_field`.

    Returns:
        The function `predict(field, params=None, progress=False)`.

    Raises:
        FieldnetError: As `predict_field`, for the model, `tile` and `batch`.
    """
    stride, halo = _check_model(model, tile, batch)
    forward = jitted_forward(model)

    def predict(field: ArrayLike, params: ArrayLike | None = None,
                progress: bool = False) -> np.ndarray:
        field = np.asarray(field, np.float32)
        stacked = field.ndim == model.ndim + 2
        stack = field if stacked else field[None]
        for one in stack:
            _check_field(model, one)
        spatial = stack.shape[1:-1]
        size, starts = _tile_starts(spatial, tile, stride)
        jobs = [(k, start) for k in range(len(stack)) for start in starts]
        cond = _tile_condition(model, params, batch)
        out = np.empty((len(stack), *spatial, model.out_channels), np.float32)
        # an axis that one tile covers whole needs no halo: the model's periodic padding
        # wraps the tile, which is then the field itself along it
        halos = tuple(0 if size == n else halo for n in spatial)
        core = (slice(None),) + tuple(slice(h, h + size) for h in halos)
        with tqdm(total=len(jobs), desc="tiles", unit="tile", disable=not progress) as bar:
            for group in _batches(jobs, batch):
                x = np.stack([_tile(stack[k], start, size, halos) for k, start in group])
                if len(group) < batch:  # one compiled shape for every batch
                    x = np.concatenate([x, np.zeros((batch - len(group), *x.shape[1:]),
                                                    x.dtype)])
                y = np.asarray(forward(x, cond))[core]
                for (k, start), pred in zip(group, y, strict=False):
                    out[k][tuple(slice(s, s + size) for s in start)] = pred
                bar.update(len(group))
        return out if stacked else out[0]

    return predict


def _tile_starts(spatial, tile: int, stride: int) -> tuple[int, list[tuple[int, ...]]]:
    """(core size, the start of every tile) that `field_predictor` cuts a field of shape
    `spatial` into: cores of `tile`, or of the field's shortest axis if that is shorter."""
    size = min(tile, *spatial)
    return size, list(itertools.product(*[tile_plan(n, size, stride) for n in spatial]))


def tiles_per_field(model: models.FieldModel, spatial, tile: int) -> int:
    """How many tiles `field_predictor` cuts a field of shape `spatial` into.

    Args:
        model: The model (its stride is read).
        spatial: The field's spatial shape.
        tile: Core size in pixels.

    Returns:
        The number of tiles.
    """
    return len(_tile_starts(spatial, tile, model.stride)[1])


def sample_field(model: nnx.Module, field: ArrayLike, noise: ArrayLike, *, steps: int,
                 tile: int = 64, batch: int = 8, params: ArrayLike | None = None,
                 progress: bool = False) -> np.ndarray:
    """One sample for one whole periodic field, every network evaluation tiled exactly
    (`predict_field`), so peak memory is set by `tile` and `batch`.

    Args:
        model: The velocity network, periodic.
        field: The inputs (*spatial, C_x), normalized.
        noise: The starting noise of the whole field (*spatial, C_y)
            (`sampling.sample_noise`), or a stack of them (S, *spatial, C_y) for S samples
            drawn together (see `field_sampler`).
        steps: Heun steps from t = 0 to 1.
        tile: Tile core size in pixels, as for `predict_field`.
        batch: Tiles per forward pass, as for `predict_field`.
        params: The standardized parameters (P,) of a conditioned run, else None.
        progress: Show a progress bar over the steps.

    Returns:
        The sample, float32 (*spatial, C_y) (or (S, *spatial, C_y)); equal to
        `sampling.sample_stack` of the same field and noise to float rounding.
    """
    return field_sampler(model, tile, batch)(field, noise, steps=steps, params=params,
                                             progress=progress)


def field_sampler(model: nnx.Module, tile: int = 64, batch: int = 8):
    """`sample(field, noise, *, steps, params=None, progress=False)`: `sample_field` with
    this model, tile and batch, its tiled predictor made once, for callers that draw many
    samples. `noise` may also be a stack (S, *spatial, C_y): S samples of the field are then
    integrated together, their tiles sharing the network's batches (`field_predictor`),
    and come back as (S, *spatial, C_y), each as it would alone to float rounding.

    Args:
        model: The velocity network of a flow run, periodic.
        tile: As for `predict_field`.
        batch: As for `predict_field`.

    Returns:
        The function `sample(field, noise, *, steps, params=None, progress=False)`.
    """
    predict = field_predictor(model, tile, batch)

    def sample(field: ArrayLike, noise: ArrayLike, *, steps: int,
               params: ArrayLike | None = None, progress: bool = False) -> np.ndarray:
        field, noise = np.asarray(field, np.float32), np.asarray(noise, np.float32)
        stacked = noise.ndim == field.ndim + 1
        stack = noise if stacked else noise[None]
        if stack.shape[1:-1] != field.shape[:-1]:
            raise FieldnetError(f"noise must cover the field {field.shape[:-1]}, got "
                                f"{noise.shape}")
        fields = np.broadcast_to(field, (len(stack), *field.shape))
        params = None if params is None else np.asarray(params, np.float32)[None]
        bar = tqdm(total=2 * sampling.check_steps(steps), desc="network evaluations",
                   disable=not progress)

        def velocity(state, t):
            cond = np.asarray(flow.velocity_cond(params, jnp.reshape(t, (1,))))[0]
            bar.update(1)
            return predict(np.concatenate([fields, np.asarray(state)], axis=-1), params=cond)

        with bar:
            drawn = np.asarray(sampling.heun(velocity, stack, steps), np.float32)
        return drawn if stacked else drawn[0]

    return sample


def _tile_condition(model, params, batch: int) -> np.ndarray | None:
    """A conditioned model's vector, repeated for every tile of a batch."""
    cond_dim = getattr(model, "cond_dim", 0)
    if cond_dim == 0:
        if params is not None:
            raise FieldnetError("params given, but the model is not conditioned on any")
        return None
    if params is None:
        raise FieldnetError(f"the model is conditioned on {cond_dim} parameter(s); pass params")
    params = np.asarray(params, np.float32)
    if params.shape != (cond_dim,) or not np.isfinite(params).all():
        raise FieldnetError(f"params must be {cond_dim} finite numbers, got {params}")
    return np.broadcast_to(params, (batch, cond_dim))


def load_run(workdir) -> tuple[nnx.Module, Normalizer, dict]:
    """The model of a run with its best checkpoint, its normalizer, and what it maps
    (model_io.json, with "objective": "regression" or "flow" (the model is then the
    velocity network), "sample_steps": a flow run's Heun steps in evaluation,
    "input_vectors": which inputs are vector fields, and "provenance": the run, the
    checkpoint step, the config's hash).

    Args:
        workdir: A trained run's folder.

    Returns:
        (model, normalizer, io): the model with the best checkpoint's parameters, the
        run's `Normalizer`, and the dict above.

    Raises:
        FieldnetError: If the folder lacks a file of a trained run.
    """
    workdir = rundir.require(Path(workdir), rundir.CONFIG, rundir.MODEL_IO,
                             rundir.NORMALIZER, rundir.CHECKPOINTS, what="a trained run folder")
    text = rundir.config(workdir).read_text()
    config = rundir.read_config(workdir)
    io = rundir.read_json(rundir.model_io(workdir))
    model = models.build(config.model, rngs=nnx.Rngs(0), in_channels=io["in_channels"],
                         out_channels=io["out_channels"], ndim=io["ndim"],
                         cond_dim=len(io.get("condition_on", [])))
    step = train.restore_params(model, workdir, config.train, best=True)
    io["objective"] = models.objective_of(config.model)
    vectors = parse_names(config.data.get("vector_fields", ""))
    io["input_vectors"] = [name for name in io["input_names"] if name in vectors]
    if io["objective"] == "flow":
        io["sample_steps"] = config.eval.sample_steps
    io["provenance"] = {"run": str(workdir.absolute()), "checkpoint_step": step,
                        "config_sha256": hashlib.sha256(text.encode()).hexdigest()}
    return model, Normalizer.load(rundir.normalizer(workdir)), io


def predict_file(workdir, input_path, output_path, *, fields: str | None = None,
                 tile: int = 64, batch: int = 8, overwrite: bool = False,
                 params: dict[str, float] | None = None, progress: bool = True,
                 samples: int | None = None, steps: int | None = None,
                 seed: int = 0) -> dict:
    """Predicts every sample of `input_path` with a trained run; writes physical units.

    Reads fieldnet-format files (/fields/<name>, a leading sample axis) or any HDF5 dataset
    path (with or without a sample axis), through `FieldSource` and so with its checks.
    A run conditioned on simulation parameters takes them from `params` ({name: value},
    the same for every sample) where given, else from the file's /params. The output is
    written under a temporary name and renamed when complete, so an error leaves nothing
    behind; it may never replace the input file.

    A regression run writes /fields/<target> (M, *spatial) for the file's M maps. A
    generative run (model.objective "flow") draws `samples` samples of each map (`steps`
    Heun steps, default the run's eval.sample_steps; the noise of sample j of map i from
    `sampling.sample_noise(seed, i, ...)`, whole-field, with tiled network evaluations) and
    writes, per target, samples/<target> (M, samples, *spatial) and their mean/<target> and
    std/<target> (M, *spatial), all in the target's physical units. `samples` is required
    for a generative run and refused for a regression one.

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

    Returns:
        A summary: "output" (the path), "samples" (maps predicted), "samples_per_map"
        (None for a regression run), and the run's provenance (run, checkpoint step, config
        hash).

    Raises:
        FieldnetError: On a bad run folder, input file, field, parameter, tile, batch,
            `samples` or `steps`, or an output that would replace the input.
    """
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise FieldnetError(f"--output {output_path} is the input file; write elsewhere")
    model, normalizer, io = load_run(workdir)
    generative = io["objective"] == "flow"
    if samples is not None and not generative:
        raise FieldnetError(f"--samples: {workdir} is a regression run (model.objective="
                            "'regression'); it predicts one field per map, not samples")
    if generative and (isinstance(samples, bool) or not isinstance(samples, int)
                       or samples < 1):
        raise FieldnetError(f"{workdir} is a generative run (model.objective='flow'): pass "
                            f"--samples N (a positive integer), got {samples!r}")
    names = parse_names(fields) if fields else io["input_names"]
    if len(names) != len(io["input_names"]):
        raise FieldnetError(f"the run takes {len(io['input_names'])} input field(s) "
                            f"{io['input_names']}, got {names}")
    vectors = [given for given, name in zip(names, io["input_names"], strict=True)
               if name in io["input_vectors"]]
    source = FieldSource(input_path, names, (), vector_fields=vectors, sample_axis=None,
                         ndim=io["ndim"], default_box_size=io["box_size"])
    try:
        if source.ndim != io["ndim"]:
            raise FieldnetError(f"{input_path}: the run maps {io['ndim']}D fields, the input "
                                f"is {source.ndim}D (shape {source.spatial_shape})")
        n = source.num_samples
        conditions = _conditions(io.get("condition_on", []), params, source, normalizer)
        with h5format.create(output_path, ndim=io["ndim"], box_size=source.box_size,
                             source="fieldnet.inference", overwrite=overwrite) as out:
            out.attrs.update(source_file=str(Path(input_path).absolute()), **io["provenance"])
            if generative:
                _write_samples(out, model, normalizer, io, source, conditions, tile=tile,
                               batch=batch, n_samples=samples, seed=seed,
                               steps=io["sample_steps"] if steps is None else steps,
                               progress=progress)
            else:
                _write_predictions(out, model, normalizer, io, source, conditions, tile=tile,
                                   batch=batch, progress=progress)
            h5format.add_index(out, source.sim_index)
    finally:
        source.close()
    return {"output": str(output_path), "samples": n, "samples_per_map": samples,
            **io["provenance"]}


def _write_predictions(out, model, normalizer, io, source: FieldSource, conditions, *, tile,
                       batch, progress) -> None:
    """Writes a regression run's prediction of each map of `source` into `out`."""
    n, spatial = source.num_samples, source.spatial_shape
    outputs = [h5format.add_field(out, name, (n, *spatial), units=io["target_units"][k],
                                  description=f"predicted by {io['provenance']['run']}")
               for k, name in enumerate(io["target_names"])]
    predict = field_predictor(model, tile, batch)
    for i in tqdm(range(n), desc="maps", disable=not progress or n == 1):
        z = normalizer.forward_channels(io["input_names"], _read_inputs(source, i))
        y = normalizer.inverse_channels(io["target_names"],
                                        predict(z, conditions[i], progress and n == 1))
        for k, dataset in enumerate(outputs):
            dataset[i] = y[..., k]


def _write_samples(out, model, normalizer, io, source: FieldSource, conditions, *, tile,
                   batch, n_samples: int, seed: int, steps: int, progress) -> None:
    """Writes a generative run's samples of each map of `source`, with their mean and
    standard deviation (physical units), into `out`."""
    n, spatial = source.num_samples, source.spatial_shape
    names = io["target_names"]
    write = h5format.add_samples(
        out, names, io["target_units"], n, n_samples, spatial,
        origin=f"drawn by {io['provenance']['run']} ({steps} Heun steps, seed {seed})")
    sample = field_sampler(model, tile, batch)
    # samples integrated together: as many as fill one batch of tiles (one at a time for a
    # field of `batch` tiles or more, so memory stays set by tile and batch)
    together = max(1, batch // tiles_per_field(model, spatial, tile))
    with tqdm(total=n * n_samples, desc="samples", disable=not progress) as bar:
        for i in range(n):
            z = normalizer.forward_channels(io["input_names"], _read_inputs(source, i))
            drawn = []
            for j in range(0, n_samples, together):
                chosen = list(range(j, min(j + together, n_samples)))
                noise = sampling.sample_noise(seed, i, (*spatial, model.out_channels), chosen)
                drawn.extend(normalizer.inverse_channels(
                    names, sample(z, noise, steps=steps, params=conditions[i])))
                bar.update(len(chosen))
            write(i, np.stack(drawn))


def _read_inputs(source: FieldSource, i: int) -> np.ndarray:
    return np.concatenate([source.read_sample(f, i) for f in source.inputs], axis=-1)


def _conditions(names: list[str], given: dict[str, float] | None, source: FieldSource,
                normalizer: Normalizer) -> list[np.ndarray | None]:
    """Per sample, the standardized parameters a conditioned run needs (None each for an
    unconditioned run); a parameter neither given nor in the file is a one-line error."""
    n = source.num_samples
    if not names:
        if given:
            raise FieldnetError(f"--params given, but the run is not conditioned on any "
                                f"(got {sorted(given)})")
        return [None] * n
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise FieldnetError(f"--params {unknown}: the run is conditioned on {names} only")
    in_file = {name: j for j, name in enumerate(source.param_names)}
    missing = [name for name in names if name not in given and name not in in_file]
    if missing:
        raise FieldnetError(f"the run is conditioned on {names}; {missing} missing: pass "
                            f"--params {missing[0]}=VALUE,... or use a file whose /params "
                            "has them")
    values = np.empty((n, len(names)), np.float64)
    for j, name in enumerate(names):
        values[:, j] = given[name] if name in given else source.params[:, in_file[name]]
    return list(normalizer.forward_params(names, values))

