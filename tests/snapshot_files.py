"""Small synthetic particle snapshots in the Gadget HDF5 layout (tests and benchmarks).

Particles are given in fieldnet's units (comoving Mpc/h, M_sun/h, peculiar km/s, gas
internal energy in physical (km/s)^2) and written in the conventions of a code family:

    "gadget"   Gadget-2/AREPO: kpc/h, 1e10 M_sun/h, w = v / sqrt(a), cosmology in Header
    "cgs"      the same with UnitLength_in_cm = UnitMass_in_g = UnitVelocity_in_cm_per_s = 1
    "gadget4"  Mpc/h units and the cosmology in /Parameters, none of it in the Header
    "swift"    h-free Mpc and 1e10 M_sun, peculiar velocities, comoving InternalEnergies
               (a-scale exponent -2), /Units and /Cosmology groups, Code = "SWIFT"

    write_snapshot(tmp / "snap_000.hdf5", dm={"positions": x, "velocities": v, "masses": 1e9})
    write_snapshot(tmp / "snapdir_000" / "snap_000", n_files=3, dm=..., gas=...)
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

KPC_CM, MPC_CM, MSUN_G = 3.085678e21, 3.085678e24, 1.989e33
FAMILIES = ("gadget", "cgs", "gadget4", "swift")


def _units(family: str) -> tuple[float, float, float]:
    """Length [cm], mass [g] and velocity [cm/s] of one code unit (with h or h-free)."""
    return {"gadget": (KPC_CM, 1e10 * MSUN_G, 1e5), "cgs": (1.0, 1.0, 1.0),
            "gadget4": (MPC_CM, 1e10 * MSUN_G, 1e5),
            "swift": (MPC_CM, 1e10 * MSUN_G, 1e5)}[family]


def write_snapshot(path: str | Path, *, dm: dict | None = None, gas: dict | None = None,
                   n_files: int = 1, **header) -> list[Path]:
    """Writes one snapshot; with n_files > 1, `path` is the base and the files are
    `<path>.<k>.hdf5` (its folder is made). Particles are split evenly over the files.
    Returns the files. `header`: see `write_file`."""
    path = Path(path)
    types = {0: gas, 1: dm}
    totals = {t: (0 if p is None else len(p["positions"])) for t, p in types.items()}
    if n_files == 1:
        write_file(path, totals=totals, dm=dm, gas=gas, **header)
        return [path]
    path.parent.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n_files):
        parts = {t: None if p is None else {
            name: (np.array_split(np.asarray(v), n_files)[k] if np.ndim(v) else v)
            for name, v in p.items()} for t, p in types.items()}
        file = path.with_name(f"{path.name}.{k}.hdf5")
        write_file(file, totals=totals, dm=parts[1], gas=parts[0], file_index=k,
                   n_files=n_files, **header)
        files.append(file)
    return files


def write_file(path: str | Path, *, totals: dict[int, int], dm: dict | None = None,
               gas: dict | None = None, file_index: int = 0, n_files: int = 1,
               box: float = 25.0, redshift: float = 0.0, omega_m: float = 0.3,
               omega_lambda: float = 0.7, h: float = 0.7, family: str = "gadget",
               mass_table: bool = True) -> Path:
    """Writes one file of a snapshot.

    Args:
      totals: particles of each type (0 gas, 1 dark matter) in the whole snapshot.
      dm, gas: {"positions" (M, 3) Mpc/h, "velocities" (M, 3) peculiar km/s, "masses"
        M_sun/h (a number, or (M,))}; gas also "internal_energy" (M,) (km/s)^2 and
        optionally "electron_abundance" and "hydrogen_fraction" (M,) (-> GFM_Metals).
      box: box side [Mpc/h]; redshift and cosmology go into the header as `family` puts them.
      mass_table: a dark-matter mass given as one number goes into MassTable[1] (else a
        Masses dataset).

    Datasets are float32, except in "cgs", where masses in grams need float64.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    length, mass, velocity = _units(family)
    dtype = np.float64 if family == "cgs" else np.float32
    h_free = family == "swift"
    to_length = MPC_CM / length / (h if h_free else 1.0)   # Mpc/h -> code
    to_mass = MSUN_G / mass / (h if h_free else 1.0)        # M_sun/h -> code
    to_velocity = 1e5 / velocity                             # km/s -> code
    a = 1.0 / (1.0 + redshift)
    this_file = {0: 0 if gas is None else len(gas["positions"]),
                 1: 0 if dm is None else len(dm["positions"])}
    table = np.zeros(6)
    with h5py.File(path, "w") as f:
        for ptype, particles in ((0, gas), (1, dm)):
            if particles is None or not totals.get(ptype):
                continue
            g = f.create_group(f"PartType{ptype}")
            g.create_dataset("Coordinates", data=np.asarray(particles["positions"]) * to_length,
                             dtype=dtype)
            v = np.asarray(particles["velocities"], np.float64) * to_velocity
            vel = g.create_dataset("Velocities", data=v if h_free else v / np.sqrt(a),
                                   dtype=dtype)
            if h_free:
                vel.attrs["a-scale exponent"] = np.array([0.0])
            masses = particles["masses"]
            if ptype == 1 and mass_table and np.ndim(masses) == 0:
                table[1] = float(masses) * to_mass
            else:
                masses = np.broadcast_to(np.asarray(masses, np.float64), this_file[ptype])
                g.create_dataset("Masses", data=masses * to_mass, dtype=dtype)
            if ptype == 0:
                u = np.asarray(particles["internal_energy"], np.float64) * to_velocity**2
                if h_free:  # comoving internal energy: u_phys = a^-2 u_stored
                    ds = g.create_dataset("InternalEnergies", data=u * a**2, dtype=dtype)
                    ds.attrs["a-scale exponent"] = np.array([-2.0])
                else:
                    g.create_dataset("InternalEnergy", data=u, dtype=dtype)
                if "electron_abundance" in particles:
                    g.create_dataset("ElectronAbundance", dtype=dtype,
                                     data=particles["electron_abundance"])
                if "hydrogen_fraction" in particles:
                    metals = np.zeros((this_file[0], 10))
                    metals[:, 0] = particles["hydrogen_fraction"]
                    g.create_dataset("GFM_Metals", data=metals, dtype=dtype)
        header = f.create_group("Header").attrs
        counts = [this_file.get(t, 0) for t in range(6)]
        header["NumPart_ThisFile"] = np.array(counts, np.uint32)
        header["NumPart_Total"] = np.array([totals.get(t, 0) for t in range(6)], np.uint32)
        header["NumPart_Total_HighWord"] = np.zeros(6, np.uint32)
        header["MassTable"] = table
        header["NumFilesPerSnapshot"] = np.int32(n_files)
        header["Redshift"] = np.array([redshift]) if h_free else redshift
        header["Time"] = a
        if h_free:
            header["BoxSize"] = np.full(3, box * to_length)
            header["Code"] = "SWIFT"
            units = f.create_group("Units").attrs
            units["Unit length in cgs (U_L)"] = np.array([length])
            units["Unit mass in cgs (U_M)"] = np.array([mass])
            units["Unit time in cgs (U_t)"] = np.array([length / velocity])
            cosmology = f.create_group("Cosmology").attrs
            cosmology.update({"Omega_m": [omega_m], "Omega_lambda": [omega_lambda], "h": [h],
                              "Redshift": [redshift]})
            return Path(path)
        header["BoxSize"] = box * to_length
        cosmology = {"Omega0": omega_m, "OmegaLambda": omega_lambda, "HubbleParam": h}
        unit_attrs = {"UnitLength_in_cm": length, "UnitMass_in_g": mass,
                      "UnitVelocity_in_cm_per_s": velocity}
        if family == "gadget4":
            f.create_group("Parameters").attrs.update({**cosmology, **unit_attrs})
        else:
            header.update(cosmology)
            if family == "cgs":
                f.create_group("Units").attrs.update(unit_attrs)
    return Path(path)


def lattice(n: int, box: float, offset: float = 0.5) -> np.ndarray:
    """(n^3, 3) positions [Mpc/h] on a regular lattice, `offset` cells from the origin."""
    axis = (np.arange(n) + offset) * box / n
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
