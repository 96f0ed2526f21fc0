r"""Gas temperature on the mesh from the dark-matter particles of a PM run.

The model has three terms, each with its own physical reason:

1. **Photo-ionized IGM.** Gas in photo-ionization equilibrium follows a power-law
   temperature-density relation (Hui & Gnedin 1997),
   $T_\mathrm{IGM} = T_0\,\Delta_g^{\gamma-1}$, where the gas overdensity
   $\Delta_g = S_J[\rho_m/\bar\rho_m]$ is the matter density smoothed on the Jeans-like
   filtering scale $\lambda_J$ (pressure keeps gas from following the dark matter below
   it): $S_J$ multiplies Fourier modes by $\exp(-k^2\lambda_J^2/2)$, default
   $\lambda_J = 0.3$ Mpc/h, about the comoving filtering length of $10^4$ K gas.

2. **Shock / virial heating.** Gas falling into halos and filaments is shock-heated to
   roughly the virial temperature of the flow it joins, which we read off the local
   velocity dispersion of the particles, $\sigma_v^2 = S_J[\sum m v^2]/S_J[\sum m] -
   |S_J[\sum m \mathbf v]/S_J[\sum m]|^2$ (CIC-deposited moments, same smoothing):
   $T_\mathrm{shock} = \epsilon\,\frac{\mu m_p}{3 k_B}\max(\sigma_v^2 - \sigma_\mathrm{th}^2, 0)$,
   with heating efficiency $\epsilon$, $\mu = 0.59$ (ionized primordial gas) and
   $\sigma_\mathrm{th}$ = 20 km/s ($\approx\sqrt3$ times the sound speed of $10^4$ K gas):
   slower random motions (including the velocity shear of smooth single-stream flow
   inside the smoothing kernel) are subsonic and do not shock. $\sigma_v$ depends on
   the surrounding structure (shell crossing, infall), so at fixed density T varies.

3. **Stochastic feedback.** Unresolved feedback adds log-normal scatter that grows
   with density:
   $\log_{10} T = \log_{10}(T_\mathrm{IGM} + T_\mathrm{shock}) +
   s\,\frac{\Delta_g}{\Delta_g + \Delta_\mathrm{fb}}\,g(\mathbf x)$, where $g$ is a
   unit-variance Gaussian random field smoothed on $\lambda_J$ (its own seed),
   $s$ = 0.15 dex and $\Delta_\mathrm{fb}$ = 10 by default.

Velocities are peculiar velocities in km/s, lengths in Mpc/h, temperatures in K.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from data_tools import nbody
from data_tools.cosmology import BOLTZMANN, PROTON_MASS
from fieldnet.eval import spectra
from fieldnet.grid import Grid

MEAN_MOLECULAR_WEIGHT = 0.59  # fully ionized H + He
# T = KELVIN_PER_KMS2 * sigma_3D^2 / 3 for sigma in km/s: mu m_p (1e3 m/s)^2 / k_B
KELVIN_PER_KMS2 = MEAN_MOLECULAR_WEIGHT * PROTON_MASS * 1e6 / BOLTZMANN
DENSITY_FLOOR = 1e-3  # in units of the mean, keeps Delta_g^(gamma - 1) finite


@dataclass(frozen=True)
class GasParams:
    """Parameters of the temperature model (see the module docstring)."""

    t0: float = 1e4  # K, temperature at mean density
    gamma: float = 1.5  # slope of the T-density relation is gamma - 1
    heating_efficiency: float = 0.5  # epsilon
    jeans_scale: float = 0.3  # Mpc/h, Gaussian smoothing length lambda_J
    shock_threshold: float = 20.0  # km/s, sigma_th
    scatter_dex: float = 0.15  # s
    feedback_density: float = 10.0  # Delta_fb


def smooth(field, box_size: float, scale: float) -> jnp.ndarray:
    """Gaussian smoothing exp(-k^2 scale^2 / 2) of a periodic grid (*spatial)."""
    field = jnp.asarray(field, jnp.float32)
    kmag = spectra.wavenumber(Grid.box(field.shape, box_size))
    kernel = jnp.asarray(np.exp(-0.5 * (kmag * scale) ** 2), jnp.float32)
    return jnp.fft.irfftn(jnp.fft.rfftn(field) * kernel, s=field.shape)


@dataclass
class ParticleMoments:
    """Mass-weighted particle moments on the grid (3D, float32)."""

    density: jnp.ndarray  # rho / mean(rho), CIC, unsmoothed
    gas_overdensity: jnp.ndarray  # Delta_g = S_J[density]
    velocity_dispersion: jnp.ndarray  # sigma_v, 3D, km/s
    deposit: jnp.ndarray  # (G, G, G, 5) CIC sums of 1, v (3 components), |v|^2 [km/s]


def _shear_variance(mean_velocity: jnp.ndarray, box_size: float, kernel_variance: float
                    ) -> jnp.ndarray:
    """sum_ij (d_j u_i)^2 l^2: the spread of a smooth flow u across a kernel of variance l^2,
    which is velocity shear, not random motion, and must not count as heating."""
    shape = mean_velocity.shape[:-1]
    total = 0.0
    for i in range(3):
        u_k = jnp.fft.rfftn(mean_velocity[..., i])
        for k in spectra.wavevectors(Grid.box(shape, box_size), zero_nyquist=True):
            total = total + jnp.fft.irfftn(1j * jnp.asarray(k, jnp.float32) * u_k, s=shape) ** 2
    return kernel_variance * total


def particle_moments(positions: jnp.ndarray, velocities: jnp.ndarray, grid: int,
                     box_size: float, smoothing: float) -> ParticleMoments:
    """CIC-deposits mass, momentum and v^2 on a grid^3 mesh and forms the smoothed moments.

    The dispersion is that of the particles about the smoothed mean flow, minus the part
    a smooth flow's shear puts inside the kernel (variance per axis l^2 = smoothing^2 +
    H^2/6, Gaussian plus CIC of cell size H)."""
    shape = (grid,) * 3
    weights = jnp.concatenate([jnp.ones_like(velocities[:, :1]), velocities,
                               jnp.sum(velocities**2, axis=1, keepdims=True)], axis=1)
    deposited = nbody.cic_paint(positions, shape, float(box_size), weights)
    density = deposited[..., 0] * (grid**3 / positions.shape[0])
    smoothed = jnp.stack([smooth(deposited[..., c], box_size, smoothing) for c in range(5)], -1)
    mass = jnp.maximum(smoothed[..., 0], 1e-6)
    mean_velocity = smoothed[..., 1:4] / mass[..., None]
    kernel_variance = smoothing**2 + (box_size / grid) ** 2 / 6.0
    dispersion2 = (smoothed[..., 4] / mass - jnp.sum(mean_velocity**2, axis=-1)
                   - _shear_variance(mean_velocity, box_size, kernel_variance))
    gas_overdensity = smooth(density, box_size, smoothing)
    return ParticleMoments(density, jnp.maximum(gas_overdensity, DENSITY_FLOOR),
                           jnp.sqrt(jnp.maximum(dispersion2, 0.0)), deposited)


def igm_temperature(gas_overdensity, params: GasParams) -> jnp.ndarray:
    """T_IGM = T0 Delta_g^(gamma - 1) [K]."""
    return params.t0 * jnp.asarray(gas_overdensity) ** (params.gamma - 1.0)


def shock_temperature(velocity_dispersion, params: GasParams) -> jnp.ndarray:
    """T_shock = eps mu m_p max(sigma_v^2 - sigma_th^2, 0) / (3 k_B) [K]."""
    excess = jnp.maximum(jnp.asarray(velocity_dispersion) ** 2 - params.shock_threshold**2, 0.0)
    return params.heating_efficiency * KELVIN_PER_KMS2 * excess / 3.0


def feedback_scatter(seed: int, shape, box_size: float, params: GasParams) -> jnp.ndarray:
    """Unit-variance Gaussian field g smoothed on the Jeans scale, from its own seed."""
    noise = jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32)
    smoothed = smooth(noise, box_size, params.jeans_scale)
    return smoothed / jnp.std(smoothed)


def temperature(moments: ParticleMoments, params: GasParams, box_size: float,
                seed: int) -> jnp.ndarray:
    """Gas temperature [K] on the grid (module docstring, terms 1-3)."""
    delta_g = moments.gas_overdensity
    t_thermal = igm_temperature(delta_g, params) + shock_temperature(
        moments.velocity_dispersion, params)
    if params.scatter_dex == 0:
        return t_thermal
    weight = delta_g / (delta_g + params.feedback_density)
    g = feedback_scatter(seed, delta_g.shape, box_size, params)
    return t_thermal * 10.0 ** (params.scatter_dex * weight * g)


def gas_fields(state: nbody.ParticleState, grid: int, box_size: float, params: GasParams,
               seed: int) -> tuple[jnp.ndarray, jnp.ndarray, ParticleMoments]:
    """(density in units of the mean, temperature [K], moments) on a grid^3 mesh."""
    moments = particle_moments(state.positions, state.velocities, grid, box_size,
                               params.jeans_scale)
    return moments.density, temperature(moments, params, box_size, seed), moments
