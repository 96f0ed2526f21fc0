"""Flow matching: the velocity network, its loss, the Heun sampler, exact tiling of the
sampler and equivariance of the samples in distribution."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, objectives, symmetry, train
from fieldnet.errors import FieldnetError
from fieldnet.eval import sampling
from fieldnet.eval.inference import sample_field
from fieldnet.nn import flow
from tests.float32 import EPS, heun_evaluations, network_tolerance
from tests.test_film import randomize_films

SIZES = {2: 16, 3: 8}


def flow_config(**overrides):
    c = ml_collections.ConfigDict({"name": "unet", "width": 4, "depth": 2, "objective": "flow"})
    c.update(overrides)
    return c


def velocity_network(ndim=2, cond_dim=0, seed=0, **overrides):
    """A velocity network whose FiLM layers (time included) really modulate, as training
    makes them."""
    model = objectives.build(flow_config(**overrides), rngs=nnx.Rngs(seed), in_channels=1,
                             out_channels=1, ndim=ndim, cond_dim=cond_dim)
    return randomize_films(model, seed + 1)


def inputs(ndim, n=1, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *[SIZES[ndim]] * ndim, 1)).astype(
        np.float32)


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def test_velocity_network_takes_the_state_and_the_time():
    m = objectives.build(flow_config(), rngs=nnx.Rngs(0), in_channels=2, out_channels=1,
                         ndim=2, cond_dim=3)
    assert (m.in_channels, m.out_channels, m.cond_dim) == (3, 1, 3 + flow.TIME_FEATURES)
    plain = objectives.build(flow_config(objective="regression"), rngs=nnx.Rngs(0),
                             in_channels=2, out_channels=1, ndim=2, cond_dim=3)
    assert (plain.in_channels, plain.cond_dim) == (2, 3)
    with pytest.raises(ValueError, match="model.objective must be one of"):
        objectives.build(flow_config(objective="diffusion"), rngs=nnx.Rngs(0), in_channels=1,
                         out_channels=1, ndim=2)
    with pytest.raises(ValueError, match="needs model.name='unet'"):
        objectives.build(flow_config(name="resnet"), rngs=nnx.Rngs(0), in_channels=1,
                         out_channels=1, ndim=2)


def test_time_features_tell_every_time_apart():
    t = jnp.linspace(0, 1, 101)
    f = np.asarray(flow.time_features(t))
    assert f.shape == (101, flow.TIME_FEATURES)
    assert np.all(np.diff(f[:, 0]) < 0)    # cos(pi t) falls monotonically over [0, 1]
    np.testing.assert_allclose(flow.interpolate(jnp.zeros((2, 4, 1)), jnp.ones((2, 4, 1)),
                                                jnp.array([0.25, 1.0]))[:, 0, 0], [0.25, 1.0])


def loss_batch(seed=0, with_cond=False):
    rng = np.random.default_rng(seed)
    batch = {"x": jnp.asarray(rng.normal(size=(4, 8, 8, 1)), jnp.float32),
             "y": jnp.asarray(rng.normal(size=(4, 8, 8, 1)), jnp.float32),
             "key": jax.random.key(seed)}
    if with_cond:
        batch["cond"] = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
    return batch


@pytest.mark.slow
@pytest.mark.parametrize("with_cond", [False, True])
def test_flow_matching_loss_is_a_finite_scalar_drawn_from_the_key(with_cond):
    model = velocity_network(cond_dim=2 if with_cond else 0)
    loss = train.get_loss("flow_matching")
    batch = loss_batch(with_cond=with_cond)
    value = loss(model, batch)
    assert value.shape == () and value.dtype == jnp.float32 and np.isfinite(value)
    assert loss(model, batch) == value
    assert loss(model, {**batch, "key": jax.random.key(1)}) != value
    # Of order E|y - z|^2 = 2 for an untrained network on unit-variance data.
    assert 0.5 < float(value) < 10


def one_step_params(loss_name, seed, model):
    """Parameters after one training step of `model` on a fixed batch with noise `seed`."""
    cfg = train.default_config()
    _, replicated = train.data_mesh()
    graphdef, eval_graphdef, state = train.split_model(model)
    tx = train.optimizer(cfg)
    state["opt_state"] = tx.init(state["params"])
    fns = train.step_functions(graphdef, eval_graphdef, tx, train.get_loss(loss_name),
                               replicated, seed)
    batch = {k: v for k, v in loss_batch().items() if k != "key"}
    window = train.loop.empty_window()
    state, _, loss, _ = fns.train(state, batch, window, 3)
    return jax.tree.leaves(state["params"]), float(loss)


@pytest.mark.slow
def test_the_loss_noise_changes_flow_training_and_leaves_regression_alone():
    regression = [one_step_params("mse", seed, models.UNet(1, 1, 2, width=4, depth=1,
                                                             rngs=nnx.Rngs(0)))
                  for seed in (0, 1)]
    for a, b in zip(regression[0][0], regression[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    flows = [one_step_params("flow_matching", seed, velocity_network(depth=1))
             for seed in (0, 1)]
    assert flows[0][1] != flows[1][1]


def test_heun_is_exact_for_a_velocity_linear_in_time():
    """dx/dt = a + b t: the trapezoidal rule integrates it exactly, x(1) = x0 + a + b / 2."""
    x0, a, b = np.float32(0.3), np.float32(-1.25), np.float32(2.5)
    for steps in (1, 3, 20):
        x1 = sampling.heun(lambda x, t: a + b * t, x0, steps)
        # each step rounds a few float32 operations on values of order |a| + |b|
        bound = 4 * steps * EPS * float(abs(x0) + abs(a) + abs(b))
        assert float(x1) == pytest.approx(x0 + a + b / 2, abs=bound)


def test_heun_solves_linear_growth_to_second_order():
    """dx/dt = lam x: x(1) = x0 exp(lam). Each Heun step multiplies by 1 + h lam + (h lam)^2 / 2
    exactly, and the error against the analytic solution falls 4x per halving of h."""
    lam, x0 = -1.5, np.ones(3, np.float32)
    errors = []
    for steps in (10, 20, 40, 80):
        x1 = np.asarray(sampling.heun(lambda x, t: lam * x, x0, steps))
        h = 1 / steps
        # four float32 roundings per step, each within EPS / 2 relative, over `steps` steps
        np.testing.assert_allclose(x1, (1 + h * lam + (h * lam) ** 2 / 2) ** steps,
                                   rtol=2 * steps * EPS)
        errors.append(abs(x1[0] - np.exp(lam)))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.6) & (ratios < 4.4)), ratios
    assert errors[-1] < 3e-5


@pytest.mark.slow
def test_sampling_is_deterministic_given_the_seed():
    model = velocity_network()
    x = inputs(2, 2)
    noise = np.stack([sampling.sample_noise(7, i, x.shape[1:], 3) for i in range(2)])
    again = np.stack([sampling.sample_noise(7, i, x.shape[1:], 3) for i in range(2)])
    np.testing.assert_array_equal(noise, again)
    # sample j of map i does not depend on which others are drawn
    np.testing.assert_array_equal(sampling.sample_noise(7, 1, x.shape[1:], [2])[0], noise[1, 2])
    assert not np.allclose(sampling.sample_noise(8, 0, x.shape[1:], 1)[0], noise[0, 0])
    first = sampling.sample_stack(model, x, noise, steps=3, batch_size=4)
    np.testing.assert_array_equal(first, sampling.sample_stack(model, x, noise, steps=3,
                                                               batch_size=4))
    assert first.shape == noise.shape and np.isfinite(first).all()
    assert rel_err(first[0, 0], first[0, 1]) > 0.1     # different noise, different samples
    # batching and padding the trajectories does not change them
    bound = network_tolerance(model, heun_evaluations(3))  # summation order only
    assert rel_err(sampling.sample_stack(model, x, noise, steps=3, batch_size=5), first) < bound


@pytest.mark.slow
@pytest.mark.parametrize("ndim,size,tile,depth", [(2, 32, 8, 2), (2, 32, 12, 2), (3, 8, 4, 1)])
def test_tiled_sampling_equals_whole_field_sampling(ndim, size, tile, depth):
    model = velocity_network(ndim, cond_dim=2, depth=depth)
    rng = np.random.default_rng(0)
    field = rng.normal(size=(*[size] * ndim, 1)).astype(np.float32)
    params = rng.normal(size=2).astype(np.float32)
    noise = sampling.sample_noise(0, 0, field.shape, 1)[0]
    whole = sampling.sample_stack(model, field[None], noise[None, None], steps=3,
                                  cond=params[None], batch_size=1)[0, 0]
    tiled = sample_field(model, field, noise, steps=3, tile=tile, batch=3, params=params)
    assert tiled.shape == whole.shape
    bound = network_tolerance(model, heun_evaluations(3))  # summation order only
    assert rel_err(tiled, whole) < bound
    # several samples integrated together, their tiles sharing batches: each as alone
    noises = sampling.sample_noise(0, 0, field.shape, 3)
    together = sample_field(model, field, noises, steps=3, tile=tile, batch=5, params=params)
    assert together.shape == noises.shape
    assert rel_err(together[0], whole) < bound
    for j in (1, 2):
        alone = sample_field(model, field, noises[j], steps=3, tile=tile, batch=3,
                             params=params)
        assert rel_err(together[j], alone) < bound
    assert rel_err(together[1], together[2]) > 0.1


@pytest.mark.slow
def test_samples_commute_with_periodic_translations():
    """Moving the input and the noise together by multiples of the stride moves the sample:
    the samples' distribution is translation equivariant, exactly."""
    model = velocity_network(2)
    x = inputs(2, 1)
    noise = sampling.sample_noise(0, 0, x.shape[1:], 1)
    shifts = [(4, 0), (8, 12)]
    xs = np.concatenate([x] + [np.roll(x, s, (1, 2)) for s in shifts])
    zs = np.stack([noise] + [np.roll(noise, s, (1, 2)) for s in shifts])
    out = sampling.sample_stack(model, xs, zs, steps=3, batch_size=3)
    bound = network_tolerance(model, heun_evaluations(3))  # summation order only
    for i, s in enumerate(shifts, start=1):
        assert rel_err(out[i, 0], np.roll(out[0, 0], s, (0, 1))) < bound, s
    zero = velocity_network(2, padding="zero")
    out = sampling.sample_stack(zero, xs[:2], zs[:2], steps=3, batch_size=2)
    assert rel_err(out[1, 0], np.roll(out[0, 0], shifts[0], (0, 1))) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [2, 3])
