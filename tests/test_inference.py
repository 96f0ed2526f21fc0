"""Tiled full-field inference equals whole-field inference."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import models
from fieldnet.errors import FieldnetError
from fieldnet.eval.inference import field_predictor, predict_field, tile_plan
from tests.float32 import network_tolerance


def whole(model, field):
    return np.asarray(model(jnp.asarray(field)[None]))[0]


@pytest.mark.slow
@pytest.mark.parametrize("ndim,size,tiles", [(2, 64, (16, 24, 40, 64)), (3, 24, (8, 16))])
def test_tiled_equals_whole_field(ndim, size, tiles):
    model = models.UNet(1, 2, ndim, width=4, depth=2, rngs=nnx.Rngs(0))
    field = np.random.default_rng(0).normal(size=(*([size] * ndim), 1)).astype(np.float32)
    reference = whole(model, field)
    for tile in tiles:
        tiled = predict_field(model, field, tile=tile, batch=3)
        assert tiled.shape == reference.shape
        rel = np.abs(tiled - reference).max() / np.abs(reference).max()
        assert rel <= network_tolerance(model), (tile, rel)  # summation order only


@pytest.mark.slow
def test_axes_one_tile_covers_are_taken_whole():
    """A 16 x 48 field at tile 16: the short axis is taken whole, without a halo, the long
    one in three tiles with theirs; a stack of such fields shares the batches."""
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    fields = np.random.default_rng(1).normal(size=(2, 16, 48, 1)).astype(np.float32)
    for field in fields:
        tiled = predict_field(model, field, tile=16, batch=2)
        reference = whole(model, field)
        bound = network_tolerance(model) * np.abs(reference).max()  # summation order only
        assert np.abs(tiled - reference).max() <= bound
    stacked = field_predictor(model, tile=16, batch=4)(fields)
    assert stacked.shape == (2, 16, 48, 1)
    for field, one in zip(fields, stacked, strict=True):
        np.testing.assert_allclose(one, whole(model, field), rtol=0,
                                   atol=network_tolerance(model) * np.abs(one).max())


def test_tiled_equals_whole_field_on_a_small_map():
    """The fast check of the two above: a 32 x 32 map in four tiles, batched in threes."""
    model = models.UNet(1, 2, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    field = np.random.default_rng(0).normal(size=(32, 32, 1)).astype(np.float32)
    reference = whole(model, field)
    tiled = predict_field(model, field, tile=16, batch=3)
    np.testing.assert_allclose(tiled, reference, rtol=0,  # summation order only
                               atol=network_tolerance(model) * np.abs(reference).max())


def test_tile_plan_covers_the_axis():
    assert tile_plan(64, 24, 4) == [0, 24, 40]
    assert tile_plan(64, 64, 4) == [0]
    with pytest.raises(FieldnetError):
        tile_plan(64, 22, 4)


def test_bad_fields_are_refused():
    model = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    with pytest.raises(FieldnetError, match="not divisible by the model's total stride 4"):
        predict_field(model, np.ones((30, 32, 1)), tile=16)
    with pytest.raises(FieldnetError, match="NaN"):
        predict_field(model, np.full((32, 32, 1), np.nan), tile=16)
    with pytest.raises(FieldnetError, match=r"shape \(\*spatial, 1\)"):
        predict_field(model, np.ones((32, 32)), tile=16)
    zero = models.UNet(1, 1, 2, width=4, depth=2, padding="zero", rngs=nnx.Rngs(0))
    with pytest.raises(FieldnetError, match="periodic"):
        predict_field(zero, np.ones((32, 32, 1)), tile=16)
