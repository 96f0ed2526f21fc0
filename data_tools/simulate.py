"""Paired (matter density, gas temperature) data from the built-in simulator.

    python -m data_tools.simulate --out data/sim.h5                 # the default dataset
    python -m data_tools.simulate --out tiny.h5 --n-sims 2 --grid 32 --dim 3

Each simulation draws (Om, sigma8, T0, gamma, heating efficiency) from a seeded Latin
hypercube, runs 2LPT + PM (`data_tools.nbody`) in a periodic box to z = 0 with grid^3
particles, and paints density and gas temperature (`data_tools.gas`) on a grid^3 mesh.

`--dim 3` stores the 3D grids: density in units of the mean (1 + delta) and temperature
in K. `--dim 2` stores CAMELS-like maps: the box is cut into `--slabs` slabs along each
of the 3 axes and each slab is projected: density = total matter mass per pixel in
M_sun/h (rho_crit Om times the cell volume, summed through the slab) and temperature =
mass-weighted mean temperature in K. `/sim_index` says which simulation a map came
from, `/params` holds that simulation's parameters.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import qmc
from tqdm.auto import tqdm

from data_tools import cosmology, gas, nbody
from fieldnet import cli
from fieldnet.cli import run
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError

SOURCE = "data_tools.simulate"
PARAM_RANGES = {  # Latin-hypercube ranges of the per-simulation parameters
    "omega_m": (0.2, 0.4),
    "sigma8": (0.7, 0.9),
    "t0": (5e3, 2e4),  # K
    "gamma": (1.3, 1.6),
    "heating_efficiency": (0.2, 1.0),
}
PARAM_NAMES = tuple(PARAM_RANGES)
MIN_GRID, MAX_GRID = 16, 256
DENSITY_LOG_FLOOR = 1e-3  # of the mean density: CIC leaves some void cells empty
TEMPERATURE_LOG_FLOOR = 10.0  # K, below any model temperature


@dataclass(frozen=True)
class SimulationSpec:
    """What `simulate_dataset` makes; the defaults build the default dataset, 14
    simulations x 12 maps of 64^2 pixels (measured 34 s on 2 idle CPU cores, 86 s when
    they were shared with other work)."""

    n_sims: int = 14
    grid: int = 64
    box_size: float = 25.0  # Mpc/h
    seed: int = 0
    dim: int = 2
    slabs: int = 4  # per axis, for dim = 2
    n_steps: int = 10

    def validate(self) -> None:
        if self.n_sims < 1:
            raise FieldnetError(f"--n-sims must be at least 1, got {self.n_sims}")
        if not (MIN_GRID <= self.grid <= MAX_GRID and self.grid & (self.grid - 1) == 0):
            raise FieldnetError(f"--grid must be a power of 2 between {MIN_GRID} and "
                                f"{MAX_GRID}, got {self.grid}")
        if not (np.isfinite(self.box_size) and self.box_size > 0):
            raise FieldnetError(f"--box must be a positive length in Mpc/h, got {self.box_size}")
        if self.dim not in (2, 3):
            raise FieldnetError(f"--dim must be 2 or 3, got {self.dim}")
        if self.dim == 2 and (self.slabs < 1 or self.grid % self.slabs):
            raise FieldnetError(f"--slabs must divide --grid {self.grid}, got {self.slabs}")
        if self.n_steps < 1:
            raise FieldnetError(f"--steps must be at least 1, got {self.n_steps}")
        if self.seed < 0:
            raise FieldnetError(f"--seed must be non-negative, got {self.seed}")


def latin_hypercube(n: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """(n, len(PARAM_NAMES)) parameters, one row per simulation, on a seeded Latin hypercube."""
    unit = qmc.LatinHypercube(d=len(PARAM_NAMES), seed=np.random.default_rng(seed)).random(n)
    low, high = np.array(list(PARAM_RANGES.values())).T
    return low + unit * (high - low)


def simulate_box(params: np.ndarray, spec: SimulationSpec, seed: np.random.SeedSequence
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One simulation: 3D density (units of the mean) and temperature [K], float32."""
    values = dict(zip(PARAM_NAMES, (float(v) for v in params), strict=True))
    cosmo = cosmology.Cosmology(omega_m=values["omega_m"], sigma8=values["sigma8"])
    ic_seed, gas_seed = (int(s) for s in seed.generate_state(2) % (2**31))
    settings = nbody.PMSettings(particle_grid=spec.grid, n_steps=spec.n_steps)
    state, _ = nbody.simulate_particles(cosmo, spec.box_size, ic_seed, settings)
    gas_params = gas.GasParams(t0=values["t0"], gamma=values["gamma"],
                               heating_efficiency=values["heating_efficiency"])
    density, temperature, _ = gas.gas_fields(state, spec.grid, spec.box_size, gas_params,
                                             gas_seed)
    return np.asarray(density, np.float32), np.asarray(temperature, np.float32)


