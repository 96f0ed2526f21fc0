"""Particle-mesh N-body simulation in JAX: Gaussian initial conditions, 2LPT, FastPM steps.

Units: comoving positions x in Mpc/h, scale factor a, momenta p = a^2 (dx/dt) / H0 in
Mpc/h (peculiar velocity v = 100 p / a km/s). With H0 = 1 the equations of motion are

    dx/da = p / (a^3 E(a)),      dp/da = F / (a^2 E(a)),
    F = -(3/2) Om grad(phi),     laplacian(phi) = delta,

where delta is the matter density contrast painted on the PM mesh with cloud-in-cell
(CIC), phi_k = -delta_k / k^2 (the usual PM Green's function), the gradient is a 4-point
finite difference (see `_gradient` for why not ik), and F is read back at the particles
with the same CIC kernel, so a particle feels no self-force. Steps are kick-drift-kick
with the FastPM operators (Feng et al. 2016): the kick and drift factors are integrals
of the linear growing mode, so a step of any size reproduces linear growth, and ten
steps from a = 0.1 suffice (40 steps raise P(k) by < 3% at k < 0.5 h/Mpc, 7% at k = 1):

    drift a0 -> a1:  x += p * [D(a1) - D(a0)] / g_p(a_half)
    kick  a0 -> a1:  p += F * [g_p(a1) - g_p(a0)] / ((3/2) Om D(a_force))
    g_p(a) = a^2 E(a) D(a) f(a)     (the momentum of a unit linear displacement)

Initial conditions: a Gaussian random field with the linear spectrum P(k) at a = 1
(white noise in real space, so the draw is the same for any spectrum and seed), moved
to the starting scale factor with second-order Lagrangian perturbation theory:

    x = q + D1 psi1 + D2 psi2,   psi1 = -grad(phi1),  laplacian(phi1) = delta_L,
    psi2 = grad(phi2),  laplacian(phi2) = sum_{i<j} (phi1_ii phi1_jj - phi1_ij^2).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from data_tools import cosmology
from fieldnet.eval import spectra
from fieldnet.grid import Grid

KMS_PER_MOMENTUM = 100.0  # v [km/s] = 100 p / a for x in Mpc/h (H0 = 100 h km/s/Mpc)


# --------------------------------------------------------------------------- Fourier helpers

def _wavevectors(shape, box_size, zero_nyquist: bool) -> list[jnp.ndarray]:
    """k components [h/Mpc] on the rfftn grid as float32 (see `spectra.wavevectors`)."""
    return [jnp.asarray(k, jnp.float32)
            for k in spectra.wavevectors(Grid.box(shape, box_size), zero_nyquist)]


def _inverse_laplacian(shape, box_size) -> jnp.ndarray:
    """-1/k^2 on the rfftn grid, 0 at k = 0 (the mean does not source gravity). Built from
    the broadcastable k vectors so that jit does not embed a full-size constant."""
    k2 = sum(k**2 for k in _wavevectors(shape, box_size, zero_nyquist=False))
    return jnp.where(k2 > 0, -1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)


def _gradient(field_k, shape, box_size, finite_difference: bool = False) -> jnp.ndarray:
    """Real-space gradient (*shape, d) of a field given by its rfftn.

    `finite_difference` uses the 4-point stencil i(8 sin(kH) - sin(2kH)) / (6H) instead of ik.
    The PM force needs it: CIC painting of a particle lattice puts a large near-Nyquist
    component into the density, which ik turns into a spurious force that aliases back to
    large scales at the particles (+3% at the fundamental of a 32^3 box, +20% at a quarter
    of the Nyquist frequency); the stencil vanishes at the Nyquist frequency and keeps the
    large-scale force exact to < 0.1%.
    """
    ks = _wavevectors(shape, box_size, zero_nyquist=True)
    if finite_difference:
        spacing = [box_size / n for n in shape]
        ks = [(8 * jnp.sin(k * h) - jnp.sin(2 * k * h)) / (6 * h)
              for k, h in zip(ks, spacing, strict=True)]
    return jnp.stack([jnp.fft.irfftn(1j * k * field_k, s=shape) for k in ks], axis=-1)


# --------------------------------------------------------------------------- initial conditions

def linear_density(seed: int, grid: int, box_size: float,
                   power: Callable[[np.ndarray], np.ndarray], ndim: int = 3,
                   fixed_amplitude: bool = False) -> jnp.ndarray:
    """Gaussian random field delta_L(x) on a periodic grid with spectrum `power` (h/Mpc ->
    (Mpc/h)^ndim), float32, deterministic from `seed`.

    White noise w (unit variance per cell) has <|FFT(w)|^2> = N_cells; multiplying by
    sqrt(P(k) / V_cell) gives <|FFT(delta)/N_cells|^2> = P / V, the `fieldnet.eval.spectra`
    convention. The k = 0 mode is zero (the box has the mean density).

    `fixed_amplitude` sets every |FFT(w)|^2 to exactly N_cells and keeps the random phases
    ("fixed" fields, Angulo & Pontzen 2016): the measured P(k) then has no cosmic variance
    in the initial conditions and much less at z = 0, which lets small boxes test the
    simulator's power spectrum against theory.
    """
    shape = (grid,) * ndim
    cell_volume = (box_size / grid) ** ndim
    kmag = spectra.wavenumber(Grid.box(shape, box_size))
    amplitude = np.zeros(kmag.shape)
    positive = kmag > 0
    amplitude[positive] = np.sqrt(power(kmag[positive]) / cell_volume)
    noise_k = jnp.fft.rfftn(jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32))
    if fixed_amplitude:
        noise_k = noise_k / jnp.maximum(jnp.abs(noise_k), 1e-30) * np.sqrt(np.prod(shape))
    return jnp.fft.irfftn(noise_k * jnp.asarray(amplitude, jnp.float32), s=shape)


def lagrangian_positions(grid: int, box_size: float) -> jnp.ndarray:
    """Unperturbed particle positions (grid^3, 3) at the cell centres, in Mpc/h."""
    q = (jnp.arange(grid, dtype=jnp.float32) + 0.5) * (box_size / grid)
    return jnp.stack(jnp.meshgrid(q, q, q, indexing="ij"), axis=-1).reshape(-1, 3)


@jax.jit(static_argnames=("box_size",))
def lpt_displacements(delta_lin: jnp.ndarray, box_size: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """First- and second-order displacement fields psi1, psi2 (G, G, G, 3) in Mpc/h for
    unit growth: x = q + D1 psi1 + D2 psi2 with D2 ~ -3/7 D1^2 (see module docstring)."""
    shape = delta_lin.shape
    delta_k = jnp.fft.rfftn(delta_lin)
    phi1_k = _inverse_laplacian(shape, box_size) * delta_k
    psi1 = -_gradient(phi1_k, shape, box_size)
    ks = _wavevectors(shape, box_size, zero_nyquist=False)
    hessian = {(i, j): jnp.fft.irfftn(-ks[i] * ks[j] * phi1_k, s=shape)
               for i in range(3) for j in range(i, 3)}
    source = sum(hessian[i, i] * hessian[j, j] - hessian[i, j] ** 2
                 for i, j in itertools.combinations(range(3), 2))
    phi2_k = _inverse_laplacian(shape, box_size) * jnp.fft.rfftn(source)
    psi2 = _gradient(phi2_k, shape, box_size)
    return psi1, psi2


@dataclass
class ParticleState:
    """Particles at scale factor `a`: positions (M, 3) [Mpc/h], momenta (M, 3) [Mpc/h]."""

    a: float
    positions: jnp.ndarray
    momenta: jnp.ndarray

    @property
    def velocities(self) -> jnp.ndarray:
        """Peculiar velocities (M, 3) in km/s."""
        return KMS_PER_MOMENTUM * self.momenta / self.a


def lpt_initial_state(delta_lin: jnp.ndarray, box_size: float, cosmo: cosmology.Cosmology,
                      a_start: float) -> ParticleState:
    """Particles displaced and moving by 2LPT at `a_start` (delta_lin given at a = 1)."""
    psi1, psi2 = lpt_displacements(delta_lin, box_size)
    psi1, psi2 = psi1.reshape(-1, 3), psi2.reshape(-1, 3)
    d1 = float(cosmology.growth_factor(cosmo, a_start))
    f1 = float(cosmology.growth_rate(cosmo, a_start))
    d2, f2 = (float(v) for v in cosmology.second_order_growth(cosmo, a_start))
    momentum_scale = a_start**2 * float(cosmology.hubble_rate(cosmo, a_start))
    positions = lagrangian_positions(delta_lin.shape[0], box_size) + d1 * psi1 + d2 * psi2
    momenta = momentum_scale * (d1 * f1 * psi1 + d2 * f2 * psi2)
    return ParticleState(a_start, jnp.mod(positions, box_size), momenta)


# --------------------------------------------------------------------------- mass assignment

def _cic_stencil(positions: jnp.ndarray, shape, box_size: float):
    """Yields (flat cell index, weight) for the 2^d cells around each particle."""
    n = jnp.asarray(shape, jnp.int32)
    cell = positions * (jnp.asarray(shape, jnp.float32) / box_size) - 0.5  # centres at i+1/2
    lower = jnp.floor(cell)
    frac = cell - lower
    lower = lower.astype(jnp.int32)
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]
    for corner in itertools.product((0, 1), repeat=len(shape)):
        offset = jnp.asarray(corner, jnp.int32)
        index = jnp.mod(lower + offset, n)
        flat = jnp.sum(index * jnp.asarray(strides, jnp.int32), axis=-1)
        weight = jnp.prod(jnp.where(offset == 1, frac, 1.0 - frac), axis=-1)
        yield flat, weight


@jax.jit(static_argnames=("shape", "box_size"))
def cic_paint(positions: jnp.ndarray, shape: tuple[int, ...], box_size: float,
              weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Cloud-in-cell deposit of particle `weights` (default 1; (M,) or (M, C)) on a periodic
    grid of `shape`; returns (*shape) or (*shape, C). The total is conserved exactly."""
    shape = tuple(shape)
    values = jnp.ones(positions.shape[0], jnp.float32) if weights is None else weights
    channels = values.shape[1:]
    grid = jnp.zeros((int(np.prod(shape)), *channels), jnp.float32)
    for flat, w in _cic_stencil(positions, shape, box_size):
        grid = grid.at[flat].add(w.reshape(-1, *([1] * len(channels))) * values)
    return grid.reshape(*shape, *channels)


