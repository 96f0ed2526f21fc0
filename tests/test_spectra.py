"""fieldnet.eval.spectra against fields whose spectrum is known analytically.

Tolerances: a single Fourier mode is exact to float64 round-off; white-noise amplitudes
are random with sigma_P / P = sqrt(2 / n_modes) per bin, and we allow 5 sigma so that a
correct implementation fails with probability < 1e-5 per bin.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from fieldnet.eval import spectra
from fieldnet.grid import Grid


@pytest.mark.parametrize("shape", [(64,), (32, 32), (16, 16, 16)])
def test_single_mode_amplitude_and_wavenumber(shape):
    box = 50.0
    x = np.meshgrid(*[np.arange(n) * box / n for n in shape], indexing="ij")
    k0 = 2 * np.pi / box * 3  # the third harmonic along the first axis
    amplitude = 0.7
    field = amplitude * np.cos(k0 * x[0])
    ps = spectra.power_spectrum(field, Grid.box(shape, box))
    # f_k = A/2 at +-k0; P_bin = V sum |f_k|^2 / n_modes, so sum_bins P n = V A^2 / 2.
    volume = box ** len(shape)
    np.testing.assert_allclose(np.nansum(ps.power * ps.n_modes), volume * amplitude**2 / 2,
                               rtol=1e-10)
    peak = np.nanargmax(ps.power)
    assert abs(ps.k[peak] - k0) < 0.5 * 2 * np.pi / box
    assert np.all(ps.power[np.arange(len(ps.power)) != peak] < 1e-20)
    if len(shape) == 1:  # 1D bins hold exactly the modes +-k, so k is exact
        np.testing.assert_allclose(ps.k[peak], k0, rtol=1e-12)
        np.testing.assert_allclose(ps.power[peak], volume * amplitude**2 / 4, rtol=1e-10)


@pytest.mark.parametrize("shape", [(256,), (64, 64), (24, 24, 24)])
def test_white_noise_level_within_cosmic_variance(shape):
    rng = np.random.default_rng(1)
    box, sigma = 30.0, 2.0
    fields = sigma * rng.standard_normal((8, *shape))
    ps = spectra.average_power_spectrum(fields, Grid.box(shape, box))
    expected = sigma**2 * box ** len(shape) / np.prod(shape)  # s^2 V / N_cells
    allowed = 5 * np.sqrt(2 / ps.n_modes)
    assert np.all(np.abs(ps.power / expected - 1) < allowed)
    overall = np.sum(ps.power * ps.n_modes) / np.sum(ps.n_modes)
    assert abs(overall / expected - 1) < 5 * np.sqrt(2 / ps.n_modes.sum())


def test_bins_run_from_fundamental_to_nyquist_in_h_per_mpc():
    box, n = 100.0, 32
    grid = Grid.box((n, n), box)
    ps = spectra.power_spectrum(np.random.default_rng(0).standard_normal((n, n)), grid)
    k_fund, k_nyq = 2 * np.pi / box, np.pi * n / box
    edges = spectra.default_edges(grid)
    assert len(ps.k) == n // 2
    np.testing.assert_allclose(edges[[0, -1]], [0.5 * k_fund, k_nyq + 0.5 * k_fund])
    assert np.all((ps.k > edges[:-1]) & (ps.k < edges[1:]))  # k = mean |k| of the bin
    assert ps.k.dtype == np.float64 and ps.power.dtype == np.float64


def test_cross_correlation_identical_and_independent_fields():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 32, 32, 32)).astype(np.float32)
    grid = Grid.box(a.shape, 10.0)
    same = spectra.cross_correlation(a, jnp.asarray(a), grid)
    np.testing.assert_allclose(same.r, 1.0, rtol=1e-6)
    independent = spectra.cross_correlation(a, b, grid)
    # r of independent Gaussian fields has standard deviation ~ 1 / sqrt(n_modes / 2)
    assert np.all(np.abs(independent.r) < 5 / np.sqrt(independent.n_modes / 2))
    auto = spectra.power_spectrum(a, grid)
    cross = spectra.cross_power_spectrum(a, a, grid)
    np.testing.assert_allclose(cross.power, auto.power, rtol=1e-12)


def test_stack_average_equals_mean_of_single_spectra():
    fields = np.random.default_rng(3).standard_normal((3, 16, 16))
    grid = Grid.box((16, 16), 5.0)
    mean = np.mean([spectra.power_spectrum(f, grid).power for f in fields], axis=0)
    avg = spectra.average_power_spectrum(fields, grid)
    np.testing.assert_allclose(avg.power, mean, rtol=1e-12)
    assert np.all(avg.n_modes == 3 * spectra.power_spectrum(fields[0], grid).n_modes)


def test_explicit_edges_mark_empty_bins_and_mode_average():
    field = np.random.default_rng(4).standard_normal((16, 16))
    edges = np.array([0.01, 0.02, 1.0, 2.0])  # the first bin is below the fundamental
    grid = Grid.box((16, 16), 10.0)
    ps = spectra.power_spectrum(field, grid, edges=edges)
    assert ps.n_modes[0] == 0 and np.isnan(ps.power[0])
    np.testing.assert_allclose(spectra.mode_average(lambda k: 0 * k + 3.0, grid,
                                                    edges=edges)[1:], 3.0)


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="1D, 2D or 3D"):
        spectra.power_spectrum(np.zeros((2, 2, 2, 2)), Grid.box((2, 2, 2), 1.0))
    with pytest.raises(ValueError, match="not on the grid"):
        spectra.power_spectrum(np.zeros((8, 8)), Grid.box((8, 4), 1.0))
    with pytest.raises(TypeError, match="Grid.box"):
        spectra.power_spectrum(np.zeros((8, 8)), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        spectra.average_cross_correlation(np.zeros((2, 8, 8)), np.zeros((2, 4, 4)),
                                          Grid.box((8, 8), 1.0))


@pytest.mark.parametrize("axis", [0, 1])
def test_rectangular_box_bins_use_each_axis_spacing(axis):
    # A 10 x 40 Mpc/h box of 32 x 32 cells: modes step by 2 pi / 10 along axis 0 and by
    # 2 pi / 40 along axis 1; bins are one k_f = 2 pi / 40 (the longest side) wide.
    lengths, shape, m = (10.0, 40.0), (32, 32), 3
    grid = Grid.box(shape, lengths)
    x = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")[axis]
    ps = spectra.power_spectrum(np.cos(2 * np.pi * m * x), grid)
    k_mode = 2 * np.pi * m / lengths[axis]
    edges = spectra.default_edges(grid)
    peak = np.nanargmax(ps.power)
    assert edges[peak] < k_mode < edges[peak + 1]
    assert np.all(ps.power[np.arange(len(ps.power)) != peak] < 1e-20)
    np.testing.assert_allclose(np.diff(edges), 2 * np.pi / 40.0, rtol=1e-12)
    np.testing.assert_allclose(edges[-1], np.pi * 32 / 40.0 + 0.5 * 2 * np.pi / 40.0,
                               rtol=1e-12)
    # all the variance A^2 / 2 sits in that bin: sum P n_modes = V A^2 / 2
    np.testing.assert_allclose(ps.power[peak] * ps.n_modes[peak], 400.0 / 2, rtol=1e-10)