def project_slabs(density: np.ndarray, temperature: np.ndarray, slabs: int, box_size: float,
                  omega_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(3 * slabs, G, G) maps: mass per pixel [M_sun/h] and mass-weighted temperature [K]."""
    grid = density.shape[0]
    cell_mass = cosmology.RHO_CRIT * omega_m * (box_size / grid) ** 3
    depth = grid // slabs
    mass_maps, temperature_maps = [], []
    for axis in range(3):
        rho = np.moveaxis(density, axis, 0).reshape(slabs, depth, grid, grid).astype(np.float64)
        temp = np.moveaxis(temperature, axis, 0).reshape(slabs, depth, grid, grid)
        mass = rho.sum(axis=1)
        mass_maps.append(mass * cell_mass)
        # a column with no particles at all (never seen at these depths) takes the plain mean
        weighted = (rho * temp).sum(axis=1)
        temperature_maps.append(np.where(mass > 0, weighted / np.where(mass > 0, mass, 1.0),
                                         temp.mean(axis=1)))
    return (np.concatenate(mass_maps).astype(np.float32),
            np.concatenate(temperature_maps).astype(np.float32))


def _field_metadata(spec: SimulationSpec) -> dict:
    if spec.dim == 3:
        return dict(
            units={"density": "mean density", "temperature": "K"},
            descriptions={
                "density": "matter density 1 + delta (CIC of the PM particles) at z = 0",
                "temperature": "gas temperature at z = 0 (data_tools.gas model)"},
            log_floors={"density": DENSITY_LOG_FLOOR, "temperature": TEMPERATURE_LOG_FLOOR})
    pixel_mass = cosmology.RHO_CRIT * PARAM_RANGES["omega_m"][0] * (
        spec.box_size / spec.grid) ** 3 * (spec.grid // spec.slabs)
    return dict(
        units={"density": "M_sun/h", "temperature": "K"},
        descriptions={
            "density": f"total matter mass per pixel through a {spec.box_size / spec.slabs:g} "
                       "Mpc/h slab at z = 0",
            "temperature": "mass-weighted gas temperature through the slab at z = 0"},
        log_floors={"density": DENSITY_LOG_FLOOR * pixel_mass,  # of the mean at Om = 0.2
                    "temperature": TEMPERATURE_LOG_FLOOR})


def simulate_dataset(out: str | Path, n_sims: int = SimulationSpec.n_sims,
                     grid: int = SimulationSpec.grid, box: float = SimulationSpec.box_size,
                     seed: int = SimulationSpec.seed, dim: int = SimulationSpec.dim,
                     overwrite: bool = False, progress: bool = True,
                     slabs: int = SimulationSpec.slabs,
                     n_steps: int = SimulationSpec.n_steps) -> Path:
    """Runs the simulations and writes a fieldnet HDF5 file at `out` (atomically)."""
    spec = SimulationSpec(n_sims, grid, float(box), seed, dim, slabs, n_steps)
    spec.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    lhs_seed, *sim_seeds = np.random.SeedSequence(seed).spawn(n_sims + 1)
    params = latin_hypercube(n_sims, lhs_seed)
    densities, temperatures, sim_index = [], [], []
    for i in tqdm(range(n_sims), desc="simulations", disable=not progress):
        density, temperature = simulate_box(params[i], spec, sim_seeds[i])
        if dim == 2:
            omega_m = params[i, PARAM_NAMES.index("omega_m")]
            density, temperature = project_slabs(density, temperature, slabs, spec.box_size,
                                                 omega_m)
        else:
            density, temperature = density[None], temperature[None]
        densities.append(density)
        temperatures.append(temperature)
        sim_index.extend([i] * len(density))
    sim_index = np.asarray(sim_index, np.int64)
    return h5format.write_arrays(
        out, {"density": np.concatenate(densities), "temperature": np.concatenate(temperatures)},
        ndim=dim, box_size=spec.box_size, source=SOURCE, sim_index=sim_index,
        params=params[sim_index], param_names=PARAM_NAMES, overwrite=overwrite,
        **_field_metadata(spec))


def build_parser() -> argparse.ArgumentParser:
    defaults = SimulationSpec()
    parser = cli.ArgumentParser(
        prog="python -m data_tools.simulate",
        description="Simulate paired matter-density / gas-temperature fields (2LPT + PM "
                    "N-body and a photo-ionization + shock-heating gas model) and write a "
                    "fieldnet HDF5 file.")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.add_argument("--n-sims", type=int, default=defaults.n_sims,
                        help="number of simulations (default %(default)s)")
    parser.add_argument("--grid", type=int, default=defaults.grid,
                        help="particles and mesh cells per side, a power of 2 "
                             "(default %(default)s)")
    parser.add_argument("--box", type=float, default=defaults.box_size,
                        help="box side in Mpc/h (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="random seed; the same seed gives identical files "
                             "(default %(default)s)")
    parser.add_argument("--dim", type=int, default=defaults.dim, choices=(2, 3),
                        help="2: projected slab maps, 3: full grids (default %(default)s)")
    parser.add_argument("--slabs", type=int, default=defaults.slabs,
                        help="slabs per axis for --dim 2 (default %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.n_steps,
                        help="FastPM steps from a = 0.1 to 1; 20 brings P(k) at k = 1 h/Mpc "
                             "from ~18%% to ~10%% below halofit (BENCHMARKS.md) "
                             "(default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = simulate_dataset(args.out, args.n_sims, args.grid, args.box, args.seed, args.dim,
                            args.overwrite, progress=not args.quiet, slabs=args.slabs,
                            n_steps=args.steps)
    info = h5format.read_info(path)
    print(f"wrote {path}: {info.num_samples} samples of "
          f"{info.fields['density'].shape[1:]} from {args.n_sims} simulations")
    return 0


if __name__ == "__main__":
    run(main)
