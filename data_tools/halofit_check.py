"""The z = 0 matter power spectrum of a PM run against CAMB halofit.

    result = halofit_ratio(cosmo, box_size=256.0, particle_grid=64, edges=...)

Cosmic variance is beaten with a paired-fixed pair of runs (Angulo & Pontzen 2016:
|delta_k| fixed to sqrt(P), one run with phases theta and one with theta + pi), which
cancels the leading realization-dependent terms, so a box of a few hundred Mpc/h measures
its mean P(k) to about a percent. The density is painted with CIC on the PM mesh and the
window is divided out. The test suite runs this at one resolution that reaches k = 1
h/Mpc; the benchmark `benchmarks.halofit` runs it at any others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from data_tools import cosmology, nbody
from fieldnet.eval import spectra
from fieldnet.grid import Grid


@dataclass(frozen=True)
class HalofitComparison:
    """Per k bin: mean |k| [h/Mpc], measured P, halofit P (mode-averaged), their ratio."""

    k: np.ndarray
    power: np.ndarray
    halofit: np.ndarray
    ratio: np.ndarray
    seconds: float


def density_contrast(positions, mesh: int, box_size: float) -> np.ndarray:
    """CIC-painted, window-compensated density contrast of particles on a mesh^3 grid."""
    counts = nbody.cic_paint(positions, (mesh,) * 3, box_size)
    return np.asarray(nbody.compensate_cic(spectra.overdensity(counts), box_size))


def halofit_ratio(cosmo: cosmology.Cosmology, *, box_size: float, particle_grid: int,
                  edges: np.ndarray, mesh_factor: int = 2, n_steps: int = 10,
                  a_start: float = 0.1, seed: int = 0,
                  progress: bool = False) -> HalofitComparison:
    """Mean P(k) at z = 0 of a paired-fixed pair of PM runs, against CAMB halofit."""
    mesh = mesh_factor * particle_grid
    grid = Grid.box((mesh,) * 3, box_size)
    start = time.perf_counter()
    powers = []
    for sign in (1.0, -1.0):
        delta = sign * nbody.linear_density(seed, particle_grid, box_size,
                                             lambda k: cosmology.linear_power(cosmo, k),
                                             fixed_amplitude=True)
        state = nbody.lpt_initial_state(delta, box_size, cosmo, a_start)
        final = nbody.run_pm(state, cosmo, box_size, mesh, n_steps, progress=progress)
        ps = spectra.power_spectrum(density_contrast(final.positions, mesh, box_size),
                                    grid, edges=edges)
        powers.append(ps.power)
    seconds = time.perf_counter() - start
    power = np.mean(powers, axis=0)
    halofit = spectra.mode_average(lambda k: cosmology.halofit_power(cosmo, k),
                                   grid, edges=edges)
    return HalofitComparison(ps.k, power, halofit, power / halofit, seconds)