def test_dihedral_samples_are_equivariant_under_every_group_element(ndim):
    model = velocity_network(ndim, symmetry="dihedral")
    elements = symmetry.group_elements(ndim)
    x = inputs(ndim, 1)
    noise = sampling.sample_noise(0, 0, x.shape[1:], 1)
    xs = np.concatenate([symmetry.apply(x, g) for g in elements])
    zs = np.stack([symmetry.apply(noise, g) for g in elements])
    out = sampling.sample_stack(model, xs, zs, steps=2, batch_size=len(elements))
    bound = network_tolerance(model, heun_evaluations(2))  # summation order only
    for i, g in enumerate(elements):
        assert rel_err(out[i], symmetry.apply(out[0], g)) < bound, g
    plain = velocity_network(ndim)
    out = sampling.sample_stack(plain, xs[:2], zs[:2], steps=2, batch_size=2)
    assert rel_err(out[1], symmetry.apply(out[0], elements[1])) > 1e-3


def test_bad_steps_and_noise_are_one_line():
    model = velocity_network()
    x = inputs(2, 1)
    with pytest.raises(FieldnetError, match="positive integer"):
        sampling.sample_stack(model, x, np.zeros((1, 1, *x.shape[1:])), steps=0)
    with pytest.raises(FieldnetError, match=r"noise must be \(N, S"):
        sampling.sample_stack(model, x, np.zeros(x.shape), steps=2)
