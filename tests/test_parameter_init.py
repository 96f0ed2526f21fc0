"""Parameter initialisation: the same numbers as one `jax.random.truncated_normal` per
parameter, and a pure function of the seed."""

import jax
import numpy as np
import pytest
from flax import nnx

from fieldnet import models
from fieldnet.nn import layers


def params(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize("shape", [(1, 3), (3, 16), (63, 65), (64, 64), (4097, 1),
                                   (8, 40)])
def test_a_weight_is_jax_truncated_normal_draw_bit_for_bit(shape):
    """A layer's weight is the draw `jax.random.truncated_normal` makes for its shape from
    the layer's key, scaled by 1/sqrt(fan_in): also for sizes around the 4096 values that
    the initialisation draws together (4095 = 63 x 65, 4096, 4097)."""
    mixer = layers.ChannelMixer(*shape, rngs=nnx.Rngs(7))
    draw = np.asarray(jax.random.truncated_normal(nnx.Rngs(7).params(), -2, 2, shape))
    want = np.float32(1 / np.sqrt(shape[0])) * draw
    got = np.asarray(mixer.weight[...])
    assert got.shape == shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_building_is_deterministic_per_seed():
    def build(seed):
        return params(models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(seed)))

    first, again, other = build(0), build(0), build(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    weights = [(a, b) for a, b in zip(first, other, strict=True) if a.std() > 0]
    assert weights and not any(np.array_equal(a, b) for a, b in weights)


@pytest.mark.slow
def test_model_weights_are_one_draw_per_parameter():
    """Each weight of a U-Net is `jax.random.truncated_normal` of its own shape, from one of
    the keys its Rngs hands out, scaled by 1/sqrt(its fan-in): the fast initialisation
    draws the same numbers as one draw per parameter."""
    model = models.UNet(1, 2, 2, width=3, depth=1, rngs=nnx.Rngs(5))
    weights = [p for p in params(model) if p.ndim >= 2]
    rngs = nnx.Rngs(5)  # at most one key per parameter
    keys = jax.numpy.stack([rngs.params() for _ in range(len(params(model)))])
    draw = jax.jit(jax.vmap(lambda key, shape: jax.random.truncated_normal(key, -2, 2, shape),
                            in_axes=(0, None)), static_argnums=1)  # every key, one shape
    assert weights
    for weight in weights:
        fan_ins = {int(np.prod(weight.shape[:-1])), weight.shape[-2]}  # a conv's, a mixer's
        draws = np.asarray(draw(keys, weight.shape))
        assert any(np.array_equal(weight, np.float32(1 / np.sqrt(f)) * d)
                   for f in fan_ins for d in draws), weight.shape