def cic_readout(field: jnp.ndarray, positions: jnp.ndarray, box_size: float) -> jnp.ndarray:
    """Interpolates a grid (*shape) or (*shape, C) to particle positions (M, d) with the CIC
    kernel; returns (M,) or (M, C)."""
    ndim = positions.shape[-1]
    shape = field.shape[:ndim]
    flat_field = field.reshape(int(np.prod(shape)), *field.shape[ndim:])
    out = 0.0
    for flat, w in _cic_stencil(positions, shape, box_size):
        out = out + w.reshape(-1, *([1] * (field.ndim - ndim))) * flat_field[flat]
    return out


def compensate_cic(field, box_size: float) -> jnp.ndarray:
    """Divides a CIC-painted field by the CIC window prod_i sinc^2(k_i H / 2) in Fourier
    space, so that its power spectrum is unbiased up to ~half the Nyquist frequency."""
    field = jnp.asarray(field, jnp.float32)
    shape = field.shape
    window = 1.0
    for k, n in zip(_wavevectors(shape, box_size, zero_nyquist=False), shape, strict=True):
        # jnp.sinc(x) = sin(pi x) / (pi x)
        window = window * jnp.sinc(k * (box_size / n) / (2 * np.pi)) ** 2
    return jnp.fft.irfftn(jnp.fft.rfftn(field) / window, s=shape)


