"""data_tools.cosmology: sigma8 normalization, growth, and the Eisenstein-Hu fallback."""

import numpy as np
import pytest

from data_tools import cosmology

COSMO = cosmology.Cosmology(omega_m=0.3, sigma8=0.8)


def test_camb_linear_spectrum_has_requested_sigma8_and_is_cached(monkeypatch):
    import camb

    # top-hat integral of the tabulated spectrum; 1e-3 covers the quadrature/table error
    assert cosmology.sigma_r(COSMO, 8.0) == pytest.approx(0.8, rel=1e-3)
    other = cosmology.Cosmology(omega_m=0.3, sigma8=0.7)
    transfer_runs = []
    run_transfer = camb.get_transfer_functions
    monkeypatch.setattr(camb, "get_transfer_functions",
                        lambda *a, **k: transfer_runs.append(a) or run_transfer(*a, **k))
    ratio = cosmology.linear_power(other, 0.1) / cosmology.linear_power(COSMO, 0.1)
    # another sigma8 reuses the CAMB transfer run of the same shape parameters
    assert transfer_runs == []
    assert ratio == pytest.approx((0.7 / 0.8) ** 2, rel=1e-6)


def test_halofit_is_linear_on_large_scales_and_boosted_at_k1():
    k = np.array([1e-3, 1.0])
    boost = cosmology.halofit_power(COSMO, k) / cosmology.linear_power(COSMO, k)
    assert boost[0] == pytest.approx(1.0, abs=1e-3)
    assert 3.0 < boost[1] < 10.0  # the one-halo regime: P_nl / P_lin ~ 6 at k = 1 h/Mpc


def test_growth_factor_matches_camb_and_matter_domination():
    import camb

    # CAMB includes radiation, which the growth integral neglects: < 0.5% at z <= 3.
    h = COSMO.h
    params = camb.set_params(H0=100 * h, ombh2=COSMO.omega_b * h**2,
                             omch2=(COSMO.omega_m - COSMO.omega_b) * h**2, ns=COSMO.n_s,
                             mnu=0.0, num_massive_neutrinos=0, WantCls=False,
                             WantTransfer=True)
    params.set_matter_power(redshifts=[3.0, 1.0, 0.0], kmax=1.0)
    results = camb.get_results(params)
    spline = results.get_matter_power_interpolator(nonlinear=False, hubble_units=True,
                                                   k_hunit=True)
    for z in (1.0, 3.0):
        d_camb = np.sqrt(spline.P(z, 0.02) / spline.P(0.0, 0.02))
        assert cosmology.growth_factor(COSMO, 1 / (1 + z)) == pytest.approx(d_camb, rel=5e-3)
    early = cosmology.growth_factor(COSMO, np.array([1e-3, 2e-3]))
    assert early[1] / early[0] == pytest.approx(2.0, rel=1e-4)  # D ~ a when Om(a) = 1
    assert cosmology.growth_factor(COSMO, 1.0) == pytest.approx(1.0, rel=1e-12)


def test_growth_rate_is_the_log_derivative():
    a = np.array([0.1, 0.5, 1.0])
    eps = 1e-5
    numeric = (np.log(cosmology.growth_factor(COSMO, a * (1 + eps)))
               - np.log(cosmology.growth_factor(COSMO, a * (1 - eps)))) / (2 * eps)
    np.testing.assert_allclose(cosmology.growth_rate(COSMO, a), numeric, rtol=1e-6)
    # Linder's f = Om(a)^0.55 is good to ~1% for LCDM
    np.testing.assert_allclose(cosmology.growth_rate(COSMO, a),
                               cosmology.omega_m_of_a(COSMO, a) ** 0.55, rtol=1e-2)


@pytest.mark.parametrize("omega_m", [0.2, 0.3, 0.4])
def test_eisenstein_hu_fallback_against_camb(omega_m):
    """EH98 quotes transfer-function residuals of a few percent, largest on the acoustic
    oscillations (their fit to the baryon wiggles); with sigma8 normalization that is up
    to ~2x in P. We allow 6% in P for 1e-3 <= k <= 10 h/Mpc (measured: 4.0% at k ~ 0.09
    for Om = 0.3)."""
    cosmo = cosmology.Cosmology(omega_m=omega_m, sigma8=0.8)
    k = np.geomspace(1e-3, 10.0, 400)
    ratio = cosmology.linear_power(cosmo, k, method="eh") / cosmology.linear_power(
        cosmo, k, method="camb")
    assert np.max(np.abs(ratio - 1)) < 0.06
    assert cosmology.sigma_r(cosmo, 8.0, lambda q: cosmology.eisenstein_hu_power(cosmo, q)
                             ) == pytest.approx(0.8, rel=1e-3)


def test_invalid_cosmology_is_rejected():
    with pytest.raises(ValueError):
        cosmology.Cosmology(omega_m=0.03, omega_b=0.049)
    with pytest.raises(ValueError, match="method"):
        cosmology.linear_power(COSMO, 0.1, method="magic")
