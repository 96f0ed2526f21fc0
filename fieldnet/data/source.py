"""Reading fields from HDF5: the fieldnet format, or any file whose dataset paths are named.

A `FieldSource` opens one file, resolves the configured input and target fields to
datasets, checks that they agree in shape, and reads whole samples, slabs along the first
spatial axis, or periodic windows (wrap-around crops) of them. Every read is checked for
NaN/Inf; problems raise a one-line `FieldnetError` naming file, dataset and sample.

Vector fields are stored as one scalar dataset per Cartesian component, named
`<field>_x`, `<field>_y`, `<field>_z` (first, second, third spatial axis), because the
fieldnet format holds scalar fields only; they are read with the components last.

`FieldSource.grid` is the `fieldnet.grid.Grid` of one whole sample: its shape and the box
lengths of the file's `box_size` attribute (one side, or one per axis) or of `data.box_size`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fieldnet.data.h5format import box_lengths, is_fieldnet, open_file
from fieldnet.errors import FieldnetError, data_error
from fieldnet.grid import Grid

COMPONENT_SUFFIXES = ("_x", "_y", "_z")
# Streaming reads (statistics, inspection) take blocks of about this many values.
BLOCK_VALUES = 1 << 22
# A crop no larger than a chunk touches at most 2 chunks per axis, and a wrap-around crop
# reads up to 2^d pieces that share them; the per-dataset chunk cache keeps those chunks
# decompressed between pieces (HDF5's default, 1 MiB, is smaller than one 64^3 float32
# chunk). It is sized to a crop, not to the file, so random access over a large file
# behaves as measured on a small one.
CACHED_CHUNKS_PER_AXIS = 2


def parse_names(value: str | Sequence[str] | None) -> list[str]:
    """A comma-separated string or a sequence of names -> list of names.

    Args:
        value: `"a, b"`, a sequence of names, or None.

    Returns:
        The names, stripped, empty ones of a string dropped; `[]` for None.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


@dataclass(frozen=True)
class Field:
    """One configured field: its name (the channel label) and its component datasets."""

    name: str
    datasets: tuple[str, ...]
    units: str
    log_floor: float | None
    is_vector: bool

    @property
    def components(self) -> int:
        """Channels of the field: 1 for a scalar, one per component dataset for a vector."""
        return len(self.datasets)


