r"""Converts CAMELS Multifield Dataset (CMD) maps or grids into a fieldnet HDF5 file.

    python -m data_tools.camels --maps-dir DIR --input Mtot --target T \
        --suite IllustrisTNG --set LH --out camels_tng_lh.h5 [--grids --res 128]

2D maps: `Maps_{field}_{suite}_{set}_z={z}.npy`, (N, 256, 256) float32, 15 maps per
simulation (so sim_index = i // 15). 3D grids: `Grids_{field}_{suite}_{set}_{res}_z={z}.npy`,
(N, R, R, R), one per simulation. Parameters: `params_{set}_{suite}.txt`, one row per
simulation (Omega_m, sigma_8, A_SN1, A_AGN1, A_SN2, A_AGN2), repeated for every map.

Arrays are memory-mapped and copied one sample at a time, so no file is ever held whole.
Fields keep their CMD names ("Mtot", "T", ...). A field with zeros (stellar mass, HI in
voids) gets its smallest positive value as the `log_floor` attribute, which the loader uses
unless the config sets one. Every CMD field is non-negative (masses, temperatures,
metallicities, speeds), so a negative value is a broken file: it is an error, not a value
for the floor to hide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fieldnet import cli
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError, data_error

BOX_SIZE = 25.0   # Mpc/h, every CAMELS simulation
MAPS_PER_SIM = 15
PARAM_NAMES = ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
MASS_FIELDS = ("Mgas", "Mcdm", "Mstar", "Mtot", "HI")
OTHER_UNITS = {"T": "K", "Vgas": "km/s", "Vcdm": "km/s", "Z": "metal mass fraction",
               "MgFe": "Mg/Fe mass ratio"}


def units_of(field: str, ndim: int) -> str:
    """CMD units: projected (2D) or volume (3D) mass densities, else the field's own."""
    if field in MASS_FIELDS:
        return f"(M_sun/h)/(Mpc/h)^{ndim}"
    return OTHER_UNITS.get(field, "unknown (see the CMD documentation; set --units)")


def field_path(maps_dir: Path, field: str, suite: str, set_name: str, redshift: str,
               grid_res: int | None) -> Path:
    if grid_res is None:
        return maps_dir / f"Maps_{field}_{suite}_{set_name}_z={redshift}.npy"
    return maps_dir / f"Grids_{field}_{suite}_{set_name}_{grid_res}_z={redshift}.npy"


def load_params(path: Path) -> tuple[np.ndarray, list[str]]:
    """One row per simulation; the six standard names when there are six columns."""
    if not path.exists():
        raise data_error(path, reason="no such parameters file")
    try:
        params = np.atleast_2d(np.loadtxt(path, dtype=np.float64))
    except ValueError as err:
        raise data_error(path, reason=f"not a table of numbers: {err}") from None
    columns = params.shape[1]
    names = list(PARAM_NAMES) if columns == len(PARAM_NAMES) else [f"param_{j}" for j in
                                                                    range(columns)]
    return params.astype(np.float32), names


def open_array(path: Path, ndim: int) -> np.ndarray:
    """Memory-maps one CMD .npy file and checks it is (N, R, ...) floating point."""
    if not path.exists():
        raise data_error(path, reason="no such file")
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise data_error(path, reason=f"not a readable .npy file: {err}") from None
    if array.dtype.kind != "f":
        raise data_error(path, reason=f"dtype {array.dtype}, expected float32")
    if array.ndim != ndim + 1 or len(set(array.shape[1:])) != 1:
        cube = ", ".join(["R"] * ndim)
        raise data_error(path, reason=f"shape {array.shape}, expected (N, {cube})")
    return array


