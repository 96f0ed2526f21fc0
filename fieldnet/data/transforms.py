"""The log transform and the standardization of fields: the one place they are defined.

Scalar fields (densities, temperatures) are positive and span decades, so the network
sees z = (log10(max(x, floor)) - mean) / std, with mean and std of the log field over the
TRAIN split only.

Non-positive values. Where no floor is configured (neither in the data config nor as the
dataset's `log_floor` attribute), a value <= 0 is bad input and raises a one-line
`FieldnetError` naming the file, dataset and sample: silently clipping would hide a broken
file. Where a floor is configured, every value below it (zeros included) is raised to it,
which is how empty cells in a projected map or a particle deposit are meant to be handled.

Vector fields (velocities) are signed and change sign under reflections, so they are not
logged; they are divided by one RMS scale shared by their components and not shifted, which
keeps the standardization equivariant under the symmetry group used for augmentation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fieldnet.errors import FieldnetError
from fieldnet.files import write_json


def log10_floored(x: np.ndarray, floor: float | None = None, where: str = "") -> np.ndarray:
    """log10(max(x, floor)) in float32; with no floor, values <= 0 raise `FieldnetError`.

    `where` names the data (e.g. "file.h5:fields/T[3]") for the error message.
    """
    x = np.asarray(x, np.float32)
    if floor is None:
        smallest = x.min() if x.size else 1.0
        if not smallest > 0:
            raise FieldnetError(f"{where or 'field'}: non-positive value {smallest:g} where a "
                                "log10 is taken; set a log floor (data.input_log_floor / "
                                "data.target_log_floor or the dataset's log_floor attribute)")
        return np.log10(x)
    if not floor > 0:
        raise FieldnetError(f"{where or 'field'}: log floor must be positive, got {floor}")
    return np.log10(np.maximum(x, np.float32(floor)))


def exp10(log_x: np.ndarray) -> np.ndarray:
    """Inverse of `log10_floored` (values that were floored come back as the floor)."""
    return np.power(np.float32(10), np.asarray(log_x, np.float32))


@dataclass
class FieldStats:
    """How one field (one channel, or `components` channels for a vector) is standardized."""

    name: str
    mean: float
    std: float
    log: bool = True
    floor: float | None = None
    components: int = 1

    def forward(self, x: np.ndarray, where: str = "") -> np.ndarray:
        """Physical values -> standardized (log) space, float32."""
        if self.log:
            return (log10_floored(x, self.floor, where) - np.float32(self.mean)) / np.float32(
                self.std)
        return np.asarray(x, np.float32) / np.float32(self.std)

    def unstandardize(self, z: np.ndarray) -> np.ndarray:
        """Standardized space -> log10 of the field (or the field itself if not logged)."""
        return np.asarray(z, np.float32) * np.float32(self.std) + np.float32(self.mean)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardized space -> physical values, float32."""
        return exp10(self.unstandardize(z)) if self.log else self.unstandardize(z)


