"""The models: exact symmetries (to float32 precision), the field-model interface, and
the refusal of bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, receptive_field, symmetry
from fieldnet.inference import predict_field
from tests.float32 import network_tolerance

SIZES = {1: 32, 2: 16, 3: 8}


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def field(ndim, channels=1, batch=2, seed=0, size=None):
    shape = (batch, *([size or SIZES[ndim]] * ndim), channels)
    return jax.random.normal(jax.random.key(seed), shape)


def jitted(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda x: nnx.merge(graphdef, state)(x))


def unet(ndim, padding="periodic", symmetry_="none", depth=2, kernel_size=3):
    return models.UNet(in_channels=1, out_channels=2, ndim=ndim, width=4, depth=depth,
                       padding=padding, symmetry=symmetry_, kernel_size=kernel_size,
                       rngs=nnx.Rngs(0))


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_periodic_unet_commutes_with_translations_by_the_stride(ndim):
    model = unet(ndim)
    m = jitted(model)
    x = field(ndim, batch=1)
    axes = tuple(range(1, ndim + 1))
    shifts = [tuple(model.stride * (k + a) for a in range(ndim)) for k in (1, 2, 3)]
    ys = m(jnp.concatenate([x] + [jnp.roll(x, s, axes) for s in shifts]))
    for i, s in enumerate(shifts, start=1):
        assert rel_err(ys[i:i + 1], jnp.roll(ys[:1], s, axes)) < network_tolerance(model), s


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_zero_padding_breaks_translation_equivariance(ndim):
    m = unet(ndim, padding="zero")
    x = field(ndim)
    axes = tuple(range(1, ndim + 1))
    shift = (m.stride,) * ndim
    assert rel_err(m(jnp.roll(x, shift, axes)), jnp.roll(m(x), shift, axes)) > 1e-2


@pytest.mark.slow
def test_shift_off_the_stride_is_not_exact():
    """Equivariance holds for multiples of the total stride, not for every shift."""
    m = unet(2)
    x = field(2)
    assert rel_err(m(jnp.roll(x, 1, 1)), jnp.roll(m(x), 1, 1)) > 1e-3


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("padding", ["periodic", "zero"])
def test_dihedral_unet_is_equivariant_under_every_group_element(ndim, padding):
    model = unet(ndim, padding, "dihedral")
    m = jitted(model)
    x = field(ndim, batch=1)
    elements = symmetry.group_elements(ndim)
    assert len(elements) == {1: 2, 2: 8, 3: 48}[ndim]
    ys = m(jnp.concatenate([symmetry.apply(x, g) for g in elements]))
    for i, g in enumerate(elements):
        assert rel_err(ys[i:i + 1], symmetry.apply(ys[:1], g)) < network_tolerance(model), g


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_dihedral_unet_with_odd_kernels_is_equivariant(ndim, kernel_size):
    model = unet(ndim, symmetry_="dihedral", depth=1, kernel_size=kernel_size)
    m = jitted(model)
    x = field(ndim, batch=1)
    elements = symmetry.group_elements(ndim)
    ys = m(jnp.concatenate([symmetry.apply(x, g) for g in elements]))
    for i, g in enumerate(elements):
        assert rel_err(ys[i:i + 1], symmetry.apply(ys[:1], g)) < network_tolerance(model), g


@pytest.mark.parametrize("model_cls", [models.UNet, models.ResNet])
@pytest.mark.parametrize("padding", ["periodic", "zero"])
@pytest.mark.parametrize("kernel_size", [2, 4])
def test_dihedral_models_refuse_even_kernels(model_cls, padding, kernel_size):
    """An even kernel's centre sits half a pixel off the grid; with kernel 4 the U-Net's
    rotation error would be of order one, so the models refuse it."""
    with pytest.raises(ValueError, match=f"odd kernel_size.*got kernel_size={kernel_size}"):
        model_cls(1, 2, 2, width=2, depth=1, padding=padding, symmetry="dihedral",
                  kernel_size=kernel_size, rngs=nnx.Rngs(0))


def test_even_kernels_without_symmetry_stay_translation_equivariant():
    model = unet(2, depth=1, kernel_size=4)
    x = field(2, batch=1)
    ys = jitted(model)(jnp.concatenate([x, jnp.roll(x, model.stride, 1)]))
    assert rel_err(ys[1:], jnp.roll(ys[:1], model.stride, 1)) < network_tolerance(model)


@pytest.mark.parametrize("model_cls", [models.UNet, models.ResNet])
@pytest.mark.parametrize("name,value,expected", [
    ("in_channels", 0, "in_channels must be a positive integer, got 0"),
    ("in_channels", -2, "in_channels must be a positive integer, got -2"),
    ("width", 0, "width must be a positive integer, got 0"),
    ("width", 2.5, "width must be a positive integer, got 2.5"),
    ("kernel_size", 0, "kernel_size must be a positive integer, got 0"),
    ("blocks_per_level", 0, "blocks_per_level must be a positive integer, got 0"),
    ("channel_mult", (1, 0), r"channel_mult entries must be positive integers, got \(1, 0\)"),
    ("channel_mult", (1, 2, 4), r"channel_mult needs one entry per resolution, 2 in all"),
    ("dropout", 1.0, r"dropout must be a rate in \[0, 1\), got 1.0"),
])
def test_bad_sizes_name_the_argument(model_cls, name, value, expected):
    # Two resolutions either way: a U-Net of depth 1, a ResNet of two stages.
    depth, second = (1, "out_channels") if model_cls is models.UNet else (2, "num_classes")
    args = {"in_channels": 1, second: 1, "ndim": 2, "width": 2, "depth": depth, name: value}
    with pytest.raises(ValueError, match=expected):
        model_cls(**args, rngs=nnx.Rngs(0))


def test_bad_output_sizes_and_depths_name_the_argument():
    with pytest.raises(ValueError, match="out_channels must be a positive integer, got 0"):
        models.UNet(1, 0, 2, width=2, depth=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        models.ResNet(1, 0, 2, width=2, depth=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"depth must be an integer ≥ 0 .*got -1"):
        models.UNet(1, 1, 2, width=2, depth=-1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        models.ResNet(1, 2, 2, width=2, depth=0, rngs=nnx.Rngs(0))


def test_unet_is_a_field_model_and_resnet_is_not():
    assert isinstance(unet(2), models.FieldModel)
    resnet = models.ResNet(1, 2, 2, width=2, depth=1, rngs=nnx.Rngs(0))
    assert not isinstance(resnet, models.FieldModel)
    assert models.missing_members(resnet) == ["out_channels", "padding", "input_interval"]
    with pytest.raises(ValueError, match="FieldModel.*lacks out_channels, padding"):
        predict_field(resnet, np.ones((8, 8, 1), np.float32), tile=8)


class PeriodicSmoother(nnx.Module):
    """The smallest field model of one's own: a learned mix of each pixel and its two
    neighbours along every axis, with periodic wrap-around."""

    def __init__(self, channels: int, ndim: int, *, rngs: nnx.Rngs):
        self.ndim, self.in_channels, self.out_channels = ndim, channels, channels
        self.stride, self.padding, self.cond_dim = 1, "periodic", 0
        self.weights = nnx.Param(jax.random.normal(rngs.params(), (2,)))

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        return lo - 1, hi + 1

    def __call__(self, x, cond=None):
        centre, side = self.weights[...]
        axes = range(1, self.ndim + 1)
        return centre * x + side * sum(jnp.roll(x, s, a) for a in axes for s in (-1, 1))


def test_a_model_of_ones_own_works_with_receptive_field_and_tiled_inference():
    model = PeriodicSmoother(2, ndim=2, rngs=nnx.Rngs(0))
    assert isinstance(model, models.FieldModel)
    assert receptive_field(model) == 1
    x = np.asarray(field(2, channels=2, batch=1))[0]
    tiled = predict_field(model, x, tile=4, batch=3)
    np.testing.assert_allclose(tiled, np.asarray(model(jnp.asarray(x)[None]))[0], atol=1e-6)


def test_receptive_field_refuses_models_without_input_interval():
    resnet = models.ResNet(1, 2, 1, width=2, depth=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="ResNet pools globally"):
        receptive_field(resnet)


@pytest.mark.parametrize("ndim", [2, pytest.param(3, marks=pytest.mark.slow)])
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
        assert rel_err(logits[i], logits[0]) < network_tolerance(model), i


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


@pytest.mark.slow
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
