"""Flat LCDM background, linear growth and matter power spectra for the simulator.

Units: k in h/Mpc, P(k) in (Mpc/h)^3, the scale factor a = 1 today. Spectra are
normalized to `sigma8` at z = 0 and come from CAMB (linear, and halofit with the
Takahashi et al. 2012 calibration). If CAMB cannot be imported, the linear spectrum
falls back to the Eisenstein & Hu (1998) transfer function with baryon wiggles, which
the tests check against CAMB. Neutrinos are massless, as the simulator assumes.

Growth (radiation neglected, which is accurate to < 0.5% for z < 10):

    E(a)^2 = Om a^-3 + (1 - Om)
    D(a)   = (5 Om / 2) E(a) * int_0^a da' / (a' E(a'))^3 ,  normalized to D(1) = 1
    f(a)   = dlnD/dlna = -3 Om / (2 a^3 E^2) + 1 / (a^2 E^3 I(a)),  I = the integral above

which is the exact growing mode of flat LCDM (Heath 1977).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate

T_CMB = 2.7255  # K
PROTON_MASS = 1.67262192e-27  # kg
BOLTZMANN = 1.380649e-23  # J / K
# CAMB's table stops here; beyond it the log-log slope is extended (far above any grid).
CAMB_KMAX = 20.0  # h/Mpc
# Critical density today in (M_sun/h) / (Mpc/h)^3.
RHO_CRIT = 2.77536627e11


@dataclass(frozen=True)
class Cosmology:
    """Flat LCDM parameters; the defaults are those of the CAMELS simulations."""

    omega_m: float = 0.3
    omega_b: float = 0.049
    h: float = 0.6711
    n_s: float = 0.9624
    sigma8: float = 0.8

    def __post_init__(self):
        if not 0 < self.omega_b < self.omega_m <= 1:
            raise ValueError(f"need 0 < omega_b < omega_m <= 1, got {self}")
        if not (self.h > 0 and self.sigma8 > 0):
            raise ValueError(f"h and sigma8 must be positive, got {self}")

    @property
    def shape_parameters(self) -> tuple[float, float, float, float]:
        """What the shape of P(k) depends on (sigma8 only rescales it)."""
        return (self.omega_m, self.omega_b, self.h, self.n_s)


# --------------------------------------------------------------------------- growth

def hubble_rate(cosmo: Cosmology, a) -> np.ndarray:
    """E(a) = H(a) / H0."""
    a = np.asarray(a, np.float64)
    return np.sqrt(cosmo.omega_m * a**-3 + 1 - cosmo.omega_m)


def _growth_integral(cosmo: Cosmology, a) -> np.ndarray:
    """int_0^a da' / (a' E(a'))^3, finite because the integrand ~ a'^(3/2) as a' -> 0."""
    def integrand(x):
        return 1.0 / (x * hubble_rate(cosmo, x)) ** 3

    a = np.atleast_1d(np.asarray(a, np.float64))
    values = [integrate.quad(integrand, 0.0, ai, epsabs=0, epsrel=1e-10)[0] for ai in a.ravel()]
    return np.asarray(values).reshape(a.shape)


def _growth_unnormalized(cosmo: Cosmology, a) -> np.ndarray:
    return 2.5 * cosmo.omega_m * hubble_rate(cosmo, a) * _growth_integral(cosmo, a)


def growth_factor(cosmo: Cosmology, a) -> np.ndarray:
    """Linear growth factor D(a), D(1) = 1 (same shape as `a`)."""
    a = np.asarray(a, np.float64)
    d = _growth_unnormalized(cosmo, a) / _growth_unnormalized(cosmo, 1.0)
    return d.reshape(a.shape)


def growth_rate(cosmo: Cosmology, a) -> np.ndarray:
    """Linear growth rate f(a) = dlnD/dlna (about Om(a)^0.55)."""
    a = np.asarray(a, np.float64)
    e = hubble_rate(cosmo, a)
    f = (-1.5 * cosmo.omega_m / (a**3 * e**2)
         + 1.0 / (a**2 * e**3 * _growth_integral(cosmo, a).reshape(a.shape)))
    return f


def omega_m_of_a(cosmo: Cosmology, a) -> np.ndarray:
    """Matter density parameter at scale factor a."""
    a = np.asarray(a, np.float64)
    return cosmo.omega_m * a**-3 / hubble_rate(cosmo, a) ** 2


def second_order_growth(cosmo: Cosmology, a) -> tuple[np.ndarray, np.ndarray]:
    """2LPT growth D2(a) = -3/7 D^2 Om(a)^(-1/143) and its rate f2 = 2 Om(a)^(6/11).

    Bouchet et al. (1995) fits, accurate to better than 1% for LCDM; D2 multiplies the
    second-order displacement potential in `nbody`.
    """
    om = omega_m_of_a(cosmo, a)
    d2 = -3.0 / 7.0 * growth_factor(cosmo, a) ** 2 * om ** (-1.0 / 143.0)
    return d2, 2.0 * om ** (6.0 / 11.0)


# --------------------------------------------------------------------------- spectra

def _camb_params(cosmo: Cosmology):
    import camb

    h = cosmo.h
    params = camb.set_params(
        H0=100 * h, ombh2=cosmo.omega_b * h**2, omch2=(cosmo.omega_m - cosmo.omega_b) * h**2,
        ns=cosmo.n_s, As=2e-9, mnu=0.0, num_massive_neutrinos=0, TCMB=T_CMB, WantCls=False,
        WantTransfer=True, halofit_version="takahashi", NonLinear=camb.model.NonLinear_both)
    params.set_matter_power(redshifts=[0.0], kmax=CAMB_KMAX * h)
    return params


@functools.lru_cache(maxsize=64)
def _camb_transfer(shape_parameters: tuple[float, float, float, float]):
    """The CAMB transfer run (the slow ~1.5 s part), shared by all sigma8."""
    import camb

    params = _camb_params(Cosmology(*shape_parameters))
    return camb.get_transfer_functions(params), params


@functools.lru_cache(maxsize=64)
def _camb_tables(cosmo: Cosmology) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(log k, log P) at z = 0, linear and halofit, with As set so that sigma8 matches."""
    results, params = _camb_transfer(cosmo.shape_parameters)
    params.InitPower.set_params(As=2e-9, ns=cosmo.n_s)
    results.power_spectra_from_transfer(params.InitPower)
    as_for_sigma8 = 2e-9 * (cosmo.sigma8 / results.get_sigma8_0()) ** 2
    params.InitPower.set_params(As=as_for_sigma8, ns=cosmo.n_s)
    results.power_spectra_from_transfer(params.InitPower)
    k = np.geomspace(1e-4, CAMB_KMAX, 800)
    tables = {}
    for name, nonlinear in (("linear", False), ("halofit", True)):
        spline = results.get_matter_power_interpolator(nonlinear=nonlinear, hubble_units=True,
                                                       k_hunit=True)
        tables[name] = (np.log(k), np.log(spline.P(0.0, k)))
    return tables


def _interpolate_loglog(table: tuple[np.ndarray, np.ndarray], k) -> np.ndarray:
    """Log-log interpolation, extended with the end slopes outside the table."""
    log_k, log_p = table
    x = np.log(np.asarray(k, np.float64))
    y = np.interp(x, log_k, log_p)
    low_slope = (log_p[1] - log_p[0]) / (log_k[1] - log_k[0])
    high_slope = (log_p[-1] - log_p[-2]) / (log_k[-1] - log_k[-2])
    y = np.where(x < log_k[0], log_p[0] + low_slope * (x - log_k[0]), y)
    y = np.where(x > log_k[-1], log_p[-1] + high_slope * (x - log_k[-1]), y)
    return np.exp(y)


def camb_available() -> bool:
    try:
        import camb  # noqa: F401
    except ImportError:
        return False
    return True


def linear_power(cosmo: Cosmology, k, a: float = 1.0, method: str = "auto") -> np.ndarray:
    """Linear matter P(k) [(Mpc/h)^3] at scale factor `a`, normalized to sigma8 at a = 1.

    `method`: "camb", "eh" (Eisenstein & Hu 1998) or "auto" (CAMB, else EH with a warning).
    Redshift dependence is D(a)^2 from `growth_factor`, the same growth the N-body uses.
    """
    if method == "auto":
        method = "camb" if camb_available() else "eh"
        if method == "eh":
            warnings.warn("CAMB is not importable; using the Eisenstein-Hu linear spectrum",
                          stacklevel=2)
    if method == "camb":
        p0 = _interpolate_loglog(_camb_tables(cosmo)["linear"], k)
    elif method == "eh":
        p0 = eisenstein_hu_power(cosmo, k)
    else:
        raise ValueError(f"method must be 'auto', 'camb' or 'eh', got {method!r}")
    return p0 * growth_factor(cosmo, a) ** 2


def halofit_power(cosmo: Cosmology, k) -> np.ndarray:
    """Nonlinear matter P(k) [(Mpc/h)^3] at z = 0 from CAMB halofit (Takahashi 2012)."""
    return _interpolate_loglog(_camb_tables(cosmo)["halofit"], k)


def sigma_r(cosmo: Cosmology, radius: float, power=None) -> float:
    """rms of the linear density in top-hat spheres of `radius` Mpc/h at z = 0."""
    power = (lambda k: linear_power(cosmo, k)) if power is None else power
    log_k = np.linspace(np.log(1e-5), np.log(1e3), 20001)
    k = np.exp(log_k)
    x = k * radius
    window = 3 * (np.sin(x) - x * np.cos(x)) / x**3
    integrand = k**3 * power(k) * window**2 / (2 * np.pi**2)
    return float(np.sqrt(integrate.trapezoid(integrand, log_k)))


# --------------------------------------------------------------------------- Eisenstein & Hu

def eisenstein_hu_transfer(cosmo: Cosmology, k) -> np.ndarray:
    """Eisenstein & Hu (1998, ApJ 496, 605) transfer function with baryon oscillations.

    `k` in h/Mpc. Eqs. numbered as in the paper; CDM and baryons, massless neutrinos.
    """
    k_mpc = np.asarray(k, np.float64) * cosmo.h  # the fit is written in 1/Mpc
    h2 = cosmo.h**2
    om, ob = cosmo.omega_m * h2, cosmo.omega_b * h2
    fb = cosmo.omega_b / cosmo.omega_m
    fc = 1.0 - fb
    theta = T_CMB / 2.7

    z_eq = 2.50e4 * om * theta**-4  # eq. 2
    k_eq = 7.46e-2 * om * theta**-2  # eq. 3
    b1 = 0.313 * om**-0.419 * (1 + 0.607 * om**0.674)  # eq. 4
    b2 = 0.238 * om**0.223
    z_d = 1291 * om**0.251 / (1 + 0.659 * om**0.828) * (1 + b1 * ob**b2)
    r_d = 31.5 * ob * theta**-4 * (1e3 / z_d)  # eq. 5
    r_eq = 31.5 * ob * theta**-4 * (1e3 / z_eq)
    s = (2 / (3 * k_eq) * np.sqrt(6 / r_eq)  # eq. 6
         * np.log((np.sqrt(1 + r_d) + np.sqrt(r_d + r_eq)) / (1 + np.sqrt(r_eq))))
    k_silk = 1.6 * ob**0.52 * om**0.73 * (1 + (10.4 * om) ** -0.95)  # eq. 7
    q = k_mpc / (13.41 * k_eq)  # eq. 10

    a1 = (46.9 * om) ** 0.670 * (1 + (32.1 * om) ** -0.532)  # eq. 11
    a2 = (12.0 * om) ** 0.424 * (1 + (45.0 * om) ** -0.582)
    alpha_c = a1**-fb * a2 ** (-(fb**3))
    bb1 = 0.944 / (1 + (458 * om) ** -0.708)  # eq. 12
    bb2 = (0.395 * om) ** -0.0266
    beta_c = 1.0 / (1 + bb1 * (fc**bb2 - 1))

    def t0_tilde(alpha, beta):  # eqs. 19-20
        log_term = np.log(np.e + 1.8 * beta * q)
        c = 14.2 / alpha + 386.0 / (1 + 69.9 * q**1.08)
        return log_term / (log_term + c * q**2)

    ks = k_mpc * s
    f = 1.0 / (1 + (ks / 5.4) ** 4)  # eq. 18
    t_cdm = f * t0_tilde(1.0, beta_c) + (1 - f) * t0_tilde(alpha_c, beta_c)  # eq. 17

    y = (1 + z_eq) / (1 + z_d)  # eq. 15
    g = y * (-6 * np.sqrt(1 + y)
             + (2 + 3 * y) * np.log((np.sqrt(1 + y) + 1) / (np.sqrt(1 + y) - 1)))
    alpha_b = 2.07 * k_eq * s * (1 + r_d) ** -0.75 * g  # eq. 14
    beta_node = 8.41 * om**0.435  # eq. 23
    beta_b = 0.5 + fb + (3 - 2 * fb) * np.sqrt((17.2 * om) ** 2 + 1)  # eq. 24
    s_tilde = s / (1 + (beta_node / ks) ** 3) ** (1.0 / 3.0)  # eq. 22
    x = k_mpc * s_tilde
    t_baryon = (t0_tilde(1.0, 1.0) / (1 + (ks / 5.2) ** 2)  # eq. 21
                + alpha_b / (1 + (beta_b / ks) ** 3) * np.exp(-((k_mpc / k_silk) ** 1.4))
                ) * np.sinc(x / np.pi)
    return fb * t_baryon + fc * t_cdm  # eq. 16


@functools.lru_cache(maxsize=64)
def _eisenstein_hu_amplitude(cosmo: Cosmology) -> float:
    def shape(k):
        return k**cosmo.n_s * eisenstein_hu_transfer(cosmo, k) ** 2

    return (cosmo.sigma8 / sigma_r(cosmo, 8.0, shape)) ** 2


def eisenstein_hu_power(cosmo: Cosmology, k) -> np.ndarray:
    """Linear P(k) [(Mpc/h)^3] at z = 0 from the EH98 transfer function, sigma8-normalized."""
    k = np.asarray(k, np.float64)
    return _eisenstein_hu_amplitude(cosmo) * k**cosmo.n_s * eisenstein_hu_transfer(cosmo, k) ** 2
