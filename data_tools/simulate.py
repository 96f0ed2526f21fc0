"""Paired matter / gas fields from the built-in simulator.

    python -m data_tools.simulate --out data/sim.h5                 # the default dataset
    python -m data_tools.simulate --out tiny.h5 --n-sims 2 --grid 32 --dim 3
    python -m data_tools.simulate --out z1.h5 --redshift 1          # fields at z = 1

Each simulation draws (Om, sigma8, T0, gamma, heating efficiency) from a seeded Latin
hypercube, runs 2LPT + PM (`data_tools.nbody`) in a periodic box to `--redshift` (default
0) with grid^3 particles, and paints the fields below on a grid^3 mesh: the gas model
(`data_tools.gas`) gives density, gas density and temperature, and the dark matter's
velocity moments come from the same cloud-in-cell deposit (`data_tools.phase_space`, whose
docstring says how empty cells, the dispersion and the divergence are defined).

| name | what | units |
|---|---|---|
| `density` | matter (dark matter) density, CIC | units of the mean (3D); M_sun/h per pixel (2D) |
| `velocity_x`, `_y` (`_z` in 3D) | mass-weighted dark-matter velocity | km/s (peculiar) |
| `velocity_dispersion` | mass-weighted 3D dark-matter velocity dispersion | km/s |
| `velocity_divergence` | theta = div(v) / (aH), signed | dimensionless |
| `gas_density` | gas density Delta_g = S_J[density] (gas model) | as `density` |
| `temperature` | mass-weighted gas temperature | K |

`--dim 3` stores the 3D grids. `--dim 2` stores CAMELS-like maps: the box is cut into
`--slabs` slabs along each of the 3 axes (axis 0 first) and each slab is projected: the
densities become total mass per pixel (rho_crit Om times the cell volume times the
density, summed through the slab), the velocity maps hold the two in-plane components in
the map's own axis order (`velocity_x` along its first axis), the dispersion is the
mass-weighted rms of the cells' own dispersion, and the divergence and temperature are
mass-weighted through the slab. `/sim_index` says which simulation a map came from,
`/params` holds that simulation's parameters, the root attribute `redshift` the redshift.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import qmc
from tqdm.auto import tqdm

from data_tools import cosmology, gas, nbody, phase_space
from fieldnet import cli
from fieldnet.cli import run
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError, OutputExists

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
    redshift: float = 0.0  # of the fields; the PM run stops at a = 1 / (1 + redshift)

    @property
    def scale_factor(self) -> float:
        return 1.0 / (1.0 + self.redshift)

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
        start = 1.0 / nbody.PMSettings.a_start - 1.0
        if not (np.isfinite(self.redshift) and 0 <= self.redshift < start):
            raise FieldnetError(f"--redshift must be at least 0 and below {start:g}, where the "
                                f"PM run starts, got {self.redshift}")


def latin_hypercube(n: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """(n, len(PARAM_NAMES)) parameters, one row per simulation, on a seeded Latin hypercube."""
    unit = qmc.LatinHypercube(d=len(PARAM_NAMES), seed=np.random.default_rng(seed)).random(n)
    low, high = np.array(list(PARAM_RANGES.values())).T
    return low + unit * (high - low)


def simulate_box(params: np.ndarray, spec: SimulationSpec, seed: np.random.SeedSequence
                 ) -> dict[str, np.ndarray]:
    """One simulation's fields (module docstring), float32: (1, G, G, G) for dim 3,
    (3 * slabs, G, G) maps for dim 2."""
    values = dict(zip(PARAM_NAMES, (float(v) for v in params), strict=True))
    cosmo = cosmology.Cosmology(omega_m=values["omega_m"], sigma8=values["sigma8"])
    ic_seed, gas_seed = (int(s) for s in seed.generate_state(2) % (2**31))
    settings = nbody.PMSettings(particle_grid=spec.grid, n_steps=spec.n_steps)
    state, _ = nbody.simulate_particles(cosmo, spec.box_size, ic_seed, settings,
                                        a_end=spec.scale_factor)
    gas_params = gas.GasParams(t0=values["t0"], gamma=values["gamma"],
                               heating_efficiency=values["heating_efficiency"])
    density, temperature, moments = gas.gas_fields(state, spec.grid, spec.box_size,
                                                   gas_params, gas_seed)
    density, temperature = np.asarray(density, np.float32), np.asarray(temperature, np.float32)
    gas_density = np.asarray(moments.gas_overdensity, np.float32)
    hubble = 100.0 * float(cosmology.hubble_rate(cosmo, spec.scale_factor))
    flow = phase_space.grid_fields(dark_matter_moments(moments, cosmo, spec.box_size),
                                   a=spec.scale_factor, hubble=hubble, dim=spec.dim,
                                   slabs=spec.slabs)
    del flow["density"]  # the gas model's, from the same deposit, is written
    if spec.dim == 3:
        fields = {"density": density, "temperature": temperature, **flow,
                  "gas_density": gas_density}
        return {name: values[None] for name, values in fields.items()}
    density, temperature = project_slabs(density, temperature, spec.slabs, spec.box_size,
                                         cosmo.omega_m)
    return {"density": density, "temperature": temperature, **flow,
            "gas_density": project_mass(gas_density, spec.slabs, spec.box_size, cosmo.omega_m)}


def dark_matter_moments(moments: gas.ParticleMoments, cosmo: cosmology.Cosmology,
                        box_size: float) -> phase_space.MomentGrid:
    """The gas model's CIC deposit of the particles (unit weights) as masses in M_sun/h."""
    deposit = np.asarray(moments.deposit, np.float64)
    particle_mass = cosmology.RHO_CRIT * cosmo.omega_m * box_size**3 / deposit[..., 0].sum()
    deposit *= particle_mass
    return phase_space.MomentGrid.from_sums(box_size, deposit[..., 0], deposit[..., 1:4],
                                            deposit[..., 4])


