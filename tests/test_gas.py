"""data_tools.gas: the IGM power law, shock heating and scatter of the temperature model."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from data_tools import cosmology, gas, nbody

BOX = 25.0
GRID = 32


@functools.lru_cache(maxsize=1)
def particles():
    """One small z = 0 PM run (25 Mpc/h, 32^3 particles) shared by the tests."""
    state, _ = nbody.simulate_particles(cosmology.Cosmology(), BOX, seed=7,
                                        settings=nbody.PMSettings(particle_grid=GRID))
    return state


def test_igm_slope_recovers_gamma_minus_one_in_low_density_gas():
    """Below the mean density the flow is nearly single-stream, so T_shock vanishes for
    most cells and the median log T follows log T0 + (gamma - 1) log Delta_g; the full
    model is used (strongest heating of the prior range, with scatter)."""
    params = gas.GasParams(t0=1.2e4, gamma=1.45, heating_efficiency=1.0)
    _, temperature, moments = gas.gas_fields(particles(), GRID, BOX, params, seed=1)
    log_delta = np.log10(np.asarray(moments.gas_overdensity)).ravel()
    log_t = np.log10(np.asarray(temperature)).ravel()
    centres, medians = [], []
    for lo in np.arange(-1.2, -0.3, 0.1):
        cells = (log_delta >= lo) & (log_delta < lo + 0.1)
        assert cells.sum() > 50
        centres.append(np.median(log_delta[cells]))
        medians.append(np.median(log_t[cells]))
    slope, intercept = np.polyfit(centres, medians, 1)
    assert slope == pytest.approx(params.gamma - 1, abs=0.05)
    assert 10**intercept == pytest.approx(params.t0, rel=0.15)


def test_temperature_is_not_a_local_function_of_density():
    """Without the stochastic term, T still spreads by >= 0.1 dex at fixed Delta_g in
    dense gas, because the heating follows the velocity dispersion of the surroundings."""
    params = gas.GasParams(heating_efficiency=0.5, scatter_dex=0.0)
    _, temperature, moments = gas.gas_fields(particles(), GRID, BOX, params, seed=1)
    log_delta = np.log10(np.asarray(moments.gas_overdensity)).ravel()
    log_t = np.log10(np.asarray(temperature)).ravel()
    for lo in (0.5, 0.75, 1.0):
        cells = (log_delta >= lo) & (log_delta < lo + 0.05)  # Delta_g fixed to 12%
        assert cells.sum() > 30
        assert np.std(log_t[cells]) >= 0.1


def test_shock_temperature_is_the_virial_temperature_of_the_dispersion():
    params = gas.GasParams(heating_efficiency=1.0, shock_threshold=0.0)
    sigma = 300.0  # km/s, 3D
    expected = 0.59 * 1.67262192e-27 * (sigma * 1e3) ** 2 / (3 * 1.380649e-23)  # ~2.1e6 K
    assert float(gas.shock_temperature(sigma, params)) == pytest.approx(expected, rel=1e-6)
    subsonic = gas.GasParams(shock_threshold=20.0)
    assert float(gas.shock_temperature(15.0, subsonic)) == 0.0


def test_smoothing_keeps_the_mean_and_scatter_is_seeded():
    field = jnp.asarray(np.random.default_rng(0).lognormal(size=(16, 16, 16)), jnp.float32)
    assert float(gas.smooth(field, BOX, 1.0).mean()) == pytest.approx(float(field.mean()),
                                                                      rel=1e-5)
    params = gas.GasParams()
    a = gas.feedback_scatter(3, (16, 16, 16), BOX, params)
    assert np.array_equal(np.asarray(a), np.asarray(gas.feedback_scatter(3, (16,) * 3, BOX,
                                                                         params)))
    assert float(jnp.std(a)) == pytest.approx(1.0, rel=1e-5)


def test_density_is_in_units_of_the_mean():
    density, temperature, _ = gas.gas_fields(particles(), GRID, BOX, gas.GasParams(), seed=0)
    assert float(density.mean()) == pytest.approx(1.0, rel=1e-5)
    assert float(temperature.min()) > 0