def convert(maps_dir: str | Path, inputs: list[str], target: str, suite: str, set_name: str,
            out: str | Path, *, grid_res: int | None = None, redshift: str = "0.00",
            maps_per_sim: int = MAPS_PER_SIM, units: dict[str, str] | None = None,
            overwrite: bool = False) -> Path:
    """Writes the chosen CMD fields, sim_index and params of one suite/set to `out`."""
    maps_dir = Path(maps_dir)
    if not maps_dir.is_dir():
        raise FieldnetError(f"{maps_dir}: no such directory")
    ndim = 2 if grid_res is None else 3
    per_sim = maps_per_sim if grid_res is None else 1
    fields = list(dict.fromkeys([*inputs, target]))
    paths = {f: field_path(maps_dir, f, suite, set_name, redshift, grid_res) for f in fields}
    arrays = {f: open_array(paths[f], ndim) for f in fields}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1:
        raise FieldnetError(f"{maps_dir}: fields differ in shape: "
                            + ", ".join(f"{f} {a.shape}" for f, a in arrays.items()))
    n = arrays[fields[0]].shape[0]
    params_path = maps_dir / f"params_{set_name}_{suite}.txt"
    params, names = load_params(params_path)
    if n != len(params) * per_sim:
        raise data_error(params_path, reason=f"{len(params)} simulations x {per_sim} samples "
                         f"each = {len(params) * per_sim}, but {paths[fields[0]].name} has {n}")
    sim_index = np.arange(n) // per_sim
    kind = "maps" if grid_res is None else f"grids {grid_res}^3"
    units = {f: (units or {}).get(f, units_of(f, ndim)) for f in fields}
    with h5format.create(out, ndim=ndim, box_size=BOX_SIZE, overwrite=overwrite,
                         source=f"CAMELS CMD {suite} {set_name} {kind} z={redshift}") as h5:
        for f in fields:
            ds = h5format.add_field(h5, f, arrays[f].shape, units=units[f],
                                    description=f"CMD {f} from {paths[f].name}")
            smallest_positive = _copy_samples(arrays[f], ds, paths[f])
            if smallest_positive is not None:
                ds.attrs["log_floor"] = smallest_positive
        h5format.add_index(h5, sim_index, params[sim_index], names)
    return Path(out)


def _copy_samples(array: np.ndarray, ds, path: Path) -> float | None:
    """Copies sample by sample; returns the smallest positive value if any value is 0. A
    negative value raises `FieldnetError` naming the file, the sample and the value."""
    has_non_positive, smallest_positive = False, np.inf
    for i in tqdm(range(len(array)), desc=path.name, unit="sample", disable=None,
                  file=sys.stderr):
        sample = np.asarray(array[i], np.float32)
        if not np.isfinite(sample).all():
            raise data_error(path, index=i, reason="NaN/Inf values")
        if sample.min() < 0:
            raise data_error(path, index=i, reason=f"negative value {sample.min():g} in a CMD "
                             "field, which is non-negative (a log floor would hide it)")
        positive = sample[sample > 0]
        has_non_positive |= positive.size < sample.size
        if positive.size:
            smallest_positive = min(smallest_positive, float(positive.min()))
        ds[i] = sample
    if not has_non_positive:
        return None
    if not np.isfinite(smallest_positive):
        raise data_error(path, reason="no positive values at all; a log field is impossible")
    return smallest_positive


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.ArgumentParser(prog="python -m data_tools.camels", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps-dir", required=True, help="folder with the CMD .npy and params files")
    p.add_argument("--input", required=True, help="CMD input field(s), comma-separated (Mtot)")
    p.add_argument("--target", required=True, help="CMD target field (T)")
    p.add_argument("--suite", default="IllustrisTNG", help="IllustrisTNG, SIMBA, Astrid, ...")
    p.add_argument("--set", dest="set_name", default="LH", help="LH, CV, 1P, ...")
    p.add_argument("--out", required=True, help="output fieldnet HDF5 file")
    p.add_argument("--grids", action="store_true", help="3D grids instead of 2D maps")
    p.add_argument("--res", type=int, default=128, help="grid resolution with --grids")
    p.add_argument("--redshift", default="0.00", help="as written in the file names")
    p.add_argument("--maps-per-sim", type=int, default=MAPS_PER_SIM)
    p.add_argument("--units", action="append", default=[], metavar="FIELD=UNITS",
                   help="override the units recorded for a field (repeatable)")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    units = {}
    for item in args.units:
        field, sep, value = item.partition("=")
        if not sep:
            raise FieldnetError(f"--units expects FIELD=UNITS, got {item!r}")
        units[field] = value
    inputs = [s.strip() for s in args.input.split(",") if s.strip()]
    out = convert(args.maps_dir, inputs, args.target, args.suite, args.set_name, args.out,
                  grid_res=args.res if args.grids else None, redshift=args.redshift,
                  maps_per_sim=args.maps_per_sim, units=units, overwrite=args.overwrite)
    info = h5format.read_info(out)
    print(f"wrote {out}: {info.num_samples} samples of {info.fields[args.target].shape[1:]}, "
          f"{len(np.unique(info.sim_index))} simulations, fields {list(info.fields)}")
    return 0


if __name__ == "__main__":
    cli.run(main, flags=cli.OVERWRITE_FLAG)
