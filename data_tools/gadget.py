"""Particle snapshots in the Gadget HDF5 layout, read in chunks and in fieldnet's units.

The layout is shared by Gadget-2/3/4, AREPO (IllustrisTNG, CAMELS), GIZMO (SIMBA, FIRE),
EAGLE and SWIFT:

    /Header      attrs BoxSize, Redshift, NumPart_ThisFile, NumPart_Total(_HighWord),
                 MassTable, NumFilesPerSnapshot, Omega0, OmegaLambda, HubbleParam
    /Parameters  Gadget-4: the cosmology and units that its header no longer holds
    /Units       UnitLength_in_cm, UnitMass_in_g, UnitVelocity_in_cm_per_s (some codes),
                 or SWIFT's "Unit length in cgs (U_L)", "Unit mass in cgs (U_M)", ...
    /Cosmology   SWIFT: Omega_m, Omega_lambda, h
    /PartType0   gas: Coordinates, Velocities, Masses, InternalEnergy, ElectronAbundance,
                 GFM_Metals (AREPO; column 0 is the hydrogen mass fraction)
    /PartType1   dark matter: Coordinates, Velocities, Masses (or Header MassTable[1])

A snapshot is one file, or `NumFilesPerSnapshot` files `<base>.<k>.hdf5` (k = 0 ... N - 1,
usually in a folder `snapdir_XXX/`).

Units. Code units come from UnitLength_in_cm, UnitMass_in_g and UnitVelocity_in_cm_per_s
(in /Header, /Parameters or /Units), defaulting to Gadget's kpc/h, 1e10 M_sun/h and km/s.
Gadget-family units carry h (lengths in kpc/h); SWIFT's are h-free (Mpc, 1e10 M_sun), so
its lengths and masses are multiplied by h here. Everything returned is in comoving Mpc/h,
M_sun/h, peculiar km/s and K.

Velocities. Gadget-2/3/4, AREPO and GIZMO store w = v_pec / sqrt(a), so v_pec = sqrt(a) w
(Gadget-4 documentation, "Snapshot file format"; IllustrisTNG data specifications,
Velocities in km sqrt(a)/s). SWIFT stores the peculiar velocity a dx/dt itself (the
dataset attribute "a-scale exponent" is 0). A dataset's own exponent attribute, SWIFT's
"a-scale exponent", AREPO/Gadget-4's "a_scaling" or EAGLE's "aexp-scale-exponent", is
used when present; without one the Gadget convention (1/2) is assumed. The same
attributes give the scale-factor power of InternalEnergy (0 unless stated; SWIFT's
comoving internal energies carry -2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from data_tools.cosmology import BOLTZMANN, PROTON_MASS
from fieldnet.data.h5format import open_file
from fieldnet.errors import FieldnetError, data_error

GAS, DARK_MATTER = 0, 1
CM_PER_MPC = 3.085678e24
GRAMS_PER_SOLAR_MASS = 1.989e33
CM_PER_KM = 1e5
# Gadget's default code units: kpc/h, 1e10 M_sun/h, km/s.
DEFAULT_UNITS = {"UnitLength_in_cm": 3.085678e21, "UnitMass_in_g": 1.989e43,
                 "UnitVelocity_in_cm_per_s": 1e5}
SWIFT_UNITS = {"UnitLength_in_cm": "Unit length in cgs (U_L)",
               "UnitMass_in_g": "Unit mass in cgs (U_M)",
               "UnitTime_in_s": "Unit time in cgs (U_t)"}
HYDROGEN_FRACTION = 0.76  # primordial hydrogen mass fraction X, unless the file gives it
ADIABATIC_INDEX = 5.0 / 3.0
# Positions this far outside [0, BoxSize) (a fraction of the box) are rounding, and wrap.
BOX_TOLERANCE = 1e-5
CHUNK = 2**20  # particles read at a time
_MEMBER = re.compile(r"^(?P<base>.+)\.(?P<index>\d+)\.(?P<ext>hdf5|h5)$")


@dataclass(frozen=True)
class Snapshot:
    """What the headers of one snapshot say, in fieldnet's units.

    Attributes:
      files: every file of the snapshot, in order.
      box_size: comoving box side [Mpc/h].
      redshift, omega_m, omega_lambda, h: the cosmology of the run (h = H0 / 100 km/s/Mpc).
      length_unit, mass_unit, velocity_unit: one code unit in Mpc/h, M_sun/h and km/s.
      mass_table: per type, the mass of every particle [M_sun/h] (0: a Masses dataset).
      counts: per file, the number of particles of each type in it.
      code: "SWIFT" or "Gadget" (the family whose conventions apply).
    """

    files: tuple[Path, ...]
    box_size: float
    redshift: float
    omega_m: float
    omega_lambda: float
    h: float
    length_unit: float
    mass_unit: float
    velocity_unit: float
    mass_table: tuple[float, ...]
    counts: tuple[tuple[int, ...], ...]
    code: str

    @property
    def scale_factor(self) -> float:
        return 1.0 / (1.0 + self.redshift)

    @property
    def hubble(self) -> float:
        """H(a) in km/s per comoving Mpc/h: 100 E(a), with curvature 1 - Om - OL."""
        a = self.scale_factor
        curvature = 1.0 - self.omega_m - self.omega_lambda
        return 100.0 * float(np.sqrt(self.omega_m / a**3 + curvature / a**2
                                     + self.omega_lambda))

    def total(self, ptype: int) -> int:
        """Particles of type `ptype` in all files."""
        return sum(c[ptype] if ptype < len(c) else 0 for c in self.counts)

    def chunks(self, ptype: int, chunk: int = CHUNK) -> int:
        """How many chunks `read_particles` yields for `ptype`."""
        return sum(-(-(c[ptype] if ptype < len(c) else 0) // chunk) for c in self.counts)


@dataclass
class Particles:
    """One chunk: positions (M, 3) comoving Mpc/h in [0, box), masses (M,) M_sun/h,
    velocities (M, 3) peculiar km/s, temperature (M,) K (gas, when asked for), and the
    file it came from."""

    positions: np.ndarray
    masses: np.ndarray
    velocities: np.ndarray
    temperature: np.ndarray | None
    file: Path


def gas_temperature(internal_energy, electron_abundance=None,
                    hydrogen_fraction=HYDROGEN_FRACTION) -> np.ndarray:
    """T [K] = (gamma - 1) u mu m_p / k_B, gamma = 5/3, with mu = 4 / (1 + 3X + 4X x_e) in
    units of m_p: the IllustrisTNG data documentation's formula (FAQ, "How do I convert
    the internal energy to gas temperature?"; https://www.tng-project.org/data/docs/faq/).

    Args:
      internal_energy: u, thermal energy per unit mass [(km/s)^2] (physical).
      electron_abundance: x_e = n_e / n_H; None assumes hydrogen and helium fully ionised,
        x_e = 1 + Y / (2X) with Y = 1 - X (mu = 4 / (3 + 5X) = 0.588 for X = 0.76).
      hydrogen_fraction: X, the hydrogen mass fraction (a number or one per particle).
    """
    u = np.asarray(internal_energy, np.float64) * (CM_PER_KM / 100.0) ** 2  # (m/s)^2
    x = np.asarray(hydrogen_fraction, np.float64)
    if electron_abundance is None:
        x_e = 1.0 + (1.0 - x) / (2.0 * x)
    else:
        x_e = np.asarray(electron_abundance, np.float64)
    mu = 4.0 / (1.0 + 3.0 * x + 4.0 * x * x_e)
    return (ADIABATIC_INDEX - 1.0) * u * mu * PROTON_MASS / BOLTZMANN


def snapshot_files(path: str | Path) -> list[Path]:
    """All files of the snapshot that `path` (a file, any member `<base>.<k>.hdf5` of a
    multi-file set, or its folder) belongs to, found from `NumFilesPerSnapshot`."""
    path = Path(path)
    if path.is_dir():
        members = sorted(p for p in path.iterdir() if p.suffix in (".hdf5", ".h5"))
        if not members:
            raise FieldnetError(f"{path}: no .hdf5 snapshot files in this folder")
        path = next((p for p in members if _MEMBER.match(p.name)
                     and _MEMBER.match(p.name)["index"] == "0"), members[0])
    with _open_snapshot(path) as f:
        n_files = int(_scalar(f["Header"].attrs.get("NumFilesPerSnapshot", 1)))
    if n_files <= 1:
        return [path]
    member = _MEMBER.match(path.name)
    if member is None:
        raise data_error(path, "Header", reason=f"NumFilesPerSnapshot is {n_files} but the "
                         "name is not <base>.<k>.hdf5, so the other files cannot be found")
    files = [path.with_name(f"{member['base']}.{k}.{member['ext']}") for k in range(n_files)]
    for k, file in enumerate(files):
        if not file.is_file():
            raise FieldnetError(f"{file}: missing file {k} of the {n_files} of this snapshot "
                                f"(NumFilesPerSnapshot in {path.name})")
    return files


def read_snapshot(path: str | Path) -> Snapshot:
    """Reads and checks the headers of every file of the snapshot at `path`."""
    files = snapshot_files(path)
    counts = []
    for file in files:
        with _open_snapshot(file) as f:
            header = f["Header"].attrs
            if "NumPart_ThisFile" not in header:
                raise data_error(file, "Header", reason="no NumPart_ThisFile attribute")
            counts.append(tuple(int(n) for n in np.ravel(header["NumPart_ThisFile"])))
    with _open_snapshot(files[0]) as f:
        return _describe(f, files, tuple(counts))


def _describe(f: h5py.File, files: list[Path], counts: tuple) -> Snapshot:
    path = files[0]
    header = f["Header"].attrs
    for name in ("BoxSize", "Redshift"):
        if name not in header:
            raise data_error(path, "Header", reason=f"no {name} attribute")
    swift = _text(header.get("Code", "")) == "SWIFT" or (
        "Units" in f and SWIFT_UNITS["UnitLength_in_cm"] in f["Units"].attrs)
    groups = [f[g].attrs for g in ("Header", "Parameters", "Units", "Cosmology") if g in f]

    def attr(*names, default=None):
        for group in groups:
            for name in names:
                if name in group:
                    return _scalar(group[name])
        if default is None:
            raise data_error(path, "Header", reason=f"no {names[0]} attribute (looked in "
                             "Header, Parameters, Units and Cosmology)")
        return default

    omega_m = attr("Omega0", "Omega_m")
    omega_lambda = attr("OmegaLambda", "Omega_lambda", default=1.0 - omega_m)
    h = attr("HubbleParam", "h")
    if swift:
        length_cm = attr(SWIFT_UNITS["UnitLength_in_cm"], "UnitLength_in_cm")
        mass_g = attr(SWIFT_UNITS["UnitMass_in_g"], "UnitMass_in_g")
        velocity_cms = length_cm / attr(SWIFT_UNITS["UnitTime_in_s"], "UnitTime_in_s")
        h_factor = h  # h-free units: Mpc -> Mpc/h and M_sun -> M_sun/h
    else:
        length_cm, mass_g, velocity_cms = (attr(name, default=value)
                                           for name, value in DEFAULT_UNITS.items())
        h_factor = 1.0
    length_unit = length_cm / CM_PER_MPC * h_factor
    mass_unit = mass_g / GRAMS_PER_SOLAR_MASS * h_factor
    box = np.ravel(np.asarray(header["BoxSize"], np.float64))
    if not (np.all(box == box[0]) and np.isfinite(box[0]) and box[0] > 0):
        raise data_error(path, "Header", reason=f"BoxSize must be one positive length (a "
                         f"cubic box), got {box.tolist()}")
    redshift = _scalar(header["Redshift"])
    if not (np.isfinite(redshift) and redshift > -1):
        raise data_error(path, "Header", reason=f"Redshift must be > -1, got {redshift}")
    mass_table = np.ravel(np.asarray(header.get("MassTable", np.zeros(6)), np.float64))
    return Snapshot(tuple(files), float(box[0]) * length_unit, redshift, omega_m,
                    omega_lambda, h, length_unit, mass_unit, velocity_cms / CM_PER_KM,
                    tuple(float(m) * mass_unit for m in mass_table), counts,
                    "SWIFT" if swift else "Gadget")


def read_particles(snap: Snapshot, ptype: int, *, temperature: bool = False,
                   chunk: int = CHUNK) -> Iterator[Particles]:
    """Yields the particles of type `ptype`, `chunk` at a time, file after file, in
    fieldnet's units (`Particles`); with `temperature`, gas temperatures too.

    Raises FieldnetError (naming file and dataset) for a missing dataset, NaN or infinite
    values, or positions outside the box by more than BOX_TOLERANCE of it (positions
    within it, and exactly at BoxSize, wrap periodically)."""
    a = snap.scale_factor
    for path, counts in zip(snap.files, snap.counts, strict=True):
        n = counts[ptype] if ptype < len(counts) else 0
        if n == 0:
            continue
        with open_file(path) as f:
            group = f.get(f"PartType{ptype}")
            if group is None:
                raise data_error(path, f"PartType{ptype}", reason=f"missing, but the header "
                                 f"counts {n} particles of type {ptype}")
            names = ["Coordinates", "Velocities"]
            table_mass = snap.mass_table[ptype] if ptype < len(snap.mass_table) else 0.0
            if "Masses" in group or table_mass == 0:
                names.append("Masses")
            if temperature:
                names.append(_first_present(group, path, ("InternalEnergy",
                                                          "InternalEnergies")))
            sets = {name: _dataset(group, path, name, n) for name in names}
            velocity_factor = snap.velocity_unit * a ** _a_exponent(sets["Velocities"], 0.5)
            energy = next((sets[k] for k in ("InternalEnergy", "InternalEnergies")
                           if k in sets), None)
            energy_factor = (snap.velocity_unit**2 * a ** _a_exponent(energy, 0.0)
                             if energy is not None else None)
            electrons = group.get("ElectronAbundance") if temperature else None
            metals = group.get("GFM_Metals") if temperature else None
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                where = f"{group.name}/%s[{start}:{stop}]"
                positions = _wrap(_finite(sets["Coordinates"][start:stop], path, where
                                          % "Coordinates") * snap.length_unit,
                                  snap.box_size, path, where % "Coordinates")
                velocities = _finite(sets["Velocities"][start:stop], path,
                                     where % "Velocities") * velocity_factor
                if "Masses" in sets:
                    masses = _finite(sets["Masses"][start:stop], path,
                                     where % "Masses") * snap.mass_unit
                else:
                    masses = np.full(stop - start, table_mass)
                temperatures = None
                if temperature:
                    u = _finite(energy[start:stop], path, where % energy.name.rsplit("/")[-1])
                    x_e = None if electrons is None else _finite(
                        electrons[start:stop], path, where % "ElectronAbundance")
                    x_h = (HYDROGEN_FRACTION if metals is None else
                           _finite(metals[start:stop, 0], path, where % "GFM_Metals"))
                    temperatures = gas_temperature(u * energy_factor, x_e, x_h)
                yield Particles(positions, masses, velocities, temperatures, path)


def _open_snapshot(path: Path) -> h5py.File:
    f = open_file(path)
    if "Header" not in f:
        f.close()
        raise data_error(path, reason="no /Header group: not a Gadget-layout snapshot")
    return f


def _dataset(group: h5py.Group, path: Path, name: str, n: int) -> h5py.Dataset:
    if name not in group:
        raise data_error(path, f"{group.name}/{name}", reason="missing")
    ds = group[name]
    if ds.shape[0] != n:
        raise data_error(path, f"{group.name}/{name}", reason=f"{ds.shape[0]} rows, but the "
                         f"header counts {n} particles")
    return ds


def _first_present(group: h5py.Group, path: Path, names: tuple[str, ...]) -> str:
    for name in names:
        if name in group:
            return name
    raise data_error(path, f"{group.name}/{names[0]}", reason="missing: the gas temperature "
                     "needs the internal energy")


def _a_exponent(ds: h5py.Dataset | None, default: float) -> float:
    """The dataset's scale-factor power to physical units, if it states one."""
    if ds is not None:
        for name in ("a-scale exponent", "a_scaling", "aexp-scale-exponent"):
            if name in ds.attrs:
                return _scalar(ds.attrs[name])
    return default


def _finite(values: np.ndarray, path: Path, where: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if not np.isfinite(values).all():
        raise data_error(path, where, reason="NaN or infinite values")
    return values


def _wrap(positions: np.ndarray, box: float, path: Path, where: str) -> np.ndarray:
    tolerance = BOX_TOLERANCE * box
    low, high = positions.min(initial=0.0), positions.max(initial=0.0)
    if low < -tolerance or high > box + tolerance:
        raise data_error(path, where, reason=f"positions outside the box [0, {box:g}) Mpc/h: "
                         f"from {low:g} to {high:g}")
    positions = np.mod(positions, box)
    positions[positions >= box] = 0.0  # a tiny negative value wraps to box in rounding
    return positions


def _scalar(value) -> float:
    return float(np.ravel(np.asarray(value, np.float64))[0])


def _text(value) -> str:
    value = np.ravel(np.asarray(value))[0] if np.ndim(value) else value
    return value.decode() if isinstance(value, bytes) else str(value)
