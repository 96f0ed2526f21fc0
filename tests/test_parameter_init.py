"""Parameter initialisation: fast (a few compilations per model, not one per shape), the same
numbers as one `jax.random.truncated_normal` per parameter, and a pure function of the seed."""

import jax
import numpy as np
import pytest
from flax import nnx

from fieldnet import models
from fieldnet.nn import layers


def params(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize("shape", [(3,), (3, 3, 1, 16), (4095,), (4096,), (4097,),
                                   (2, 2, 2, 8, 40)])
def test_truncated_normal_is_jax_draw_bit_for_bit(shape):
    key = jax.random.fold_in(jax.random.key(7), 3)
    want = np.asarray(jax.random.truncated_normal(key, -2, 2, shape))
    got = layers._truncated_normal(key, shape)
    assert got.shape == shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_building_is_deterministic_per_seed():
    def build(seed):
        return params(models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(seed)))

    first, again, other = build(0), build(0), build(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    weights = [(a, b) for a, b in zip(first, other, strict=True) if a.std() > 0]
    assert weights and not any(np.array_equal(a, b) for a, b in weights)


def test_model_parameters_equal_one_draw_per_parameter(monkeypatch):
    fast = params(models.UNet(1, 2, 2, width=3, depth=1, rngs=nnx.Rngs(5)))
    monkeypatch.setattr(layers, "_truncated_normal", lambda key, shape: np.asarray(
        jax.random.truncated_normal(key, -2, 2, shape)))
    direct = params(models.UNet(1, 2, 2, width=3, depth=1, rngs=nnx.Rngs(5)))
    assert len(fast) == len(direct)
    for a, b in zip(fast, direct, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
