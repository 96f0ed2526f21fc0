r"""2D Ising configurations for the phase-classification study, with measured decorrelation.

    python -m data_tools.ising --out ising.h5 [--L 16,24,32,48,64] [--temps 1.0:3.5:26 | T1,T2,..]
                               [--samples 200] [--chains 8] [--seed 0] [--overwrite]

For every lattice size L and temperature T, `generate` runs C independent chains
(`data_tools.ising_mc`): checkerboard Metropolis, or, within `wolff_window` of T_c where
Metropolis slows down critically, Wolff cluster flips each followed by a Metropolis sweep.
A pilot run measures the integrated autocorrelation times τ of |m| and E/N (in updates:
sweeps, or cluster flips plus sweep);
then each chain is burnt in for 20 τ and stores a configuration every 2 τ, with
τ = max(τ_|m|, τ_E). Same arguments and seed, same file.

The file layout (format "fieldnet-ising") is described in `fieldnet.data.ising`, which
reads it.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from data_tools.ising_exact import CRITICAL_TEMPERATURE
from data_tools.ising_mc import (
    RECORDS_PER_BLOCK,
    abs_magnetization,
    energy_per_spin,
    initial_spins,
    integrated_autocorrelation_time,
    run_block,
)
from fieldnet import __version__, cli
from fieldnet.data import h5format
from fieldnet.data import ising as ising_format
from fieldnet.data.ising import read_ising
from fieldnet.errors import FieldnetError, OutputExists
from fieldnet.files import atomic_output

__all__ = ["DEFAULT_LATTICE_SIZES", "IsingLattice", "abs_magnetization", "default_temperatures",
           "energy_per_spin", "generate", "main", "read_ising", "write"]

SOURCE = "data_tools.ising"
DEFAULT_LATTICE_SIZES = (16, 24, 32, 48, 64)
BURN_IN_TAUS = 20
SPACING_TAUS = 2
# The pilot must be long against τ: per chain, Sokal's window W = 6 τ must fit many times,
# and the relative error of τ, ≈ sqrt(4 W / total length), is ~20 % for 500 τ in total.
PILOT_TAUS_PER_CHAIN = 30
PILOT_TOTAL_TAUS = 500
CLUSTER_ALGORITHM = "wolff+metropolis"
PILOT_BURN_IN = {"metropolis": 96, CLUSTER_ALGORITHM: 32}
PILOT_MIN_LENGTH = {"metropolis": 128, CLUSTER_ALGORITHM: 64}
PILOT_MAX_LENGTH = 1 << 15


def default_temperatures() -> np.ndarray:
    """30 temperatures from 1.0 to 3.5, spaced 0.04 between 1.9 and 2.62 around T_c ≈ 2.269."""
    return np.round(np.concatenate([np.linspace(1.0, 1.8, 5), np.linspace(1.9, 2.62, 19),
                                    [2.7, 2.85, 3.0, 3.15, 3.3, 3.5]]), 4)


@dataclass
class IsingLattice:
    """The samples of one lattice size, and how each temperature's chains were run."""

    L: int
    spins: np.ndarray           # (N, L, L) int8, ±1
    temperature: np.ndarray     # (N,) float32
    chain: np.ndarray           # (N,) int64
    temperatures: np.ndarray    # (nT,) the grid
    algorithm: list[str]        # per temperature: "metropolis" or "wolff+metropolis"
    tau_abs_m: np.ndarray       # (nT,) integrated autocorrelation times, in updates
    tau_energy: np.ndarray
    burn_in: np.ndarray         # (nT,) updates after the pilot
    updates_between: np.ndarray  # (nT,) updates between stored samples


@dataclass
class _ChainRun:
    samples: np.ndarray  # (S, C, L, L) int8
    algorithm: str
    tau_abs_m: float
    tau_energy: float
    burn_in: int
    updates_between: int


def choose_algorithm(T: float, wolff_window: float) -> str:
    """Wolff cluster flips (each followed by a Metropolis sweep) near T_c, else Metropolis."""
    return CLUSTER_ALGORITHM if abs(T - CRITICAL_TEMPERATURE) <= wolff_window else "metropolis"


def _measure_tau(spins, key, beta, algorithm, num_chains):
    """Pilot: extend a series of one record per update until it spans enough τ.

    Returns (spins, τ_|m|, τ_E); each τ is measured on the whole series so far.
    """
    abs_m, energy = [], []
    target = PILOT_MIN_LENGTH[algorithm]
    for block in itertools.count():
        states, block_abs_m, block_energy = run_block(spins, jax.random.fold_in(key, block),
                                                      beta, 1, algorithm)
        spins = states[-1]
        abs_m.append(np.asarray(block_abs_m))
        energy.append(np.asarray(block_energy))
        length = (block + 1) * RECORDS_PER_BLOCK
        if length < target:
            continue
        tau_m = integrated_autocorrelation_time(np.concatenate(abs_m))
        tau_e = integrated_autocorrelation_time(np.concatenate(energy))
        tau = max(tau_m, tau_e)
        target = max(PILOT_TAUS_PER_CHAIN * tau, PILOT_TOTAL_TAUS * tau / num_chains)
        if length >= min(target, PILOT_MAX_LENGTH):
            return spins, tau_m, tau_e


