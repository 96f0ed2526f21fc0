"""The fieldnet HDF5 format, version 1 (docs/data/format.md).

    /                attrs: format="fieldnet", version=1, ndim, box_size [Mpc/h], source, created_by
    /fields/<name>   float32 (N, *spatial); attrs: units, log_floor (optional), description

`box_size` is the side of the periodic box, or one side per spatial axis for a
rectangular one (`box_lengths` reads either as one length per axis).
    /params          float32 (N, P); attrs: names                              [optional]
    /sim_index       int64 (N,)

A generative model's samples of N maps (`add_samples`, `read_samples`) go into such a file
as stacks with more leading axes, in physical units:

    /samples/<name>  float32 (N, S, *spatial): S samples of each map
    /mean/<name>, /std/<name>   float32 (N, *spatial): their mean and standard deviation

Files are written under a temporary name and renamed when complete, so a crash never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from fieldnet.errors import FieldnetError, data_error
from fieldnet.files import atomic_output
from fieldnet.version import __version__

FORMAT = "fieldnet"
VERSION = 1
# Above this many values per sample, chunks are crops rather than whole samples.
MAX_CHUNK_VALUES = 64**3


def sample_chunks(sample_shape: Sequence[int]) -> tuple[int, ...]:
    """One sample per chunk, or a crop-sized chunk for big 3D boxes.

    Args:
        sample_shape: Spatial shape of one sample.

    Returns:
        The chunk shape `(1, *spatial_chunk)`: the whole sample up to `MAX_CHUNK_VALUES`
        values, else a cube of about that many values (cut to the sample).
    """
    shape = tuple(int(s) for s in sample_shape)
    if int(np.prod(shape)) <= MAX_CHUNK_VALUES:
        return (1, *shape)
    edge = round(MAX_CHUNK_VALUES ** (1 / len(shape)))
    return (1, *(min(s, edge) for s in shape))


def box_lengths(box_size, ndim: int, where: str = "box_size") -> tuple[float, ...]:
    """A `box_size` (one side for every axis, or one per axis) as one length per axis.

    Args:
        box_size: A positive length in Mpc/h, or `ndim` of them.
        ndim: Number of spatial axes.
        where: Names the value in the message.

    Returns:
        `ndim` lengths in Mpc/h.

    Raises:
        FieldnetError: If a length is not positive or there is not one per axis.
    """
    values = np.atleast_1d(np.asarray(box_size, np.float64))
    if values.ndim != 1 or len(values) not in (1, ndim):
        raise FieldnetError(f"{where} must be one length or one per axis ({ndim}), got "
                            f"{box_size!r}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise FieldnetError(f"{where} must be positive, got {box_size!r}")
    return tuple(float(v) for v in np.broadcast_to(values, (ndim,)))


@contextlib.contextmanager
def create(path: str | os.PathLike, *, ndim: int, box_size: float | Sequence[float],
           source: str,
           overwrite: bool = False) -> Iterator[h5py.File]:
    """Opens a new fieldnet file for writing (atomically); fill it with `add_field` etc.

    The file is written under a temporary name and renamed to `path` when the block exits
    without an error, so a crash never leaves a half-written file under the final name.

    Args:
        path: The file to write.
        ndim: Number of spatial axes of its fields, 1, 2 or 3.
        box_size: Side of the periodic box in Mpc/h, or one side per axis (a rectangular
            box; a `Grid`'s `lengths`).
        source: Where the data comes from (free text, kept in the file).
        overwrite: Replace an existing file; otherwise an existing `path` is an error.

    Yields:
        The open `h5py.File`, its root attributes and /fields group written.

    Raises:
        FieldnetError: On a bad `ndim` or `box_size`, or an existing file without
            `overwrite`.
    """
    if ndim not in (1, 2, 3):
        raise FieldnetError(f"ndim must be 1, 2 or 3, got {ndim}")
    lengths = box_lengths(box_size, ndim)
    stored = lengths[0] if len(set(lengths)) == 1 else np.asarray(lengths, np.float64)
    with atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, version=VERSION, ndim=ndim, box_size=stored,
                       source=source, created_by=f"fieldnet {__version__}")
        f.create_group("fields")
        yield f


def add_field(f: h5py.File, name: str, shape: Sequence[int], *, units: str, description: str = "",
              log_floor: float | None = None, data: np.ndarray | None = None,
              chunks: Sequence[int] | None = None, compress: bool = True) -> h5py.Dataset:
    """Creates /fields/<name> (N, *spatial) float32, chunked per sample and compressed.

    Args:
        f: A file opened by `create`.
        name: The field's name (see the field names in docs/data/format.md).
        shape: (N, *spatial), with the file's ndim spatial axes.
        units: The field's physical units, e.g. "K".
        description: What the field is.
        log_floor: Floor of the log10 transform, for fields that contain zeros.
        data: The values to write now; None to fill the dataset later, sample by sample.
        chunks: As in `add_dataset`.
        compress: As in `add_dataset`.

    Returns:
        The dataset.

    Raises:
        FieldnetError: If `shape` does not have the file's number of spatial axes.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != f.attrs["ndim"] + 1:
        raise FieldnetError(f"field {name!r} must have shape (N, *spatial) with "
                            f"{f.attrs['ndim']} spatial axes, got {shape}")
    ds = add_dataset(f, f"fields/{name}", shape, units=units, description=description,
                     chunks=chunks, compress=compress)
    if log_floor is not None:
        ds.attrs["log_floor"] = float(log_floor)
    if data is not None:
        ds[...] = np.asarray(data, np.float32)
    return ds


def add_dataset(f: h5py.File, path: str, shape: Sequence[int], *, units: str,
                description: str = "", chunks: Sequence[int] | None = None,
                compress: bool = True) -> h5py.Dataset:
    """Creates a float32 dataset (..., *spatial) at `path`, with its units.

    The file's ndim trailing axes are spatial; one field per chunk (`sample_chunks`) and
    compressed: the storage of /fields/<name>, and of stacks with more leading axes
    (samples of each map).

    `chunks` is the spatial shape of a chunk instead (every chunk holds part of one
    field); `compress=False` stores the values raw. Both are for reading speed, and any
    choice reads back the same values: random 3D crops read raw crop-sized chunks several
    times faster than gzip ones (BENCHMARKS.md, "Data loader"), at the size of raw data.

    Args:
        f: The file, open for writing, with its `ndim` attribute set.
        path: Path of the dataset in the file (e.g. `"fields/density"`).
        shape: Full shape, `(N, ..., *spatial)`.
        units: Units of the values (its `units` attribute, e.g. `"K"`).
        description: Its `description` attribute.
        chunks: Spatial shape of a chunk; None: `sample_chunks`.
        compress: gzip (level 4, shuffled); False stores the values raw.

    Returns:
        The new dataset.

    Raises:
        FieldnetError: If `chunks` are not ndim sizes between 1 and the spatial shape.
    """
    shape = tuple(int(s) for s in shape)
    ndim = int(f.attrs["ndim"])
    spatial = shape[-ndim:]
    if chunks is None:
        chunks = sample_chunks(spatial)[1:]
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != ndim or not all(1 <= c <= s for c, s in zip(chunks, spatial, strict=True)):
        raise FieldnetError(f"{path}: chunks must be {ndim} sizes between 1 and the field's "
                            f"{spatial}, got {chunks}")
    compression = dict(compression="gzip", compression_opts=4, shuffle=True) if compress else {}
    ds = f.create_dataset(path, shape=shape, dtype="float32",
                          chunks=(1,) * (len(shape) - ndim) + chunks, **compression)
    ds.attrs.update(units=units, description=description)
    return ds


def add_samples(f: h5py.File, names: Sequence[str], units: Sequence[str], n_maps: int,
                n_samples: int, spatial: Sequence[int], *,
                origin: str = "") -> Callable[[int, np.ndarray], None]:
    """Creates the sample stacks of a generative model's samples, one per field.

    Per field of `names`: samples/<name> (n_maps, n_samples, *spatial) and mean/<name>,
    std/<name> (n_maps, *spatial) (`add_dataset`). The returned `write(i, drawn)` stores
    map i's samples `drawn` (n_samples, *spatial, len(names)), channels in `names` order,
    with their mean and standard deviation (ddof 1; 0 for a single sample); it raises a
    `FieldnetError` on samples of another shape.

    Args:
        f: The file, open for writing, with its `ndim` attribute set.
        names: The fields' names.
        units: Units of each field, in `names` order.
        n_maps: Maps that have samples.
        n_samples: Samples of each map.
        spatial: Spatial shape of a map.
        origin: Text that ends the datasets' descriptions.

    Returns:
        The function `write(i, drawn)`.
    """
    spatial = tuple(int(s) for s in spatial)
    stacks = {what: [add_dataset(f, f"{what}/{name}", shape, units=units[k],
                                 description=f"{description} {origin}".strip())
                     for k, name in enumerate(names)]
              for what, shape, description in (
                  ("samples", (n_maps, n_samples, *spatial), "samples"),
                  ("mean", (n_maps, *spatial), "mean of the samples"),
                  ("std", (n_maps, *spatial), "standard deviation of the samples"))}

    def write(i: int, drawn: np.ndarray) -> None:
        drawn = np.asarray(drawn, np.float32)
        if drawn.shape != (n_samples, *spatial, len(names)):
            raise FieldnetError(f"map {i}: expected samples of shape "
                                f"{(n_samples, *spatial, len(names))}, got {drawn.shape}")
        for k in range(len(names)):
            stacks["samples"][k][i] = drawn[..., k]
            stacks["mean"][k][i] = drawn[..., k].mean(axis=0)
            stacks["std"][k][i] = drawn[..., k].std(axis=0, ddof=1) if n_samples > 1 else 0.0

    return write


def read_samples(path: str | os.PathLike, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The samples of a file written with `add_samples`, and its /sim_index.

    Args:
        path: The HDF5 file.
        names: The fields to read, in channel order.

    Returns:
        (samples, sim_index): float32 `(N, S, *spatial, len(names))` in physical units,
        channels in `names` order, and int64 `(N,)`.

    Raises:
        FieldnetError: On a missing samples/<name> or /sim_index, or a /sim_index of
            another length, or a file that is not readable HDF5.
        FileNotFoundError: If there is no such file.
    """
    with open_file(path) as f:
        for where in [f"samples/{name}" for name in names] + ["sim_index"]:
            if where not in f:
                raise data_error(path, where, reason="missing")
        samples = np.stack([f[f"samples/{name}"][...] for name in names], axis=-1)
        sim_index = f["sim_index"][...].astype(np.int64)
    if len(sim_index) != len(samples):
        raise data_error(path, "sim_index", reason=f"{len(sim_index)} entries for "
                         f"{len(samples)} maps of samples")
    return samples.astype(np.float32), sim_index


def add_index(f: h5py.File, sim_index: Sequence[int] | np.ndarray,
              params: np.ndarray | None = None, param_names: Sequence[str] = ()) -> None:
    """Writes /sim_index and, when given, /params with its column names.

    Args:
        f: A file opened by `create`.
        sim_index: The simulation each sample came from, (N,).
        params: Per-sample parameters, (N, P), or None.
        param_names: The P column names of `params`.

    Raises:
        FieldnetError: If `params` is not (N, len(param_names)).
    """
    f.create_dataset("sim_index", data=np.asarray(sim_index, np.int64))
    if params is not None:
        params = np.asarray(params, np.float32)
        if params.ndim != 2 or params.shape[1] != len(param_names):
            raise FieldnetError(f"params must be (N, {len(param_names)}) to match names "
                                f"{list(param_names)}, got {params.shape}")
        ds = f.create_dataset("params", data=params)
        ds.attrs["names"] = [str(n) for n in param_names]


@dataclass
class FieldInfo:
    """The metadata of one /fields/<name> dataset.

    Attributes:
        shape: (N, *spatial).
        units: Physical units.
        description: What the field is.
        log_floor: Floor of the log10 transform, or None.
    """

    shape: tuple[int, ...]
    units: str
    description: str
    log_floor: float | None


@dataclass
class FileInfo:
    """The metadata of a fieldnet-format file (`read_info`).

    Attributes:
        path: The file.
        ndim: Number of spatial axes.
        box_size: Side of the periodic box in Mpc/h, or one side per axis (a tuple) for a
            rectangular box.
        source: Where the data comes from.
        fields: {name: `FieldInfo`} of every field.
        sim_index: The simulation of each sample, (N,).
        params: Per-sample parameters (N, P), or None.
        param_names: Their P column names.
    """

    path: Path
    ndim: int
    box_size: float | tuple[float, ...]
    source: str
    fields: dict[str, FieldInfo]
    sim_index: np.ndarray
    params: np.ndarray | None = None
    param_names: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        """Number of samples in the file (entries of /sim_index)."""
        return len(self.sim_index)


def open_file(path: str | os.PathLike) -> h5py.File:
    """Opens any HDF5 file for reading with a one-line error for missing or corrupt files.

    Args:
        path: The HDF5 file.

    Returns:
        The open file (read-only).

    Raises:
        FileNotFoundError: If there is no such file.
        FieldnetError: If it is not a readable HDF5 file (truncated or corrupt).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise data_error(path, reason=f"not a readable HDF5 file (truncated or corrupt?): "
                         f"{err}") from None


def is_fieldnet(f: h5py.File) -> bool:
    """Whether an open HDF5 file is in the fieldnet format (its `format` attribute).

    Args:
        f: The open file.

    Returns:
        True for a fieldnet-format file.
    """
    return f.attrs.get("format") == FORMAT


def read_info(path: str | os.PathLike) -> FileInfo:
    """Reads and checks the metadata of a fieldnet-format file (no field data).

    Args:
        path: A fieldnet-format file.

    Returns:
        Its `FileInfo`.

    Raises:
        FieldnetError: (one line naming the file and dataset) If the file is missing,
            corrupt, not in the fieldnet format or of another version, or its fields and
            /sim_index disagree.
    """
    with open_file(path) as f:
        if not is_fieldnet(f):
            raise data_error(path, reason="not a fieldnet-format file (no format='fieldnet' "
                             "attribute); name its dataset paths in the config instead")
        version = int(f.attrs.get("version", -1))
        if version != VERSION:
            raise data_error(path, reason=f"format version {version}, this code reads {VERSION}")
        ndim = int(f.attrs["ndim"])
        fields = {}
        for name, ds in f["fields"].items():
            if ds.ndim != ndim + 1:
                raise data_error(path, f"fields/{name}", reason=f"expected shape (N, *spatial) "
                                 f"with {ndim} spatial axes, got {ds.shape}")
            floor = ds.attrs.get("log_floor")
            fields[name] = FieldInfo(tuple(ds.shape), str(ds.attrs.get("units", "")),
                                     str(ds.attrs.get("description", "")),
                                     None if floor is None else float(floor))
        if "sim_index" not in f:
            raise data_error(path, "sim_index", reason="missing")
        sim_index = f["sim_index"][...].astype(np.int64)
        params, names = None, []
        if "params" in f:
            params = f["params"][...]
            names = [str(n) for n in f["params"].attrs.get("names", [])]
        lengths = box_lengths(f.attrs["box_size"], ndim, f"{path}: box_size")
        info = FileInfo(Path(path), ndim, lengths[0] if len(set(lengths)) == 1 else lengths,
                        str(f.attrs["source"]), fields, sim_index, params, names)
    for name, fi in info.fields.items():
        if fi.shape[0] != info.num_samples:
            raise data_error(path, f"fields/{name}", reason=f"{fi.shape[0]} samples but "
                             f"sim_index has {info.num_samples}")
    return info


def write_arrays(path: str | os.PathLike, fields: Mapping[str, np.ndarray], *, ndim: int,
                 box_size: float | Sequence[float], source: str,
                 sim_index: Sequence[int] | np.ndarray,
                 units: Mapping[str, str], descriptions: Mapping[str, str] | None = None,
                 log_floors: Mapping[str, float] | None = None, params: np.ndarray | None = None,
                 param_names: Sequence[str] = (), overwrite: bool = False,
                 chunks: Sequence[int] | None = None, compress: bool = True) -> Path:
    """Writes in-memory arrays as a fieldnet file in one call.

    Args:
        path: The file to write (atomically, as `create` does).
        fields: {name: array (N, *spatial)} of every field.
        ndim: Number of spatial axes.
        box_size: Side of the periodic box in Mpc/h, or one side per axis.
        source: Where the data comes from.
        sim_index: The simulation each sample came from, (N,).
        units: {name: units} for every field.
        descriptions: {name: description}, optional per field.
        log_floors: {name: floor of the log10 transform}, optional per field.
        params: Per-sample parameters (N, P), or None.
        param_names: The P column names of `params`.
        overwrite: Replace an existing file.
        chunks: As in `add_dataset`.
        compress: As in `add_dataset`.

    Returns:
        `path`, as a `Path`.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from fieldnet.data import h5format
        >>> path = Path(tempfile.mkdtemp()) / "tiny.h5"
        >>> _ = h5format.write_arrays(path, {"density": np.ones((2, 8, 8))}, ndim=2,
        ...                           box_size=25.0, source="example", sim_index=[0, 1],
        ...                           units={"density": "M_sun/h"})
        >>> info = h5format.read_info(path)
        >>> info.num_samples, info.fields["density"].shape
        (2, (2, 8, 8))
    """
    with create(path, ndim=ndim, box_size=box_size, source=source, overwrite=overwrite) as f:
        for name, arr in fields.items():
            add_field(f, name, np.shape(arr), units=units[name],
                      description=(descriptions or {}).get(name, ""),
                      log_floor=(log_floors or {}).get(name), data=arr, chunks=chunks,
                      compress=compress)
        add_index(f, sim_index, params, param_names)
    return Path(path)
