r"""Grids particle snapshots in the Gadget HDF5 layout into a fieldnet HDF5 file.

    python -m data_tools.snapshot SNAPSHOT [SNAPSHOT ...] --out FILE.h5 --grid N \
        [--dim 3 | --dim 2 --slabs S] [--fields density,temperature] [--overwrite] [--quiet]

SNAPSHOT is one file (snap_033.hdf5), any file snap_033.K.hdf5 of a multi-file set (the
others are found from the header's NumFilesPerSnapshot), or its folder (snapdir_033/).
Each snapshot becomes one simulation (/sim_index) with /params redshift, omega_m and
hubble (h) from its header; all must share one box size.

The fields have the simulator's names (data_tools.simulate) and are deposited with the
same code (data_tools.phase_space), so a model trained on one applies to the other:

    from dark matter (PartType1)  density, velocity_x/_y/_z, velocity_dispersion,
                                  velocity_divergence
    from gas (PartType0)          gas_density, temperature (mass-weighted, K)

`--dim 3` writes grid^3 boxes (densities in units of the mean); `--dim 2` cuts each box
into `--slabs` slabs along each axis and projects them (densities as mass per pixel in
M_sun/h, the rest mass-weighted). Units, velocity conventions and the temperature formula
are those of `data_tools.gadget`. Particles are read 2^20 at a time, so memory is set by
the grid, not by the number of particles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_tools import gadget, phase_space
from fieldnet import cli
from fieldnet.data import h5format
from fieldnet.data.source import parse_names
from fieldnet.errors import FieldnetError, OutputExists

SOURCE = "data_tools.snapshot"
DM_FIELDS = ("density", "velocity_x", "velocity_y", "velocity_z", "velocity_dispersion",
             "velocity_divergence")
GAS_FIELDS = ("gas_density", "temperature")
PARAM_NAMES = ("redshift", "omega_m", "hubble")
DESCRIPTIONS = {
    "density": "dark-matter density (CIC)",
    "velocity_x": "mass-weighted dark-matter peculiar velocity, x component",
    "velocity_y": "mass-weighted dark-matter peculiar velocity, y component",
    "velocity_z": "mass-weighted dark-matter peculiar velocity, z component",
    "velocity_dispersion": "mass-weighted 3D dark-matter velocity dispersion",
    "velocity_divergence": "dark-matter velocity divergence theta = div v / (a H)",
    "gas_density": "gas density (CIC)",
    "temperature": "mass-weighted gas temperature",
}


def spatial_names(dim: int) -> tuple[str, ...]:
    """The fields of a `dim`-D file (velocity_z only in 3D)."""
    return tuple(f for f in DM_FIELDS + GAS_FIELDS if not (dim == 2 and f == "velocity_z"))


def available_fields(snap: gadget.Snapshot, dim: int) -> list[str]:
    """All fields whose particle types the snapshot has."""
    names = []
    if snap.total(gadget.DARK_MATTER):
        names += [f for f in spatial_names(dim) if f in DM_FIELDS]
    if snap.total(gadget.GAS):
        names += list(GAS_FIELDS)
    return names


def check_fields(snap: gadget.Snapshot, fields: list[str], dim: int) -> None:
    """A requested field needs its particle type in the snapshot."""
    for name in fields:
        if name not in spatial_names(dim):
            raise FieldnetError(f"unknown field {name!r} for --dim {dim}; known: "
                                + ", ".join(spatial_names(dim)))
        ptype, what = ((gadget.DARK_MATTER, "dark matter (PartType1)") if name in DM_FIELDS
                       else (gadget.GAS, "gas (PartType0)"))
        if not snap.total(ptype):
            raise FieldnetError(f"{snap.files[0]}: field {name!r} needs {what}, which this "
                                "snapshot has none of")


def grid_snapshot(snap: gadget.Snapshot, fields: list[str], grid: int, dim: int, slabs: int,
                  *, chunk: int = gadget.CHUNK, progress: tqdm | None = None
                  ) -> dict[str, np.ndarray]:
    """The requested fields of one snapshot: (G, G, G) for dim 3, (3 * slabs, G, G) for 2."""
    out = {}
    for ptype, names, prefix in ((gadget.DARK_MATTER, DM_FIELDS, ""),
                                 (gadget.GAS, GAS_FIELDS, "gas_")):
        wanted = [f for f in fields if f in names]
        if not wanted:
            continue
        hot = "temperature" in wanted
        moments = phase_space.MomentGrid(grid, snap.box_size)
        for part in gadget.read_particles(snap, ptype, temperature=hot, chunk=chunk):
            extra = {"temperature": part.temperature} if hot else {}
            moments.add(part.positions, part.masses,
                        part.velocities if ptype == gadget.DARK_MATTER else None, **extra)
            if progress is not None:
                progress.set_postfix_str(part.file.name, refresh=False)
                progress.update(1)
        made = phase_space.grid_fields(moments, a=snap.scale_factor, hubble=snap.hubble,
                                       dim=dim, slabs=slabs, prefix=prefix)
        for name in wanted:
            out[name] = np.asarray(made[name if name in made else prefix + name], np.float32)
    return out


def convert(snapshots: list[str | Path], out: str | Path, grid: int, *, dim: int = 3,
            slabs: int = 4, fields: list[str] | None = None, overwrite: bool = False,
            chunk: int = gadget.CHUNK, progress: bool = True) -> Path:
    """Grids each snapshot and writes them, one simulation index each, to `out`."""
    if grid < 2 or grid & (grid - 1):
        raise FieldnetError(f"--grid must be a power of 2 (2, 4, ..., 128, ...), got {grid}")
    if dim not in (2, 3):
        raise FieldnetError(f"--dim must be 2 or 3, got {dim}")
    if dim == 2 and (slabs < 1 or grid % slabs):
        raise FieldnetError(f"--slabs must divide --grid {grid}, got {slabs}")
    if chunk < 1:
        raise FieldnetError(f"chunk must be at least 1 particle, got {chunk}")
    if not snapshots:
        raise FieldnetError("no snapshot given")
    snaps = [gadget.read_snapshot(s) for s in snapshots]
    out = Path(out)
    for snap in snaps:
        if any(out.resolve() == f.resolve() for f in snap.files):
            raise FieldnetError(f"--out {out} is a file of the input snapshot {snap.files[0]}")
    if out.is_dir():
        raise FieldnetError(f"--out {out} is a folder; name a file")
    if out.exists() and not overwrite:
        raise OutputExists(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    if len({round(s.box_size, 6) for s in snaps}) > 1:
        raise FieldnetError("the snapshots have different box sizes: " + ", ".join(
            f"{s.files[0]} {s.box_size:g} Mpc/h" for s in snaps))
    names = fields or available_fields(snaps[0], dim)
    for snap in snaps:
        check_fields(snap, names, dim)
    names = [f for f in spatial_names(dim) if f in names]   # a fixed order
    if not names:
        raise FieldnetError(f"{snaps[0].files[0]}: no dark matter or gas particles")
    total = sum(s.chunks(ptype, chunk) for s in snaps for ptype, group in
                ((gadget.DARK_MATTER, DM_FIELDS), (gadget.GAS, GAS_FIELDS))
                if any(f in group for f in names))
    stacks = {name: [] for name in names}
    sim_index, params = [], []
    with tqdm(total=total, desc="particle chunks", unit="chunk", disable=not progress,
              file=sys.stderr) as bar:
        for i, snap in enumerate(snaps):
            made = grid_snapshot(snap, names, grid, dim, slabs, chunk=chunk, progress=bar)
            samples = 1 if dim == 3 else 3 * slabs
            for name in names:
                stacks[name].append(made[name] if dim == 2 else made[name][None])
            sim_index += [i] * samples
            params += [[snap.redshift, snap.omega_m, snap.h]] * samples
    arrays = {name: np.concatenate(stack) for name, stack in stacks.items()}
    return h5format.write_arrays(
        out, arrays, ndim=dim, box_size=snaps[0].box_size, sim_index=sim_index,
        source=f"{SOURCE}: " + ", ".join(str(s.files[0]) for s in snaps),
        units={n: phase_space.field_units(n, dim) for n in names},
        descriptions={n: _description(n, dim, slabs, snaps[0].box_size) for n in names},
        log_floors=_log_floors(arrays, dim), params=np.asarray(params, np.float32),
        param_names=PARAM_NAMES, overwrite=overwrite)


def _description(name: str, dim: int, slabs: int, box: float) -> str:
    if dim == 3:
        return DESCRIPTIONS[name]
    return f"{DESCRIPTIONS[name]}, projected through a {box / slabs:g} Mpc/h slab"


def _log_floors(arrays: dict[str, np.ndarray], dim: int) -> dict[str, float]:
    """`phase_space.log_floors`; a 2D map's density floors are of its own mean pixel mass."""
    floors = phase_space.log_floors(arrays)
    for name in ("density", "gas_density"):
        if dim == 2 and name in floors:
            floors[name] *= float(np.mean(arrays[name], dtype=np.float64))
    return floors


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m data_tools.snapshot",
                           description=__doc__.splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("snapshots", nargs="+", metavar="SNAPSHOT",
                   help="a snapshot file, any file of a multi-file set, or its folder")
    p.add_argument("--out", required=True, help="output fieldnet HDF5 file")
    p.add_argument("--grid", required=True, type=cli.positive_int,
                   help="cells per side, a power of 2")
    p.add_argument("--dim", type=int, default=3, choices=(2, 3),
                   help="3: full grids, 2: projected slab maps (default %(default)s)")
    p.add_argument("--slabs", type=cli.positive_int, default=4,
                   help="slabs per axis for --dim 2 (default %(default)s)")
    p.add_argument("--fields", default="",
                   help="comma-separated fields to write (default: all whose particle "
                        "types the snapshot has)")
    p.add_argument("--chunk", type=cli.positive_int, default=gadget.CHUNK,
                   help="particles read at a time (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fields = parse_names(args.fields) or None
    path = convert(args.snapshots, args.out, args.grid, dim=args.dim, slabs=args.slabs,
                   fields=fields, overwrite=args.overwrite, chunk=args.chunk,
                   progress=not args.quiet)
    info = h5format.read_info(path)
    first = next(iter(info.fields.values()))
    print(f"wrote {path}: {info.num_samples} samples of {first.shape[1:]} from "
          f"{len(np.unique(info.sim_index))} snapshots, fields {list(info.fields)}")
    return 0


if __name__ == "__main__":
    cli.run(main, flags=cli.OVERWRITE_FLAG)