def run_chains(L: int, T: float, samples_per_chain: int, num_chains: int, key: jax.Array,
               wolff_window: float) -> _ChainRun:
    """Pilot, burn-in and sampling of `num_chains` chains at one (L, T)."""
    algorithm = choose_algorithm(T, wolff_window)
    start_key, pilot_burn_key, pilot_key, burn_key, sample_key = jax.random.split(key, 5)
    beta = jnp.full((num_chains,), 1.0 / T, jnp.float32)
    spins = initial_spins(start_key, num_chains, L)
    states, _, _ = run_block(spins, pilot_burn_key, beta,
                             -(-PILOT_BURN_IN[algorithm] // RECORDS_PER_BLOCK), algorithm)
    spins, tau_m, tau_e = _measure_tau(states[-1], pilot_key, beta, algorithm, num_chains)
    tau = max(tau_m, tau_e)
    burn_in_per_record = math.ceil(BURN_IN_TAUS * tau / RECORDS_PER_BLOCK)
    states, _, _ = run_block(spins, burn_key, beta, burn_in_per_record, algorithm)
    spins, spacing, stored = states[-1], math.ceil(SPACING_TAUS * tau), []
    for block in range(-(-samples_per_chain // RECORDS_PER_BLOCK)):
        states, _, _ = run_block(spins, jax.random.fold_in(sample_key, block), beta, spacing,
                                 algorithm)
        spins = states[-1]
        stored.append(np.asarray(states))
    return _ChainRun(np.concatenate(stored)[:samples_per_chain], algorithm, tau_m, tau_e,
                     burn_in_per_record * RECORDS_PER_BLOCK, spacing)


def generate(lattice_sizes, temperatures, samples: int, seed: int = 0, chains: int = 8,
             wolff_window: float = 0.08, progress: bool = True) -> list[IsingLattice]:
    """`samples` configurations per (L, T) from `chains` independent chains each.

    Each chain contributes ceil(samples / chains) or one fewer configurations. The chains
    of one (L, T) depend only on (seed, L, T), so adding temperatures or sizes leaves the
    others unchanged. `wolff_window` is the half-width, in T, of the Wolff window around
    T_c: measured at L = 64, a cluster flip costs ~10-20x a Metropolis sweep, so it pays
    only where Metropolis τ is ≳ 50 sweeps, i.e. close to T_c.
    """
    lattice_sizes, temperatures = _check_grid(lattice_sizes, temperatures)
    if samples < 1 or chains < 1:
        raise FieldnetError(f"samples and chains must be >= 1, got {samples} and {chains}")
    samples_per_chain = -(-samples // chains)
    root_key = jax.random.key(seed)
    bar = tqdm(total=len(lattice_sizes) * len(temperatures), disable=not progress,
               desc="ising", unit="T")
    lattices, next_chain = [], 0
    for L in lattice_sizes:
        runs = []
        for T in temperatures:
            key = jax.random.fold_in(jax.random.fold_in(root_key, L), round(T * 1e6))
            run = run_chains(L, T, samples_per_chain, chains, key, wolff_window)
            runs.append(run)
            bar.set_postfix(L=L, T=f"{T:.3f}", alg=run.algorithm,
                            tau=f"{max(run.tau_abs_m, run.tau_energy):.1f}")
            bar.update()
        lattices.append(_collect(L, temperatures, runs, samples, next_chain))
        next_chain += len(temperatures) * chains
    bar.close()
    return lattices


def _collect(L, temperatures, runs, samples, first_chain) -> IsingLattice:
    """Keeps `samples` per T (earliest first across chains) and orders them by chain."""
    spins, temperature, chain = [], [], []
    for t_index, (T, run) in enumerate(zip(temperatures, runs, strict=True)):
        S, C = run.samples.shape[:2]
        chain_ids = np.broadcast_to(first_chain + t_index * C + np.arange(C), (S, C))
        keep = np.argsort(chain_ids.reshape(-1)[:samples], kind="stable")
        spins.append(run.samples.reshape(S * C, L, L)[:samples][keep])
        chain.append(chain_ids.reshape(-1)[:samples][keep])
        temperature.append(np.full(samples, T, np.float32))
    return IsingLattice(
        L=L, spins=np.concatenate(spins), temperature=np.concatenate(temperature),
        chain=np.concatenate(chain).astype(np.int64), temperatures=np.asarray(temperatures),
        algorithm=[r.algorithm for r in runs],
        tau_abs_m=np.array([r.tau_abs_m for r in runs]),
        tau_energy=np.array([r.tau_energy for r in runs]),
        burn_in=np.array([r.burn_in for r in runs]),
        updates_between=np.array([r.updates_between for r in runs]))


def _check_grid(lattice_sizes, temperatures):
    sizes = [int(L) for L in lattice_sizes]
    if not sizes or any(L < 4 or L % 2 for L in sizes) or len(set(sizes)) != len(sizes):
        raise FieldnetError(f"lattice sizes must be distinct even integers >= 4 (the "
                            f"checkerboard update needs even L), got {list(lattice_sizes)}")
    temps = np.asarray(temperatures, np.float64)
    if temps.ndim != 1 or temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
        raise FieldnetError(f"temperatures must be positive finite numbers, got {temperatures}")
    if len(np.unique(np.round(temps, 6))) != temps.size:
        raise FieldnetError(f"temperatures must be distinct, got {list(temps)}")
    return sizes, [float(T) for T in temps]


def write(path, lattices: list[IsingLattice], seed: int, overwrite: bool = False) -> Path:
    """Writes the layout in the module docstring atomically."""
    with atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format=ising_format.FORMAT, version=ising_format.VERSION, ndim=2,
                       box_size=float(lattices[0].L), source=SOURCE,
                       created_by=f"fieldnet {__version__}",
                       lattice_sizes=np.array([lat.L for lat in lattices], np.int64),
                       seed=int(seed), critical_temperature=CRITICAL_TEMPERATURE)
        for lat in lattices:
            group = f.create_group(f"L{lat.L}")
            group.attrs.update(
                ndim=2, box_size=float(lat.L), temperatures=lat.temperatures,
                algorithm=lat.algorithm, tau_abs_m=lat.tau_abs_m, tau_energy=lat.tau_energy,
                tau_units="updates: a Metropolis sweep, or a Wolff cluster flip plus a sweep "
                          "(see algorithm)",
                burn_in=lat.burn_in, updates_between=lat.updates_between)
            group.create_group("fields")
            h5format.add_field(group, "spins", lat.spins.shape, units="spin",
                               description="Ising spins s = ±1 on a periodic square lattice",
                               data=lat.spins)
            params = np.stack([lat.temperature, np.full(len(lat.chain), lat.L)], axis=1)
            h5format.add_index(group, lat.chain, params, ["T", "L"])
    return Path(path)


def _parse_temperatures(text: str) -> np.ndarray:
    """'T1,T2,...' or 'start:stop:num' (inclusive, like numpy.linspace)."""
    try:
        if ":" in text:
            start, stop, num = text.split(":")
            return np.linspace(float(start), float(stop), int(num))
        return np.array([float(t) for t in text.split(",")])
    except ValueError:
        raise FieldnetError(f"--temps must be 'T1,T2,...' or 'start:stop:num', got {text!r}") \
            from None


def _parse_sizes(text: str) -> list[int]:
    try:
        return [int(L) for L in text.split(",")]
    except ValueError:
        raise FieldnetError(f"--L must be comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m data_tools.ising", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--L", default=",".join(map(str, DEFAULT_LATTICE_SIZES)),
                   help="comma-separated even lattice sizes (default %(default)s)")
    p.add_argument("--temps", default=None, help="'T1,T2,...' or 'start:stop:num' (default: "
                   "30 values in 1.0..3.5, spaced 0.04 near T_c)")
    p.add_argument("--samples", type=int, default=200, help="configurations per L and T "
                   "(default %(default)s)")
    p.add_argument("--chains", type=int, default=8, help="independent chains per L and T "
                   "(default %(default)s)")
    p.add_argument("--wolff-window", type=float, default=0.08, help="use Wolff cluster "
                   "updates for |T - T_c| <= this (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:  # refuse before minutes of sampling
        raise OutputExists(out)
    if not out.parent.exists():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    temperatures = default_temperatures() if args.temps is None else \
        _parse_temperatures(args.temps)
    if args.seed < 0:
        raise FieldnetError(f"--seed must be >= 0, got {args.seed}")
    lattices = generate(_parse_sizes(args.L), temperatures, args.samples, seed=args.seed,
                        chains=args.chains, wolff_window=args.wolff_window,
                        progress=not args.quiet)
    write(out, lattices, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {out}: L = {', '.join(str(lat.L) for lat in lattices)}, "
          f"{len(lattices[0].temperatures)} temperatures, {args.samples} samples each")
    return 0


if __name__ == "__main__":
    cli.run(main, flags=cli.OVERWRITE_FLAG)
