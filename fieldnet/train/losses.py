"""The registry of training losses that `config.train.loss` names.

A loss is a function `loss(model, batch) -> scalar` of a model and a batch dict (device
arrays; "x" is the input, "y" the target or "label" the class, "cond" the standardized
parameters of a conditioned model; `predict` applies the model either way; "key" a PRNG key
for losses that draw noise, which the train loop derives from (seed, step), so that a
resumed run draws what an uninterrupted one would). Adding one is one function with the
decorator:

    @register_loss("huber")
    def huber(model, batch):
        return optax.huber_loss(model(batch["x"]), batch["y"]).mean()

and `config.train.loss = "huber"` selects it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from fieldnet.nn import flow
from fieldnet.registry import Registry

LossFn = Callable[[nnx.Module, dict], jax.Array]
LOSSES: Registry[LossFn] = Registry("loss", "train.loss")
register_loss = LOSSES.register
get_loss = LOSSES.get


def predict(model: nnx.Module, batch: dict) -> jax.Array:
    """The model's output for a batch, conditioned on batch["cond"] (the standardized
    simulation parameters) when the batch has them.

    Args:
        model: The model.
        batch: A batch dict with "x" and, for a conditioned model, "cond".

    Returns:
        `model(batch["x"])`, or `model(batch["x"], cond=batch["cond"])`.
    """
    if "cond" in batch:
        return model(batch["x"], cond=batch["cond"])
    return model(batch["x"])


@register_loss("mse")
def mse(model: nnx.Module, batch: dict) -> jax.Array:
    """Mean squared error of the prediction against batch["y"], in float32.

    Args:
        model: The model being trained.
        batch: The batch dict (see the module docstring).

    Returns:
        The scalar loss, float32.
    """
    pred = predict(model, batch).astype(jnp.float32)
    return jnp.mean((pred - batch["y"]) ** 2)


@register_loss("cross_entropy")
def cross_entropy(model: nnx.Module, batch: dict) -> jax.Array:
    """Softmax cross-entropy of a classifier's logits against integer batch["label"].

    Args:
        model: The model being trained.
        batch: The batch dict (see the module docstring).

    Returns:
        The scalar loss, float32.
    """
    logits = predict(model, batch).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


@register_loss("flow_matching")
def flow_matching(model: nnx.Module, batch: dict) -> jax.Array:
    """Rectified-flow matching (`fieldnet.nn.flow`): for t ~ U[0, 1) per field and z ~ N(0, 1)
    per pixel, both drawn from batch["key"], the mean squared error of the velocity network
    at x_t = (1 - t) z + t y against y - z, in float32.

    Args:
        model: The velocity network (`objectives.build` with objective "flow").
        batch: The batch dict, with "key" for the draws of t and z.

    Returns:
        The scalar loss, float32.
    """
    y = batch["y"].astype(jnp.float32)
    key_t, key_z = jax.random.split(batch["key"])
    t = jax.random.uniform(key_t, (y.shape[0],))
    z = jax.random.normal(key_z, y.shape)
    state = flow.interpolate(z, y, t)
    velocity = model(flow.velocity_inputs(batch["x"], state),
                     flow.velocity_cond(batch.get("cond"), t)).astype(jnp.float32)
    return jnp.mean((velocity - flow.target_velocity(z, y)) ** 2)
