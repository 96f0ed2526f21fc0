"""Exact symmetries of the models, checked to float32 precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, symmetry

SIZES = {1: 32, 2: 16, 3: 8}


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def field(ndim, channels=1, batch=2, seed=0, size=None):
    shape = (batch, *([size or SIZES[ndim]] * ndim), channels)
    return jax.random.normal(jax.random.key(seed), shape)


def jitted(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda x: nnx.merge(graphdef, state)(x))


def unet(ndim, padding="periodic", symmetry_="none", depth=2):
    return models.UNet(in_channels=1, out_channels=2, ndim=ndim, width=4, depth=depth,
                       padding=padding, symmetry=symmetry_, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_periodic_unet_commutes_with_translations_by_the_stride(ndim):
    model = unet(ndim)
    m = jitted(model)
    x = field(ndim, batch=1)
    axes = tuple(range(1, ndim + 1))
    shifts = [tuple(model.stride * (k + a) for a in range(ndim)) for k in (1, 2, 3)]
    ys = m(jnp.concatenate([x] + [jnp.roll(x, s, axes) for s in shifts]))
    for i, s in enumerate(shifts, start=1):
        assert rel_err(ys[i:i + 1], jnp.roll(ys[:1], s, axes)) < 1e-5, s


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_zero_padding_breaks_translation_equivariance(ndim):
    m = unet(ndim, padding="zero")
    x = field(ndim)
    axes = tuple(range(1, ndim + 1))
    shift = (m.stride,) * ndim
    assert rel_err(m(jnp.roll(x, shift, axes)), jnp.roll(m(x), shift, axes)) > 1e-2


def test_shift_off_the_stride_is_not_exact():
    """Equivariance holds for multiples of the total stride, not for every shift."""
    m = unet(2)
    x = field(2)
    assert rel_err(m(jnp.roll(x, 1, 1)), jnp.roll(m(x), 1, 1)) > 1e-3


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("padding", ["periodic", "zero"])
def test_dihedral_unet_is_equivariant_under_every_group_element(ndim, padding):
    m = jitted(unet(ndim, padding, "dihedral"))
    x = field(ndim, batch=1)
    elements = symmetry.group_elements(ndim)
    assert len(elements) == {1: 2, 2: 8, 3: 48}[ndim]
    ys = m(jnp.concatenate([symmetry.apply(x, g) for g in elements]))
    for i, g in enumerate(elements):
        assert rel_err(ys[i:i + 1], symmetry.apply(ys[:1], g)) < 1e-5, g


@pytest.mark.parametrize("ndim", [2, 3])
def test_unconstrained_unet_is_not_rotation_equivariant(ndim):
    m = unet(ndim)
    x = field(ndim)
    g = symmetry.group_elements(ndim)[-1]
    assert rel_err(m(symmetry.apply(x, g)), symmetry.apply(m(x), g)) > 1e-2


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dihedral_resnet_is_invariant(ndim):
    model = models.ResNet(in_channels=1, num_classes=3, ndim=ndim, width=4, depth=2,
                          padding="periodic", symmetry="dihedral", rngs=nnx.Rngs(1))
    m = jitted(model)
    x = field(ndim, batch=1)
    elements = symmetry.group_elements(ndim)
    axes = tuple(range(1, ndim + 1))
    images = [symmetry.apply(x, g) for g in elements]
    images.append(jnp.roll(x, (model.stride,) * ndim, axes))
    logits = m(jnp.concatenate(images))
    for i in range(1, len(images)):
        assert rel_err(logits[i], logits[0]) < 1e-5, i


def test_flip_invariant_resnet():
    m = models.ResNet(1, 2, 2, width=4, depth=2, flip_invariant=True, rngs=nnx.Rngs(2))
    x = field(2)
    np.testing.assert_allclose(m(-x), m(x), rtol=1e-6, atol=1e-6)
    plain = models.ResNet(1, 2, 2, width=4, depth=2, rngs=nnx.Rngs(2))
    assert rel_err(plain(-x), plain(x)) > 1e-3


@pytest.mark.parametrize("bad_shape", [(2, 16, 16), (2, 16, 16, 3), (2, 18, 16, 1)])
def test_bad_input_names_expected_shape(bad_shape):
    m = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, H, W, 1\).*by 4"):
        m(jnp.zeros(bad_shape))


def test_global_residual_and_config_build():
    import ml_collections

    cfg = ml_collections.ConfigDict(dict(name="unet", in_channels=1, out_channels=1, ndim=2,
                                         width=4, depth=2, padding="periodic", symmetry="none",
                                         global_residual=True))
    m = models.build(cfg, rngs=nnx.Rngs(0))
    assert isinstance(m, models.UNet) and m.global_residual
    with pytest.raises(ValueError, match="unknown model config keys"):
        cfg.wdth = 3
        models.build(cfg, rngs=nnx.Rngs(0))
    r = models.build(ml_collections.ConfigDict(dict(name="resnet", in_channels=1, num_classes=2,
                                                    ndim=2, width=4, depth=2)), rngs=nnx.Rngs(0))
    assert r(field(2)).shape == (2, 2)


def test_bfloat16_compute_keeps_float32_params_and_output():
    m = models.UNet(1, 1, 2, width=4, depth=2, dtype="bfloat16", rngs=nnx.Rngs(0))
    x = field(2)
    y = m(x)
    assert y.dtype == jnp.float32
    assert m.stem.weight[...].dtype == jnp.float32
    ref = models.UNet(1, 1, 2, width=4, depth=2, rngs=nnx.Rngs(0))(x)
    # bf16 rounds each value to 2**-8 relative; the longest path has 16 rounded layers.
    rms_rel = float(jnp.sqrt(jnp.mean((y - ref) ** 2) / jnp.mean(ref**2)))
    assert 0 < rms_rel < 16 * 2.0**-8
