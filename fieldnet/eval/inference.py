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

This module is the home of tiled inference of a model; a trained run's (`open_run`,
`predict_file`) is `fieldnet.inference`, which re-exports `predict_field`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from fieldnet import models
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
    return nnx.merge(graphdef, state)(x, cond)


def jitted_forward(model: nnx.Module):
    """`model(x, cond)` (cond None for a model that is not conditioned) in eval mode (dropout
    off) as one jitted function of x and cond. The compiled code
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
    cond_dim = model.cond_dim
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
