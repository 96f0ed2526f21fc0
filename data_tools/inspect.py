"""Summarizes any HDF5 file: attributes, datasets, value ranges and NaN/Inf counts.

    python -m data_tools.inspect FILE.h5 [--json] [--no-stats]

Statistics are computed block by block along the first axis, so files larger than memory
are fine. For a fieldnet-format file the first line also states samples, simulations,
grid and box size.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import h5py
import numpy as np

from fieldnet import cli
from fieldnet.data import h5format, ising
from fieldnet.errors import data_error

BLOCK_VALUES = 1 << 22


def value_stats(path: Path, ds: h5py.Dataset) -> dict:
    """min/max/mean over finite values and NaN/Inf counts, read in blocks of rows."""
    count = nan = inf = 0
    total, low, high = 0.0, math.inf, -math.inf
    rows = ds.shape[0] if ds.ndim else 1
    row_values = max(1, int(np.prod(ds.shape[1:], dtype=np.int64))) if ds.ndim else 1
    step = max(1, BLOCK_VALUES // row_values)
    for start in range(0, rows, step):
        try:
            block = ds[start:start + step] if ds.ndim else np.asarray(ds[()])
        except OSError as err:
            raise data_error(path, ds.name, start, reason=f"unreadable (corrupt?): {err}") from None
        block = np.asarray(block, np.float64)
        finite = np.isfinite(block)
        nan += int(np.isnan(block).sum())
        inf += int(np.isinf(block).sum())
        good = block[finite]
        if good.size:
            count += good.size
            total += float(good.sum())
            low, high = min(low, float(good.min())), max(high, float(good.max()))
    if not count:
        return {"min": None, "max": None, "mean": None, "nan": nan, "inf": inf}
    return {"min": low, "max": high, "mean": total / count, "nan": nan, "inf": inf}


def summarize(path: str | Path, stats: bool = True) -> dict:
    """Everything `inspect` prints, as a dict (JSON-friendly)."""
    path = Path(path)
    summary: dict = {"path": str(path), "groups": {}, "datasets": {}}
    with h5format.open_file(path) as f:
        summary["attrs"] = _attrs(f.attrs)
        if h5format.is_fieldnet(f):
            info = h5format.read_info(path)
            summary["fieldnet"] = {
                "samples": info.num_samples,
                "simulations": int(len(np.unique(info.sim_index))),
                "grid": list(next(iter(info.fields.values())).shape[1:]) if info.fields else [],
                "box_size": info.box_size, "fields": list(info.fields),
                "params": info.param_names,
            }
        elif ising.is_ising(f):
            sizes = ising.lattice_sizes(f)
            summary["ising"] = {"lattice_sizes": sizes,
                                "configurations": {str(L): int(f[f"L{L}/fields/spins"].shape[0])
                                                   for L in sizes}}

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Group):
                summary["groups"][name] = _attrs(obj.attrs)
                return
            entry = {"shape": list(obj.shape), "dtype": str(obj.dtype),
                     "chunks": list(obj.chunks) if obj.chunks else None,
                     "compression": obj.compression, "attrs": _attrs(obj.attrs)}
            if stats and obj.dtype.kind in "fiub" and obj.size:
                entry.update(value_stats(path, obj))
            summary["datasets"][name] = entry

        f.visititems(visit)
    return summary


def format_summary(summary: dict) -> str:
    lines = [summary["path"]]
    if "fieldnet" in summary:
        fn = summary["fieldnet"]
        grid = "x".join(map(str, fn["grid"]))
        box = "x".join(f"{length:g}" for length in np.atleast_1d(fn["box_size"]))
        lines.append(f"  fieldnet format: {fn['samples']} samples from {fn['simulations']} "
                     f"simulations, grid {grid}, box {box} Mpc/h, "
                     f"fields {fn['fields']}, params {fn['params']}")
    if "ising" in summary:
        counts = ", ".join(f"L={L}: {n}" for L, n in summary["ising"]["configurations"].items())
        lines.append(f"  fieldnet-ising format: configurations per lattice size {counts}")
    lines += [f"  @{k} = {v}" for k, v in summary["attrs"].items()]
    for name, attrs in summary["groups"].items():
        lines.append(f"  {name}/")
        lines += [f"    @{k} = {v}" for k, v in attrs.items()]
    for name, d in summary["datasets"].items():
        units = d["attrs"].get("units")
        head = f"  {name}  {d['dtype']} {tuple(d['shape'])}"
        lines.append(head + (f"  [{units}]" if units else ""))
        if "min" in d:
            if d["min"] is None:
                lines.append(f"    no finite values; NaN {d['nan']}, Inf {d['inf']}")
            else:
                lines.append(f"    min {d['min']:.6g}  max {d['max']:.6g}  mean {d['mean']:.6g}"
                             f"  NaN {d['nan']}  Inf {d['inf']}")
        lines += [f"    @{k} = {v}" for k, v in d["attrs"].items() if k != "units" and v != ""]
    return "\n".join(lines)


def _attrs(attrs) -> dict:
    """Attribute values as plain Python (strings, numbers, lists)."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif isinstance(value, np.ndarray):
            value = [v.decode(errors="replace") if isinstance(v, bytes) else v
                     for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m data_tools.inspect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="any HDF5 file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-stats", action="store_true", help="skip reading the values")
    args = p.parse_args(argv)
    summary = summarize(args.file, stats=not args.no_stats)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    cli.run(main)