class FieldSource:
    """One open HDF5 file with the input and target fields resolved.

    `single_box` is True when the file holds one periodic box (a raw dataset without a
    sample axis, or a fieldnet file with one sample); the loader then splits by region.

    Inference opens a file with its inputs only (`target_fields=()`) and with
    `sample_axis=None`, which means "a leading sample axis if the datasets have `ndim` + 1
    axes"; `box_size` then falls back to `default_box_size` when the file names none.
    Either is one side in Mpc/h, or one per axis.

    Args:
        path: The HDF5 file.
        input_fields: Input field names (or dataset paths), in channel order.
        target_fields: Target field names (or dataset paths); empty for inference.
        vector_fields: Those of the fields that are vectors (`<name>_x`, ... datasets).
        sample_axis: Whether raw datasets have a leading sample axis; None: decided from
            `ndim`.
        box_size: Box side in Mpc/h, or one per axis; None: the file's `box_size`
            attribute.
        input_log_floor: log10 floor of the inputs, in their units; None: the datasets'
            `log_floor` attribute.
        target_log_floor: The same for the targets.
        ndim: Number of spatial axes of the fields, needed with `sample_axis=None`.
        default_box_size: Box side in Mpc/h (or one per axis) when neither `box_size` nor
            the file gives one.

    Raises:
        FieldnetError: On an unset path, a missing file, no input field, or fields the file
            does not hold or that disagree in shape.
        ValueError: On `sample_axis=None` without `ndim`.

    Attributes:
      grid: the `Grid` of one whole sample (periodic along every axis).
    """

    def __init__(self, path: str | Path, input_fields: Sequence[str],
                 target_fields: Sequence[str], *, vector_fields: Sequence[str] = (),
                 sample_axis: bool | None = True,
                 box_size: float | Sequence[float] | None = None,
                 input_log_floor: float | None = None,
                 target_log_floor: float | None = None, ndim: int | None = None,
                 default_box_size: float | Sequence[float] | None = None):
        self.path = Path(path)
        if not str(path):
            raise data_error("data.path", reason="not set; name an HDF5 file")
        if not self.path.exists():
            raise data_error(self.path, reason="no such file")
        if not input_fields:
            raise data_error(self.path, reason="need at least one input field")
        if sample_axis is None and ndim is None:
            raise ValueError("sample_axis=None needs the fields' ndim")
        self._ndim_hint, self._default_box_size = ndim, default_box_size
        self.file = open_file(self.path)
        self._datasets: dict[str, h5py.Dataset] = {}
        try:
            self._resolve_all(input_fields, target_fields, vector_fields, sample_axis, box_size,
                              input_log_floor, target_log_floor)
        except BaseException:
            self.file.close()
            raise

    def _resolve_all(self, input_fields, target_fields, vector_fields, sample_axis, box_size,
                     input_log_floor, target_log_floor) -> None:
        self.is_fieldnet = is_fieldnet(self.file)
        vectors = set(vector_fields)
        self.inputs = [self._resolve(n, n in vectors, input_log_floor) for n in input_fields]
        if self.is_fieldnet:
            self.has_sample_axis = True
        elif sample_axis is None:
            shape = self.file[self.inputs[0].datasets[0]].shape
            self.has_sample_axis = len(shape) == self._ndim_hint + 1
        else:
            self.has_sample_axis = bool(sample_axis)
        self.targets = [self._resolve(n, n in vectors, target_log_floor)
                        for n in target_fields]
        self._check_shapes()
        first = self.file[self.inputs[0].datasets[0]]
        self.num_samples = first.shape[0] if self.has_sample_axis else 1
        self.spatial_shape = tuple(first.shape[1:] if self.has_sample_axis else first.shape)
        self.ndim = len(self.spatial_shape)
        if not 1 <= self.ndim <= 3:
            raise data_error(self.path, self.inputs[0].datasets[0],
                             reason=f"expected 1 to 3 spatial axes, got shape {first.shape}")
        for field in self.inputs + self.targets:
            if field.is_vector:
                self._check_components(field)
        self.grid = Grid.box(self.spatial_shape, self._box_lengths(box_size))
        self.sim_index, self.params, self.param_names = self._index()
        self.single_box = self.num_samples == 1

    def _resolve(self, name: str, is_vector: bool, configured_floor: float | None) -> Field:
        base = name if ("/" in name or not self.is_fieldnet) else f"fields/{name}"
        if is_vector:
            paths = tuple(f"{base}{s}" for s in COMPONENT_SUFFIXES)
            paths = tuple(p for p in paths if p in self.file)
            if not paths:
                raise data_error(self.path, f"{base}_x", reason=f"missing (vector field "
                                 f"{name!r} needs datasets {base}_x, {base}_y, ...); the "
                                 f"file has {self._known()}")
        else:
            paths = (base,)
        for p in paths:
            if p not in self.file or not isinstance(self.file[p], h5py.Dataset):
                raise data_error(self.path, p, reason=f"missing dataset for field {name!r}; "
                                 f"the file has {self._known()}")
        ds = self.file[paths[0]]
        floor = configured_floor
        if floor is None and "log_floor" in ds.attrs:
            floor = float(ds.attrs["log_floor"])
        return Field(name, paths, str(ds.attrs.get("units", "")), floor, is_vector)

    def _known(self) -> list[str]:
        """The file's fields (fieldnet format) or dataset paths, for error messages."""
        if self.is_fieldnet and isinstance(self.file.get("fields"), h5py.Group):
            return sorted(self.file["fields"])[:20]
        return _dataset_paths(self.file)[:20]

    def _check_shapes(self) -> None:
        first = self.inputs[0].datasets[0]
        shape = self.file[first].shape
        for field in self.inputs + self.targets:
            for p in field.datasets:
                if self.file[p].shape != shape:
                    raise data_error(self.path, p, reason=f"shape {self.file[p].shape} differs "
                                     f"from {first} {shape}; input and target must match")
        if self.has_sample_axis and len(shape) < 2:
            raise data_error(self.path, first, reason=f"shape {shape} has no spatial axes after "
                             "the sample axis (set data.sample_axis=False for a single box)")

    def _check_components(self, field: Field) -> None:
        """A vector needs exactly one component per spatial axis: _x, _y (, _z)."""
        base = field.datasets[0][:-len(COMPONENT_SUFFIXES[0])]
        wanted = [f"{base}{s}" for s in COMPONENT_SUFFIXES[:self.ndim]]
        missing = [p for p in wanted if p not in field.datasets]
        if missing:
            raise data_error(self.path, missing[0], reason=f"missing component of vector field "
                             f"{field.name!r} (in {self.ndim}D it needs {', '.join(wanted)})")
        extra = [p for p in field.datasets if p not in wanted]
        if extra:
            raise data_error(self.path, extra[0], reason=f"vector field {field.name!r} has more "
                             f"components than the {self.ndim} spatial axes of its data")

    def _box_lengths(self, configured) -> tuple[float, ...]:
        size = configured if configured is not None else self.file.attrs.get(
            "box_size", self._default_box_size)
        if size is None:
            raise data_error(self.path, reason="no box_size attribute; set data.box_size "
                             "(Mpc/h) for files not in the fieldnet format")
        try:
            return box_lengths(size, self.ndim)
        except FieldnetError as err:
            raise data_error(self.path, reason=str(err)) from None

    def _index(self) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
        """sim_index (one simulation per sample when the file has none) and params."""
        n = self.num_samples
        if "sim_index" in self.file and self.has_sample_axis:
            sim_index = self.file["sim_index"][...].astype(np.int64)
            if sim_index.shape != (n,):
                raise data_error(self.path, "sim_index", reason=f"shape {sim_index.shape}, "
                                 f"expected ({n},) to match the fields")
        else:
            sim_index = np.arange(n, dtype=np.int64)
        params, names = None, []
        if "params" in self.file and self.has_sample_axis and self.file["params"].ndim == 2:
            params = self.file["params"][...].astype(np.float32)
            names = [str(s) for s in self.file["params"].attrs.get("names", [])]
            if len(params) != n:
                raise data_error(self.path, "params", reason=f"{len(params)} rows, expected {n}")
        return sim_index, params, names

    def where(self, dataset: str, sample: int) -> str:
        """The 'file:dataset[index]' location used in error messages.

        Args:
            dataset: Path of the dataset in the file.
            sample: Index of the sample.

        Returns:
            The location, `"<path>:<dataset>[<sample>]"`.
        """
        return f"{self.path}:{dataset}[{sample}]"

    def read_window(self, field: Field, sample: int, starts: Sequence[int],
                    sizes: Sequence[int]) -> np.ndarray:
        """A periodic window (wrap-around on every axis) of one sample of a field.

        Args:
            field: The field.
            sample: Index of the sample in the file.
            starts: First pixel of the window along each spatial axis.
            sizes: Pixels of the window along each spatial axis.

        Returns:
            float32 array `(*sizes, components)`, in the field's units.

        Raises:
            FieldnetError: On NaN/Inf values in the data read.
        """
        runs = [_periodic_runs(s, w, n) for s, w, n in zip(starts, sizes, self.spatial_shape,
                                                          strict=True)]
        out = np.empty((*sizes, field.components), np.float32)
        for c, path in enumerate(field.datasets):
            for pieces in itertools.product(*runs):
                src = tuple(slice(a, b) for a, b, _ in pieces)
                dst = tuple(slice(d, d + b - a) for a, b, d in pieces)
                out[(*dst, c)] = self._read(path, sample, src)
            self.check_finite(out[..., c], path, sample)
        return out

    def read_sample(self, field: Field, sample: int, lo: int = 0,
                    hi: int | None = None) -> np.ndarray:
        """A whole sample, or rows lo:hi of its first spatial axis.

        Args:
            field: The field.
            sample: Index of the sample in the file.
            lo: First row of the first spatial axis.
            hi: Row after the last one; None: the end of the axis.

        Returns:
            float32 array `(hi - lo, *spatial[1:], components)`, in the field's units.

        Raises:
            FieldnetError: On NaN/Inf values in the data read.
        """
        hi = self.spatial_shape[0] if hi is None else hi
        parts = []
        for path in field.datasets:
            part = np.asarray(self._read(path, sample, (slice(lo, hi),)), np.float32)
            self.check_finite(part, path, sample)
            parts.append(part)
        return np.stack(parts, axis=-1)

    def iter_blocks(self, field: Field, sample: int, lo: int = 0,
                    hi: int | None = None) -> Iterator[tuple[np.ndarray, str]]:
        """Rows lo:hi of a sample in blocks of about BLOCK_VALUES, with their location.

        Args:
            field: The field.
            sample: Index of the sample in the file.
            lo: First row of the first spatial axis.
            hi: Row after the last one; None: the end of the axis.

        Yields:
            (block, location): float32 `(rows, *spatial[1:], components)` and
            `where(dataset, sample)`.

        Raises:
            FieldnetError: On NaN/Inf values in the data read.
        """
        hi = self.spatial_shape[0] if hi is None else hi
        row_values = int(np.prod(self.spatial_shape[1:], dtype=np.int64)) * field.components
        step = max(1, BLOCK_VALUES // max(row_values, 1))
        for start in range(lo, hi, step):
            block = self.read_sample(field, sample, start, min(start + step, hi))
            yield block, self.where(field.datasets[0], sample)

    def check_finite(self, values: np.ndarray, dataset: str, sample: int) -> None:
        """Checks values read from the file for NaN/Inf.

        Args:
            values: The values read.
            dataset: Path of the dataset they come from.
            sample: Index of their sample.

        Raises:
            FieldnetError: Naming file, dataset and sample, and how many values are NaN/Inf.
        """
        if not np.isfinite(values).all():
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise data_error(self.path, dataset, sample,
                             reason=f"{bad} NaN/Inf values in the data read")

    def _read(self, path: str, sample: int, spatial: tuple[slice, ...]) -> np.ndarray:
        key = (sample, *spatial) if self.has_sample_axis else spatial
        try:
            return self._dataset(path)[key]
        except OSError as err:
            raise data_error(self.path, path, sample, reason=f"unreadable (corrupt or "
                             f"truncated file?): {err}") from None

    def _dataset(self, path: str) -> h5py.Dataset:
        """The dataset opened once, with a chunk cache large enough for a whole crop."""
        if path not in self._datasets:
            plain = self.file[path]
            chunk = plain.chunks or plain.shape
            chunk_bytes = int(np.prod(chunk)) * plain.dtype.itemsize
            chunks = int(np.prod([min(CACHED_CHUNKS_PER_AXIS, -(-n // c)) for n, c in
                                  zip(plain.shape[-self.ndim:], chunk[-self.ndim:], strict=True)]))
            access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            access.set_chunk_cache(max(521, 8 * chunks), max(chunks * chunk_bytes, 1 << 20), 1.0)
            self._datasets[path] = h5py.Dataset(h5py.h5d.open(self.file.id, path.encode(),
                                                              dapl=access))
        return self._datasets[path]

    def close(self) -> None:
        """Closes the file (closing twice does nothing)."""
        self._datasets.clear()
        if self.file.id.valid:
            self.file.close()


def _periodic_runs(start: int, size: int, n: int) -> list[tuple[int, int, int]]:
    """Contiguous pieces (src_lo, src_hi, dst_lo) covering indices start..start+size mod n."""
    runs, done, pos = [], 0, start % n
    while done < size:
        length = min(size - done, n - pos)
        runs.append((pos, pos + length, done))
        done += length
        pos = 0
    return runs


def _dataset_paths(f: h5py.File) -> list[str]:
    paths: list[str] = []
    f.visititems(lambda name, obj: paths.append(name) if isinstance(obj, h5py.Dataset) else None)
    return paths