# --------------------------------------------------------------------------- gravity and steps

def gravity(positions: jnp.ndarray, mesh: int, box_size: float, omega_m: float) -> jnp.ndarray:
    """PM force F = -(3/2) Om grad(phi) at the particles, laplacian(phi) = delta (H0 = 1).

    Green's function -1/k^2, 4-point finite-difference gradient (see `_gradient`), CIC
    painting and readout."""
    shape = (mesh,) * 3
    counts = cic_paint(positions, shape, box_size)
    delta = counts * (mesh**3 / positions.shape[0]) - 1.0
    phi_k = _inverse_laplacian(shape, box_size) * jnp.fft.rfftn(delta)
    force_grid = -1.5 * omega_m * _gradient(phi_k, shape, box_size, finite_difference=True)
    return cic_readout(force_grid, positions, box_size)


_jit_gravity = jax.jit(gravity, static_argnums=(1, 2, 3))


@dataclass(frozen=True)
class StepFactors:
    """Per-step FastPM kick and drift coefficients (float64 on the host)."""

    first_kick: np.ndarray
    drift: np.ndarray
    second_kick: np.ndarray


def fastpm_factors(cosmo: cosmology.Cosmology, a_steps: np.ndarray) -> StepFactors:
    """Kick-drift-kick coefficients between consecutive scale factors `a_steps`."""
    a0, a1 = a_steps[:-1], a_steps[1:]
    a_half = 0.5 * (a0 + a1)

    def growth(a):
        return cosmology.growth_factor(cosmo, a)

    def momentum_growth(a):
        return (a**2 * cosmology.hubble_rate(cosmo, a) * growth(a)
                * cosmology.growth_rate(cosmo, a))

    force_scale = 1.5 * cosmo.omega_m
    return StepFactors(
        first_kick=(momentum_growth(a_half) - momentum_growth(a0)) / (force_scale * growth(a0)),
        drift=(growth(a1) - growth(a0)) / momentum_growth(a_half),
        second_kick=(momentum_growth(a1) - momentum_growth(a_half)) / (force_scale * growth(a1)),
    )