def project_mass(density: np.ndarray, slabs: int, box_size: float, omega_m: float
                 ) -> np.ndarray:
    """(3 * slabs, G, G) mass per pixel [M_sun/h] of a density in units of the mean."""
    grid = density.shape[0]
    cell_mass = cosmology.RHO_CRIT * omega_m * (box_size / grid) ** 3
    return (phase_space.column_sums(np.asarray(density, np.float64), slabs)
            * cell_mass).astype(np.float32)


def project_slabs(density: np.ndarray, temperature: np.ndarray, slabs: int, box_size: float,
                  omega_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(3 * slabs, G, G) maps: mass per pixel [M_sun/h] and mass-weighted temperature [K]
    (`phase_space.project`: a column with no particles, a few per thousand pixels at
    z = 0, takes the plain mean)."""
    temperature_maps = phase_space.project(np.asarray(density, np.float64), temperature, slabs)
    return (project_mass(density, slabs, box_size, omega_m),
            temperature_maps.astype(np.float32))


def _field_metadata(spec: SimulationSpec) -> dict:
    """units, descriptions and log floors of every field the simulator writes."""
    at = f"at z = {spec.redshift:g}"
    flow = "mass-weighted dark-matter peculiar velocity"
    descriptions = {
        "density": f"matter density 1 + delta (CIC of the PM particles) {at}",
        "temperature": f"gas temperature {at} (data_tools.gas model)",
        "velocity_x": f"{flow}, x component (CIC) {at}",
        "velocity_y": f"{flow}, y component (CIC) {at}",
        "velocity_z": f"{flow}, z component (CIC) {at}",
        "velocity_dispersion": f"mass-weighted 3D dark-matter velocity dispersion (CIC) {at}",
        "velocity_divergence": f"dark-matter velocity divergence theta = div v / (a H) {at} "
                               "(4th-order finite difference of the mean velocity)",
        "gas_density": "gas overdensity Delta_g: the matter density smoothed on the Jeans "
                       f"scale of the gas model {at}",
    }
    units = {name: phase_space.field_units(name, spec.dim) for name in descriptions}
    log_floors = phase_space.log_floors(descriptions)
    if spec.dim == 3:
        return dict(units=units, descriptions=descriptions, log_floors=log_floors)
    del units["velocity_z"], descriptions["velocity_z"]
    slab = f"through a {spec.box_size / spec.slabs:g} Mpc/h slab"
    descriptions.update({
        "density": f"total matter mass per pixel {slab} {at}",
        "gas_density": f"gas overdensity Delta_g of the gas model as mass per pixel {slab} "
                       f"{at}",
        "temperature": f"mass-weighted gas temperature through the slab {at}",
        "velocity_x": f"{flow} along the map's first axis, {slab} {at}",
        "velocity_y": f"{flow} along the map's second axis, {slab} {at}",
        "velocity_dispersion": "mass-weighted 3D dark-matter velocity dispersion " + slab
                               + f" (rms of the cells' dispersions) {at}",
        "velocity_divergence": f"dark-matter velocity divergence theta = div v / (a H), "
                               f"mass-weighted {slab} {at}"})
    pixel_mass = cosmology.RHO_CRIT * PARAM_RANGES["omega_m"][0] * (
        spec.box_size / spec.grid) ** 3 * (spec.grid // spec.slabs)
    log_floors.update(phase_space.log_floors(("density", "gas_density"),
                                             pixel_mass))   # of the mean at Om = 0.2
    return dict(units=units, descriptions=descriptions, log_floors=log_floors)


def simulate_dataset(out: str | Path, n_sims: int = SimulationSpec.n_sims,
                     grid: int = SimulationSpec.grid, box: float = SimulationSpec.box_size,
                     seed: int = SimulationSpec.seed, dim: int = SimulationSpec.dim,
                     overwrite: bool = False, progress: bool = True,
                     slabs: int = SimulationSpec.slabs,
                     n_steps: int = SimulationSpec.n_steps,
                     redshift: float = SimulationSpec.redshift) -> Path:
    """Runs the simulations and writes a fieldnet HDF5 file at `out` (atomically), one
    simulation at a time, so memory holds one simulation's fields."""
    spec = SimulationSpec(n_sims, grid, float(box), seed, dim, slabs, n_steps, float(redshift))
    spec.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExists(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    lhs_seed, *sim_seeds = np.random.SeedSequence(seed).spawn(n_sims + 1)
    params = latin_hypercube(n_sims, lhs_seed)
    per_sim = 1 if dim == 3 else 3 * slabs
    metadata = _field_metadata(spec)
    with h5format.create(out, ndim=dim, box_size=spec.box_size, source=SOURCE,
                         overwrite=overwrite) as f:
        f.attrs["redshift"] = spec.redshift
        stored = {}
        for i in tqdm(range(n_sims), desc="simulations", disable=not progress):
            fields = simulate_box(params[i], spec, sim_seeds[i])
            for name, values in fields.items():
                if name not in stored:
                    stored[name] = h5format.add_field(
                        f, name, (n_sims * per_sim, *values.shape[1:]),
                        units=metadata["units"][name],
                        description=metadata["descriptions"][name],
                        log_floor=metadata["log_floors"].get(name))
                stored[name][i * per_sim:(i + 1) * per_sim] = values
        sim_index = np.repeat(np.arange(n_sims, dtype=np.int64), per_sim)
        h5format.add_index(f, sim_index, params[sim_index], PARAM_NAMES)
    return out


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
    parser.add_argument("--redshift", type=float, default=defaults.redshift,
                        help="redshift of the fields: the PM run stops at a = 1 / (1 + z) "
                             "(default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = simulate_dataset(args.out, args.n_sims, args.grid, args.box, args.seed, args.dim,
                            args.overwrite, progress=not args.quiet, slabs=args.slabs,
                            n_steps=args.steps, redshift=args.redshift)
    info = h5format.read_info(path)
    print(f"wrote {path}: {info.num_samples} samples of "
          f"{info.fields['density'].shape[1:]} from {args.n_sims} simulations at "
          f"z = {args.redshift:g} ({', '.join(info.fields)})")
    return 0


if __name__ == "__main__":
    run(main, flags=cli.OVERWRITE_FLAG)
