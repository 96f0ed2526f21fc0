"""Flow matching (rectified flow): the probability path and the velocity network's interface.

A generative field model turns noise into targets along straight lines. In the normalized
target space (standardized log10 T), with z ~ N(0, 1) per pixel and channel and t in [0, 1],

    x_t = (1 - t) z + t y          the state at time t (`interpolate`): noise at 0, target at 1
    v   = y - z                    its velocity along the line (`target_velocity`)

and a network trained by least squares on v learns E[y - z | x_t, x, t], the velocity whose
ODE dx/dt = v(x_t, t) carries N(0, 1) to the conditional distribution of targets given the
inputs x (`fieldnet.eval.sampling` integrates it).

The velocity network is an ordinary field model (the U-Net): its input is the inputs x and
the state x_t, concatenated on the channel axis in that order (`velocity_inputs`), and its
conditioning vector is the standardized simulation parameters followed by `TIME_FEATURES`
sin/cos features of t (`velocity_cond`), so time enters through the same FiLM layers as the
parameters. FiLM is the same at every pixel, so the velocity network keeps the U-Net's
exact translation and dihedral equivariance, and with it the samples do in distribution.

`fieldnet.objectives` puts these pieces together as the "flow" objective (its network, loss,
sampling and evaluation).
"""

from __future__ import annotations

import jax.numpy as jnp

# Angular frequencies pi * f of the time features: the slowest is half a period over [0, 1],
# so cos(pi t) alone orders all times; faster ones resolve the ends of the path.
TIME_FREQUENCIES = (1, 2, 4, 8)
TIME_FEATURES = 2 * len(TIME_FREQUENCIES)


def time_features(t) -> jnp.ndarray:
    """(B,) times in [0, 1] -> (B, TIME_FEATURES): cos(pi f t), then sin(pi f t), for f in
    `TIME_FREQUENCIES`.

    Args:
        t: Times in [0, 1], shape (B,).

    Returns:
        The features, float32 of shape (B, TIME_FEATURES).
    """
    angles = jnp.pi * jnp.asarray(t, jnp.float32)[:, None] * jnp.asarray(TIME_FREQUENCIES,
                                                                         jnp.float32)
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def velocity_cond(cond, t) -> jnp.ndarray:
    """The velocity network's conditioning vector: the parameters, then the time features.

    Args:
        cond: The standardized parameters (B, P), or None for an unconditioned run.
        t: Times in [0, 1], shape (B,).

    Returns:
        The conditioning vector, shape (B, P + TIME_FEATURES).
    """
    features = time_features(t)
    return features if cond is None else jnp.concatenate(
        [jnp.asarray(cond, jnp.float32), features], axis=-1)


def velocity_inputs(x, state) -> jnp.ndarray:
    """The velocity network's input: the inputs, then the state, on the channel axis.

    Args:
        x: The inputs (B, *spatial, C_x).
        state: The state x_t (B, *spatial, C_y), cast to x's dtype.

    Returns:
        Shape (B, *spatial, C_x + C_y).
    """
    return jnp.concatenate([jnp.asarray(x), jnp.asarray(state, jnp.asarray(x).dtype)], axis=-1)


def interpolate(z, y, t) -> jnp.ndarray:
    """x_t = (1 - t) z + t y for a batch.

    Args:
        z: The noise (B, *spatial, C).
        y: The target (B, *spatial, C).
        t: One time per field, (B,).

    Returns:
        The state x_t, shape (B, *spatial, C).

    Examples:
        >>> import jax.numpy as jnp
        >>> from fieldnet.nn import flow
        >>> z, y = jnp.zeros((2, 4, 1)), jnp.ones((2, 4, 1))
        >>> flow.interpolate(z, y, jnp.array([0.0, 0.25]))[:, 0, 0].tolist()
        [0.0, 0.25]
    """
    t = jnp.reshape(t, (-1,) + (1,) * (jnp.ndim(y) - 1))
    return (1 - t) * z + t * y


def target_velocity(z, y) -> jnp.ndarray:
    """dx_t/dt = y - z, what the velocity network regresses on.

    Args:
        z: The noise.
        y: The target, the same shape.

    Returns:
        y - z.
    """
    return y - z


def network_io(in_channels: int, out_channels: int, cond_dim: int) -> dict[str, int]:
    """The velocity network's channel counts and cond_dim for a field-to-field task.

    Args:
        in_channels: Channels of the task's input.
        out_channels: Channels of the task's target.
        cond_dim: Number of simulation parameters the task is conditioned on (0: none).

    Returns:
        {"in_channels": in_channels + out_channels, "out_channels": out_channels,
        "cond_dim": cond_dim + TIME_FEATURES}.
    """
    return {"in_channels": in_channels + out_channels, "out_channels": out_channels,
            "cond_dim": cond_dim + TIME_FEATURES}
