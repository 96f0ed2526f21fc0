"""FiLM conditioning: a per-channel modulation that is the same at every pixel, so the
conditioned models keep their exact symmetries; tiled inference passes the parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, nn, symmetry
from fieldnet.errors import FieldnetError
from fieldnet.inference import predict_field
from tests.float32 import network_tolerance

SIZES = {1: 32, 2: 16, 3: 8}
COND_DIM = 3


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def randomize_films(model, seed=1):
    """A new FiLM is the identity; give every one random output weights, as training would,
    so that the tests see a modulation that really depends on cond."""
    key = jax.random.key(seed)
    for _, module in nnx.iter_graph(model):
        if isinstance(module, nn.FiLM):
            key, k1, k2 = jax.random.split(key, 3)
            module.out.weight[...] = 0.3 * jax.random.normal(k1, module.out.weight.shape)
            module.out.bias[...] = 0.3 * jax.random.normal(k2, module.out.bias.shape)
    return model


def conditioned_unet(ndim, symmetry_="none", seed=0):
    return randomize_films(models.UNet(1, 2, ndim=ndim, width=4, depth=2, symmetry=symmetry_,
                                       cond_dim=COND_DIM, rngs=nnx.Rngs(seed)))


def jitted(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda x, c: nnx.merge(graphdef, state)(x, c))


def inputs(ndim, batch):
    x = jax.random.normal(jax.random.key(0), (batch, *([SIZES[ndim]] * ndim), 1))
    cond = jax.random.normal(jax.random.key(1), (1, COND_DIM))
    return x, jnp.repeat(cond, batch, axis=0)


def test_new_film_is_the_identity_and_checks_its_cond():
    film = nn.FiLM(COND_DIM, 8, rngs=nnx.Rngs(0))
    h = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
    np.testing.assert_array_equal(film(h, jnp.ones((2, COND_DIM))), h)
    with pytest.raises(ValueError, match=r"expected cond of shape \(2, 3\)"):
        film(h, jnp.ones((1, COND_DIM)))


def test_conditioned_output_depends_on_the_parameters():
    m = conditioned_unet(2)
    x, cond = inputs(2, 1)
    assert rel_err(m(x, cond), m(x, -cond)) > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conditioned_unet_commutes_with_periodic_translations(ndim):
    model = conditioned_unet(ndim)
    x, cond = inputs(ndim, 3)
    axes = tuple(range(1, ndim + 1))
    shifts = [tuple(model.stride * (k + a) for a in range(ndim)) for k in (1, 2)]
    ys = jitted(model)(jnp.concatenate([x[:1]] + [jnp.roll(x[:1], s, axes) for s in shifts]),
                       cond)
    for i, s in enumerate(shifts, start=1):
        assert rel_err(ys[i:i + 1], jnp.roll(ys[:1], s, axes)) < network_tolerance(model), s


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [2, 3])
def test_conditioned_dihedral_unet_is_equivariant_under_every_group_element(ndim):
    model = conditioned_unet(ndim, "dihedral")
    elements = symmetry.group_elements(ndim)
    x, cond = inputs(ndim, len(elements))
    ys = jitted(model)(jnp.concatenate([symmetry.apply(x[:1], g) for g in elements]), cond)
    for i, g in enumerate(elements):
        assert rel_err(ys[i:i + 1], symmetry.apply(ys[:1], g)) < network_tolerance(model), g


def test_conditioned_resnet_stays_invariant():
    r = randomize_films(models.ResNet(1, 2, ndim=2, width=4, depth=2, symmetry="dihedral",
                                      flip_invariant=True, cond_dim=COND_DIM,
                                      rngs=nnx.Rngs(0)))
    elements = symmetry.group_elements(2)
    x, cond = inputs(2, len(elements))
    logits = r(jnp.concatenate([symmetry.apply(x[:1], g) for g in elements]), cond)
    bound = network_tolerance(r)  # the images sum in other orders, nothing else
    assert rel_err(logits, jnp.repeat(logits[:1], len(elements), axis=0)) < bound
    assert rel_err(r(-x[:1], cond[:1]), logits[:1]) < bound
    assert rel_err(r(x[:1], -cond[:1]), logits[:1]) > 1e-3


def test_models_refuse_a_missing_or_unexpected_cond():
    m = conditioned_unet(2)
    x, cond = inputs(2, 2)
    with pytest.raises(ValueError, match=r"expected cond of shape \(2, 3\), got None"):
        m(x)
    plain = models.UNet(1, 1, ndim=2, width=4, depth=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="not conditioned"):
        plain(x, cond)
    with pytest.raises(ValueError, match="cond_dim must be an integer"):
        models.UNet(1, 1, ndim=2, width=4, depth=1, cond_dim=-1, rngs=nnx.Rngs(0))


def test_tiled_prediction_of_a_conditioned_model_equals_the_whole_field():
    m = conditioned_unet(2)
    x, cond = inputs(2, 1)
    whole = np.asarray(m(x, cond))[0]
    tiled = predict_field(m, np.asarray(x[0]), tile=8, batch=3, params=np.asarray(cond[0]))
    np.testing.assert_allclose(tiled, whole, rtol=0,
                               atol=network_tolerance(m) * np.abs(whole).max())
    with pytest.raises(FieldnetError, match="pass params"):
        predict_field(m, np.asarray(x[0]), tile=8)
