"""Samples of a flow-matching run: the ODE dx/dt = v(x, t) of its velocity network
(`fieldnet.nn.flow`), integrated from noise at t = 0 to a target at t = 1 by Heun's method
on a fixed grid of `steps` equal steps (two network evaluations each, second order).

    noise = sample_noise(seed=0, index=i, shape=(*spatial, C_y), samples=8)
    samples = sample_stack(model, x, noise[None], steps=20)      # whole fields, batched

Everything is deterministic given the noise, and the noise given (seed, index, sample).
`fieldnet.eval.inference.sample_field` samples one big field with every network
evaluation tiled exactly and the noise drawn for the whole field, so its samples equal
those of `sample_stack` to float rounding. Samples live in the normalized target space.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from fieldnet.errors import FieldnetError
from fieldnet.nn import flow


def check_steps(steps) -> int:
    """Checks a number of ODE steps.

    Args:
        steps: The number of ODE steps.

    Returns:
        It as an int.

    Raises:
        FieldnetError: If `steps` is not a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise FieldnetError(f"the number of ODE steps must be a positive integer, got {steps!r}")
    return int(steps)


def time_at(k, steps: int):
    """t_k = k / steps in float32, the same number on the host and in compiled code.

    Args:
        k: The step index (an int or a traced integer).
        steps: The number of steps.

    Returns:
        t_k, a float32 scalar.
    """
    return jnp.asarray(k, jnp.float32) / jnp.float32(steps)


def heun_step(velocity: Callable, x, t, dt):
    """One step of Heun's method (the explicit trapezoidal rule) for dx/dt = velocity(x, t).

    Args:
        velocity: `velocity(x, t)`.
        x: The state at t.
        t: The time.
        dt: The step.

    Returns:
        The state at t + dt.
    """
    v0 = velocity(x, t)
    v1 = velocity(x + dt * v0, t + dt)
    return x + 0.5 * dt * (v0 + v1)


def heun(velocity: Callable, x0, steps: int):
    """x(1) of dx/dt = velocity(x, t), x(0) = x0, by `steps` Heun steps of dt = 1 / steps;
    `velocity(x, t)` gets t as a float32 scalar. Exact for a velocity linear in t alone;
    error O(dt^2) in general.

    Args:
        velocity: `velocity(x, t)`.
        x0: The state at t = 0.
        steps: The number of steps, a positive integer.

    Returns:
        The state at t = 1.

    Raises:
        FieldnetError: If `steps` is not a positive integer.

    Examples:
        >>> import numpy as np
        >>> from fieldnet.eval.sampling import heun
        >>> float(heun(lambda x, t: 2 * t, np.float32(0.0), steps=4))   # x(1) = 1
        1.0
    """
    steps = check_steps(steps)
    x, dt = x0, time_at(1, steps)
    for k in range(steps):
        x = heun_step(velocity, x, time_at(k, steps), dt)
    return x


@functools.partial(jax.jit, static_argnums=0)
def _noise(shape: tuple[int, ...], key, samples):
    return jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), shape))(samples)


def sample_noise(seed: int, index: int, shape: Sequence[int],
                 samples: int | Sequence[int]) -> np.ndarray:
    """The starting noise of samples `samples` (a count n: samples 0..n-1) of field `index`:
    (len(samples), *shape) float32, N(0, 1). Sample j is drawn from
    fold_in(fold_in(key(seed), index), j) for the whole field at once, so it does not depend
    on which other samples or fields are drawn or on how the field is tiled later.

    Args:
        seed: The run's sampling seed.
        index: The field's index (a test map, or a map of the input file).
        shape: The shape of one sample, (*spatial, C_y).
        samples: A count n (samples 0..n-1), or the indices of the samples to draw.

    Returns:
        The noise, float32 of shape (len(samples), *shape).
    """
    chosen = np.arange(samples) if isinstance(samples, int | np.integer) else np.asarray(samples)
    key = jax.random.fold_in(jax.random.key(seed), index)
    return np.asarray(_noise(tuple(int(s) for s in shape), key, jnp.asarray(chosen, jnp.int32)))


def _velocity(model, x, cond):
    """v(state, t) of the velocity network for inputs x (B, *spatial, C_x)."""
    return lambda state, t: model(flow.velocity_inputs(x, state),
                                  flow.velocity_cond(cond, jnp.full((len(x),), t)))


@functools.partial(jax.jit, static_argnums=(0, 5))
def _integrate(graphdef, state, x, cond, noise, steps: int):
    velocity = _velocity(nnx.merge(graphdef, state), x, cond)
    dt = time_at(1, steps)
    return jax.lax.fori_loop(0, steps, lambda k, s: heun_step(velocity, s, time_at(k, steps), dt),
                             noise)


def sample_stack(model: nnx.Module, x: ArrayLike, noise: ArrayLike, *, steps: int,
                 cond: ArrayLike | None = None, batch_size: int = 8,
                 progress: bool = False) -> np.ndarray:
    """Samples for a stack of whole fields, integrated a batch of trajectories at a time.

    Args:
        model: The velocity network (`objectives.build` with objective "flow").
        x: Inputs (N, *spatial, C_x), normalized.
        noise: Starting noise (N, S, *spatial, C_y): S samples of each field.
        steps: Heun steps from t = 0 to 1.
        cond: Standardized parameters (N, P) of a conditioned run, else None.
        batch_size: Trajectories per compiled call (the last batch is padded).
        progress: Show a progress bar over the batches.

    Returns:
        The samples, float32 (N, S, *spatial, C_y).
    """
    steps = check_steps(steps)
    x, noise = np.asarray(x, np.float32), np.asarray(noise, np.float32)
    if noise.ndim != x.ndim + 1 or noise.shape[0] != x.shape[0] or \
            noise.shape[2:-1] != x.shape[1:-1]:
        raise FieldnetError(f"noise must be (N, S, *spatial, C_y) for inputs {x.shape}, "
                            f"got {noise.shape}")
    n, s = noise.shape[:2]
    flat_x = np.repeat(x, s, axis=0)
    flat_noise = noise.reshape(n * s, *noise.shape[2:])
    flat_cond = None if cond is None else np.repeat(np.asarray(cond, np.float32), s, axis=0)
    model.eval()
    graphdef, state = nnx.split(model)
    out = np.empty_like(flat_noise)
    for i in tqdm(range(0, n * s, batch_size), desc="samples", unit="batch",
                  disable=not progress):
        part = slice(i, min(i + batch_size, n * s))
        pad = batch_size - (part.stop - part.start)
        xs, zs = (np.concatenate([a[part], np.zeros((pad, *a.shape[1:]), a.dtype)])
                  for a in (flat_x, flat_noise))
        cs = None if flat_cond is None else np.concatenate(
            [flat_cond[part], np.zeros((pad, flat_cond.shape[1]), np.float32)])
        out[part] = np.asarray(_integrate(graphdef, state, xs, cs, zs, steps))[:batch_size - pad]
    return out.reshape(noise.shape)