@jax.jit(static_argnames=("mesh", "box_size", "omega_m"))
def kick_drift_kick(positions, momenta, force, factors, *, mesh: int, box_size: float,
                    omega_m: float):
    """One FastPM step; `force` is the force at the step's start, the end force is returned
    so the next step does not recompute it."""
    first_kick, drift, second_kick = factors
    momenta = momenta + first_kick * force
    positions = jnp.mod(positions + drift * momenta, box_size)
    force = gravity(positions, mesh, box_size, omega_m)
    momenta = momenta + second_kick * force
    return positions, momenta, force


def run_pm(state: ParticleState, cosmo: cosmology.Cosmology, box_size: float, mesh: int,
           n_steps: int, a_end: float = 1.0, progress: bool = False) -> ParticleState:
    """Evolves particles from `state.a` to `a_end` in `n_steps` FastPM steps linear in a."""
    a_steps = np.linspace(state.a, a_end, n_steps + 1)
    factors = fastpm_factors(cosmo, a_steps)
    positions, momenta = state.positions, state.momenta
    force = _jit_gravity(positions, mesh, float(box_size), float(cosmo.omega_m))
    steps = range(n_steps)
    for i in tqdm(steps, desc="PM steps", leave=False) if progress else steps:
        step_factors = tuple(jnp.float32(f[i]) for f in
                             (factors.first_kick, factors.drift, factors.second_kick))
        positions, momenta, force = kick_drift_kick(
            positions, momenta, force, step_factors, mesh=mesh, box_size=float(box_size),
            omega_m=float(cosmo.omega_m))
    return ParticleState(float(a_end), positions, momenta)


@dataclass(frozen=True)
class PMSettings:
    """Resolution and time stepping of a PM run."""

    particle_grid: int = 64  # particles per side
    mesh_factor: int = 2  # PM mesh cells per particle spacing, per side
    a_start: float = 0.1  # 2LPT start (z = 9)
    n_steps: int = 10


def simulate_particles(cosmo: cosmology.Cosmology, box_size: float, seed: int,
                       settings: PMSettings = PMSettings(), progress: bool = False,
                       a_end: float = 1.0) -> tuple[ParticleState, jnp.ndarray]:
    """Initial conditions + 2LPT + PM to `a_end`; returns the final particles and
    delta_L(a=1)."""
    delta_lin = linear_density(seed, settings.particle_grid, box_size,
                               lambda k: cosmology.linear_power(cosmo, k))
    state = lpt_initial_state(delta_lin, box_size, cosmo, settings.a_start)
    state = run_pm(state, cosmo, box_size, settings.mesh_factor * settings.particle_grid,
                   settings.n_steps, a_end=a_end, progress=progress)
    return state, delta_lin