class RunningMoments:
    """Streaming mean and standard deviation (float64 sums; chunks may be any size)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64)
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())

    def mean_std(self, centered: bool = True) -> tuple[float, float]:
        """Mean and std; with centered=False the std is the RMS about zero (for vectors)."""
        if self.count == 0:
            raise FieldnetError("cannot fit normalization statistics on an empty split")
        mean = self.total / self.count
        second = self.total_sq / self.count
        var = second - mean * mean if centered else second
        # A constant field would divide by zero; it then maps to zero instead.
        return mean, float(np.sqrt(var)) if var > 1e-24 else 1.0


@dataclass
class ParamStats:
    """How one simulation parameter (a /params column) is standardized for conditioning."""

    name: str
    mean: float
    std: float


class Normalizer:
    """Per-field standardization of log fields, and of the simulation parameters a model is
    conditioned on, fitted on the training split only."""

    def __init__(self, fields: Iterable[FieldStats], params: Iterable[ParamStats] = ()):
        self.fields = {s.name: s for s in fields}
        self.params = {p.name: p for p in params}

    @staticmethod
    def fit_params(names: Sequence[str], values: np.ndarray) -> list[ParamStats]:
        """Mean and std of each column of `values` (rows: training samples)."""
        values = np.asarray(values, np.float64)
        stats = []
        for j, name in enumerate(names):
            moments = RunningMoments()
            moments.update(values[:, j])
            stats.append(ParamStats(name, *moments.mean_std()))
        return stats

    def forward_params(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Physical parameter values (..., len(names)) -> standardized, float32."""
        missing = [n for n in names if n not in self.params]
        if missing:
            raise FieldnetError(f"normalizer has no statistics for parameters {missing}; it "
                                f"knows {sorted(self.params)}")
        values = np.asarray(values, np.float64)
        mean = np.array([self.params[n].mean for n in names])
        std = np.array([self.params[n].std for n in names])
        return ((values - mean) / std).astype(np.float32)

    @classmethod
    def fit(cls, chunks_by_field: dict[str, Iterable[tuple[np.ndarray, str]]],
            floors: dict[str, float | None], vector_components: dict[str, int]) -> Normalizer:
        """Streams (chunk, where) pairs per field; a vector's chunks carry components last."""
        stats = []
        for name, chunks in chunks_by_field.items():
            moments = RunningMoments()
            components = vector_components.get(name, 1)
            is_vector = name in vector_components
            for chunk, where in chunks:
                moments.update(chunk if is_vector else log10_floored(chunk, floors.get(name),
                                                                     where))
            mean, std = moments.mean_std(centered=not is_vector)
            stats.append(FieldStats(name, 0.0 if is_vector else mean, std, log=not is_vector,
                                    floor=None if is_vector else floors.get(name),
                                    components=components))
        return cls(stats)

    def __getitem__(self, name: str) -> FieldStats:
        if name not in self.fields:
            raise FieldnetError(f"normalizer has no field {name!r}; it knows "
                                f"{sorted(self.fields)}")
        return self.fields[name]

    def forward(self, name: str, x: np.ndarray, where: str = "") -> np.ndarray:
        return self[name].forward(x, where)

    def inverse(self, name: str, z: np.ndarray) -> np.ndarray:
        return self[name].inverse(z)

    def forward_channels(self, names: Sequence[str], x: np.ndarray) -> np.ndarray:
        """Channels-last physical array (..., C) -> standardized, channels in `names` order."""
        return self._map_channels(names, x, "forward")

    def inverse_channels(self, names: Sequence[str], z: np.ndarray) -> np.ndarray:
        """Channels-last standardized array (..., C) -> physical, e.g. a model's prediction."""
        return self._map_channels(names, z, "inverse")

    def _map_channels(self, names: Sequence[str], x: np.ndarray, method: str) -> np.ndarray:
        widths = [self[n].components for n in names]
        if x.shape[-1] != sum(widths):
            raise FieldnetError(f"expected {sum(widths)} channels for fields {list(names)}, "
                                f"got shape {x.shape}")
        out, start = [], 0
        for name, width in zip(names, widths, strict=True):
            part = x[..., start:start + width]
            out.append(getattr(self[name], method)(part))
            start += width
        return np.concatenate(out, axis=-1)

    def to_json(self) -> dict:
        out = {"fields": [asdict(s) for s in self.fields.values()]}
        if self.params:
            out["params"] = [asdict(p) for p in self.params.values()]
        return out

    @classmethod
    def from_json(cls, data: dict) -> Normalizer:
        try:
            return cls((FieldStats(**s) for s in data["fields"]),
                       (ParamStats(**p) for p in data.get("params", [])))
        except (KeyError, TypeError) as err:
            raise FieldnetError(f"not a normalizer description: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes JSON atomically (`files.write_json`)."""
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        path = Path(path)
        if not path.exists():
            raise FieldnetError(f"{path}: no such normalizer file")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise FieldnetError(f"{path}: not valid JSON ({err})") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Normalizer) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"Normalizer({list(self.fields.values())}, {list(self.params.values())})"
