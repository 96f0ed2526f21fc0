"""The architectural halo equals the measured reach of an impulse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, receptive_field


def measured_halo(model, ndim, size):
    """Widest distance from an output pixel to an input pixel its gradient reaches.

    Float64, because the gradient at the edge of the halo is a product of many small
    weights (~1e-35 in float32 for deep nets) and must not underflow to zero.
    """
    with jax.enable_x64(True):
        graphdef, state = nnx.split(model)
        state = jax.tree.map(lambda a: a.astype(jnp.float64), state)
        x = jax.random.normal(jax.random.key(0), (1, *([size] * ndim), model.in_channels),
                              jnp.float64)
        y, vjp = jax.vjp(lambda x: nnx.merge(graphdef, state)(x), x)
        pixels = np.arange(model.stride) + size // 2
        cotangents = np.zeros((len(pixels), *y.shape))
        cotangents[(np.arange(len(pixels)), 0, *([pixels] * ndim), 0)] = 1
        grads = np.asarray(jax.jit(jax.vmap(vjp))(jnp.asarray(cotangents))[0])[:, 0, ..., 0]
    halo = 0
    for p, grad in zip(pixels, grads, strict=True):
        support = np.abs(grad) > 0
        for axis in range(ndim):
            hit = np.flatnonzero(support.any(axis=tuple(a for a in range(ndim) if a != axis)))
            halo = max(halo, p - hit.min(), hit.max() - p)
    return halo


@pytest.mark.parametrize("ndim,depth,kernel,blocks,size", [
    (1, 0, 3, 1, 32), (1, 1, 3, 1, 64), (1, 3, 3, 1, 256), (1, 2, 5, 2, 256),
    (2, 2, 3, 1, 64), (3, 1, 3, 1, 32),
])
@pytest.mark.slow
def test_halo_matches_impulse_response(ndim, depth, kernel, blocks, size):
    m = models.UNet(1, 1, ndim, width=2, depth=depth, kernel_size=kernel, blocks_per_level=blocks,
                    padding="zero", rngs=nnx.Rngs(0))
    halo = receptive_field(m)
    assert 2 * halo + m.stride < size, "field too small to see the whole halo"
    assert measured_halo(m, ndim, size) == halo


def test_default_unet_halo():
    m = models.UNet(1, 1, 2, width=16, depth=3, rngs=nnx.Rngs(0))
    assert receptive_field(m) == 52


def test_group_norm_has_no_finite_halo():
    m = models.UNet(1, 1, 1, width=2, depth=1, norm="group", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="whole"):
        receptive_field(m)
    with pytest.raises(ValueError, match="globally"):
        receptive_field(models.ResNet(1, 2, 1, width=2, depth=1, rngs=nnx.Rngs(0)))
    assert jnp.isfinite(m(jnp.ones((1, 8, 1)))).all()
