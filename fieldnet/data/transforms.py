"""How fields are transformed and standardized: the one place it is defined.

Each field is mapped into its *transform space* by a named transform and standardized there
with statistics of the TRAIN split only; the network sees

    z = (t(x) - mean) / std

The transforms (`TRANSFORMS`; `data.transforms` picks one per field, as
"velocity_divergence:none,velocity_dispersion:asinh"):

- `log10` (every scalar field by default): t(x) = log10(max(x, floor)), for positive
  fields that span decades (densities, temperatures). The floor is meant for empty cells:
  values in [0, floor) are raised to it. A negative value (an impossible mass or
  temperature), a NaN, or with no floor configured (neither in the data config nor as the
  dataset's `log_floor` attribute) a zero, is bad input and raises a one-line
  `FieldnetError` naming the data and the value: silently clipping would hide a broken file.
- `none`: t(x) = x, for signed scalars such as the velocity divergence.
- `asinh`: t(x) = asinh(x / s), for signed fields with heavy tails: linear for |x| << s,
  logarithmic beyond. The scale s is the mean of |x| over the train split (a typical
  magnitude that a few extreme cells do not set, as they would an RMS), fitted once and
  saved with the statistics.

Vector fields (velocities) are signed and change sign under reflections, so they take
`none` only and are divided by one RMS scale shared by their components, not shifted:
that keeps the standardization equivariant under the symmetry group used for
augmentation.

The transform space is where evaluation statistics are computed (`FieldStats.unstandardize`):
log10 of the field for `log10`, the field itself for `none`, asinh(x / s) for `asinh`;
`FieldStats.space` names it for labels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fieldnet.errors import FieldnetError
from fieldnet.files import write_json

DEFAULT_SCALAR_TRANSFORM = "log10"
VECTOR_TRANSFORM = "none"


def log10_floored(x: np.ndarray, floor: float | None = None, where: str = "",
                  field: str = "") -> np.ndarray:
    """log10(max(x, floor)) in float32.

    Values in [0, floor) are raised to the floor (empty cells).

    Args:
        x: Positive field values, any shape, in the field's units.
        floor: Smallest value taken, in the field's units (> 0); None: no floor, and every
            value must be positive.
        where: Names the data in the message (e.g. "file.h5:fields/T[3]").
        field: Names the field in the message (for the `data.transforms` suggestion).

    Returns:
        float32 array of the shape of `x`: log10 of the floored values.

    Raises:
        FieldnetError: On a non-positive `floor`, a NaN, a negative value, or, with no
            floor, a zero.
    """
    x = np.asarray(x, np.float32)
    where = where or field or "field"
    if floor is not None and not floor > 0:
        raise FieldnetError(f"{where}: log floor must be positive, got {floor}")
    smallest = x.min() if x.size else np.float32(1)
    if np.isnan(smallest):
        raise FieldnetError(f"{where}: NaN value where a log10 is taken")
    if smallest < 0:
        field = field or "<field>"
        raise FieldnetError(f"{where}: negative value {smallest:g} where a log10 is taken"
                            + ("" if floor is None else f" (the log floor {floor:g} is for "
                               "empty cells, not negative ones)")
                            + f"; a signed field takes data.transforms={field}:none or "
                            f"{field}:asinh")
    if floor is None:
        if not smallest > 0:
            raise FieldnetError(f"{where}: non-positive value {smallest:g} where a log10 is "
                                "taken; set a log floor (data.input_log_floor / "
                                "data.target_log_floor or the dataset's log_floor attribute)")
        return np.log10(x)
    return np.log10(np.maximum(x, np.float32(floor)))


def exp10(log_x: np.ndarray) -> np.ndarray:
    """Inverse of `log10_floored` (values that were floored come back as the floor).

    Args:
        log_x: log10 of field values, any shape.

    Returns:
        float32 array of the shape of `log_x`: 10**log_x, in the field's units.
    """
    return np.power(np.float32(10), np.asarray(log_x, np.float32))


@dataclass(frozen=True)
class Transform:
    """A named map from a field's physical values to the space it is standardized in.

    `forward(x, stats, where)` and `inverse(t, stats)` take and return float32 arrays;
    `space` names the transform space for labels ("{}": the field's name, "{s}": the
    scale), and `tex` the same in TeX for figure axes ("{}": the field's symbol);
    `floored`: it takes the field's log floor; `scaled`: a scale s is fitted on the train
    split before the moments; `vectors`: whether a vector field may take it.
    """

    name: str
    forward: Callable[[np.ndarray, FieldStats, str], np.ndarray]
    inverse: Callable[[np.ndarray, FieldStats], np.ndarray]
    space: str
    tex: str
    floored: bool = False
    scaled: bool = False
    vectors: bool = False


def _log10_forward(x: np.ndarray, stats: FieldStats, where: str) -> np.ndarray:
    return log10_floored(x, stats.floor, where, stats.name)


def _identity_forward(x: np.ndarray, stats: FieldStats, where: str) -> np.ndarray:
    return np.asarray(x, np.float32)


def _identity_inverse(t: np.ndarray, stats: FieldStats) -> np.ndarray:
    return np.asarray(t, np.float32)


def _asinh_forward(x: np.ndarray, stats: FieldStats, where: str) -> np.ndarray:
    return np.arcsinh(np.asarray(x, np.float32) / np.float32(stats.scale))


def _asinh_inverse(t: np.ndarray, stats: FieldStats) -> np.ndarray:
    return np.sinh(np.asarray(t, np.float32)) * np.float32(stats.scale)


TRANSFORMS: dict[str, Transform] = {t.name: t for t in (
    Transform("log10", _log10_forward, lambda t, stats: exp10(t), "log10 {}",
              r"\log_{{10}} {}", floored=True),
    Transform("none", _identity_forward, _identity_inverse, "{}", "{}", vectors=True),
    Transform("asinh", _asinh_forward, _asinh_inverse, "asinh({} / {s:.4g})",
              r"\mathrm{{asinh}}({}/s)", scaled=True),
)}


def parse_transforms(spec: str | None) -> dict[str, str]:
    """Parses `data.transforms`, "field:transform,..." into {field: transform}.

    Args:
        spec: The `data.transforms` string; None or empty chooses none.

    Returns:
        The chosen transform name (a `TRANSFORMS` key) of each field named, in order.

    Raises:
        FieldnetError: On a malformed entry, an unknown transform or a field named twice.
    """
    chosen: dict[str, str] = {}
    for entry in (e.strip() for e in str(spec or "").split(",")):
        if not entry:
            continue
        field, sep, name = (part.strip() for part in entry.rpartition(":"))
        if not sep or not field or not name:
            raise FieldnetError(f"data.transforms: entry {entry!r} is not field:transform "
                                f"(transforms: {', '.join(TRANSFORMS)})")
        if name not in TRANSFORMS:
            raise FieldnetError(f"data.transforms: field {field!r}: unknown transform "
                                f"{name!r}; expected one of {', '.join(TRANSFORMS)}")
        if field in chosen:
            raise FieldnetError(f"data.transforms: field {field!r} is named twice")
        chosen[field] = name
    return chosen


def resolve_transforms(spec: str | None, fields: Sequence[str],
                       vectors: Sequence[str] = ()) -> dict[str, str]:
    """The transform of every field in `fields` (inputs and targets).

    `spec`'s choice, else log10 for a scalar and none for a vector.

    Args:
        spec: The `data.transforms` string, "field:transform,..."; None or empty chooses
            none.
        fields: Names of the input and target fields.
        vectors: Those of `fields` that are vectors (`data.vector_fields`).

    Returns:
        {field: transform name} for every field of `fields`.

    Raises:
        FieldnetError: On what `parse_transforms` refuses, a choice for a field that is
            not among `fields`, or a transform other than none for a vector.
    """
    chosen = parse_transforms(spec)
    for field, name in chosen.items():
        if field not in fields:
            raise FieldnetError(f"data.transforms: field {field!r} is neither an input nor a "
                                f"target (those are {list(fields)})")
        if field in vectors and not TRANSFORMS[name].vectors:
            raise FieldnetError(f"data.transforms: field {field!r} is a vector "
                                f"(data.vector_fields); it takes {VECTOR_TRANSFORM} only, not "
                                f"{name} (its components are scaled by one shared RMS)")
    return {f: chosen.get(f, VECTOR_TRANSFORM if f in vectors else DEFAULT_SCALAR_TRANSFORM)
            for f in fields}


@dataclass
class FieldStats:
    """How one field (one channel, or `components` channels for a vector) is standardized:
    `transform` (a `TRANSFORMS` name) then (t - mean) / std; `floor` is log10's floor and
    `scale` asinh's s, in the field's units. A vector's mean is 0: it is only scaled."""

    name: str
    mean: float
    std: float
    transform: str = DEFAULT_SCALAR_TRANSFORM
    floor: float | None = None
    components: int = 1
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise FieldnetError(f"field {self.name!r}: unknown transform {self.transform!r}; "
                                f"expected one of {', '.join(TRANSFORMS)}")
        if TRANSFORMS[self.transform].scaled and not (self.scale is not None and self.scale > 0):
            raise FieldnetError(f"field {self.name!r}: transform {self.transform} needs a "
                                f"positive scale, got {self.scale!r}")

    @property
    def space(self) -> str:
        """The transform space in words, for labels: "log10 temperature", "velocity"."""
        return TRANSFORMS[self.transform].space.format(self.name, s=self.scale)

    def forward(self, x: np.ndarray, where: str = "") -> np.ndarray:
        """Physical values -> standardized space, float32.

        Args:
            x: Values of the field in its units, any shape (a vector's components last).
            where: Names the data in error messages (e.g. "file.h5:fields/T[3]").

        Returns:
            float32 array of the shape of `x`.

        Raises:
            FieldnetError: On values the transform cannot take (see `log10_floored`).
        """
        t = TRANSFORMS[self.transform].forward(x, self, where)
        return (t - np.float32(self.mean)) / np.float32(self.std)

    def unstandardize(self, z: np.ndarray) -> np.ndarray:
        """Standardized space -> transform space (`space`).

        log10 of the field for log10, the field itself for none, asinh(x / s) for asinh.

        Args:
            z: Standardized values, any shape.

        Returns:
            float32 array of the shape of `z`.
        """
        return np.asarray(z, np.float32) * np.float32(self.std) + np.float32(self.mean)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardized space -> physical values, float32.

        Args:
            z: Standardized values, any shape.

        Returns:
            float32 array of the shape of `z`, in the field's units.
        """
        return TRANSFORMS[self.transform].inverse(self.unstandardize(z), self)

    @classmethod
    def from_json(cls, entry: dict) -> FieldStats:
        """One entry of a normalizer file, also as written before transforms had names.

        Args:
            entry: The entry's keys (`name`, `mean`, `std`, ...; or `log` in place of
                `transform`).

        Returns:
            The field's statistics.

        Raises:
            FieldnetError: On an unknown transform, or a scaled one without a positive scale.
        """
        entry = dict(entry)
        if "log" in entry:   # written before transforms had names: scalars log10, vectors none
            entry["transform"] = DEFAULT_SCALAR_TRANSFORM if entry.pop("log") else "none"
        return cls(**entry)


class RunningMoments:
    """Streaming mean and standard deviation (float64 sums; chunks may be any size)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, values: np.ndarray) -> None:
        """Adds values to the sums.

        Args:
            values: Values of any shape.
        """
        values = np.asarray(values, np.float64)
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.square(values).sum())

    def mean_std(self, centered: bool = True) -> tuple[float, float]:
        """Mean and std; with centered=False the std is the RMS about zero (for vectors).

        A constant field gets std 1 (it then maps to zero instead of dividing by zero).

        Args:
            centered: The std about the mean; False: the RMS about zero.

        Returns:
            (mean, std) of every value added.

        Raises:
            FieldnetError: If no value was added (an empty split).
        """
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
    """Per-field transforms and standardization, fitted on the training split only.

    And the standardization of the simulation parameters a model is conditioned on.

    Args:
        fields: The statistics of each field.
        params: The statistics of each conditioning parameter.
    """

    def __init__(self, fields: Iterable[FieldStats], params: Iterable[ParamStats] = ()):
        self.fields = {s.name: s for s in fields}
        self.params = {p.name: p for p in params}

    @staticmethod
    def fit_params(names: Sequence[str], values: np.ndarray) -> list[ParamStats]:
        """Mean and std of each column of `values` (rows: training samples).

        Args:
            names: The parameters' names, one per column.
            values: Parameter values, shape `(N, len(names))`.

        Returns:
            The statistics of each parameter, in `names` order.

        Raises:
            FieldnetError: If there are no rows.
        """
        values = np.asarray(values, np.float64)
        stats = []
        for j, name in enumerate(names):
            moments = RunningMoments()
            moments.update(values[:, j])
            stats.append(ParamStats(name, *moments.mean_std()))
        return stats

    def forward_params(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Physical parameter values (..., len(names)) -> standardized, float32.

        Args:
            names: The parameters, in the order of the last axis.
            values: Parameter values, shape `(..., len(names))`.

        Returns:
            float32 array of the shape of `values`.

        Raises:
            FieldnetError: If a parameter has no statistics.
        """
        missing = [n for n in names if n not in self.params]
        if missing:
            raise FieldnetError(f"normalizer has no statistics for parameters {missing}; it "
                                f"knows {sorted(self.params)}")
        values = np.asarray(values, np.float64)
        mean = np.array([self.params[n].mean for n in names])
        std = np.array([self.params[n].std for n in names])
        return ((values - mean) / std).astype(np.float32)

    @classmethod
    def fit(cls, chunks_by_field: Mapping[str, Callable[[], Iterable[tuple[np.ndarray, str]]]],
            floors: Mapping[str, float | None], vector_components: Mapping[str, int],
            transforms: Mapping[str, str] | None = None) -> Normalizer:
        """Statistics of each field from a stream of (chunk, where) pairs.

        A vector's chunks carry its components last. `chunks_by_field` gives, per field, a
        function that starts the stream afresh: an asinh field is read twice, once for its
        scale and once for its moments. `transforms` names each field's transform (default
        log10 for a scalar, none for a vector).

        Args:
            chunks_by_field: Per field, a function returning an iterable of (values in the
                field's units, where they come from).
            floors: log10 floor of each field, in its units (None: no floor).
            vector_components: Components of each vector field; fields not in it are scalars.
            transforms: Transform name of each field; None or missing: the default.

        Returns:
            The fitted normalizer (no parameter statistics).

        Raises:
            FieldnetError: On a transform other than none for a vector, values a transform
                cannot take, or an empty stream.
        """
        stats = []
        for name, chunks in chunks_by_field.items():
            is_vector = name in vector_components
            transform = (transforms or {}).get(
                name, VECTOR_TRANSFORM if is_vector else DEFAULT_SCALAR_TRANSFORM)
            if is_vector and transform != VECTOR_TRANSFORM:
                raise FieldnetError(f"field {name!r} is a vector; it takes {VECTOR_TRANSFORM} "
                                    f"only, not {transform}")
            scale = None
            if TRANSFORMS[transform].scaled:
                magnitude = RunningMoments()
                for chunk, _ in chunks():
                    magnitude.update(np.abs(chunk))
                scale = magnitude.mean_std()[0] or 1.0   # an all-zero field maps to zero
            floor = floors.get(name) if TRANSFORMS[transform].floored else None
            field = FieldStats(name, 0.0, 1.0, transform, floor, vector_components.get(name, 1),
                               scale)
            moments = RunningMoments()
            for chunk, where in chunks():
                moments.update(TRANSFORMS[transform].forward(chunk, field, where))
            field.mean, field.std = moments.mean_std(centered=not is_vector)
            if is_vector:
                field.mean = 0.0
            stats.append(field)
        return cls(stats)

    def __getitem__(self, name: str) -> FieldStats:
        if name not in self.fields:
            raise FieldnetError(f"normalizer has no field {name!r}; it knows "
                                f"{sorted(self.fields)}")
        return self.fields[name]

    def forward(self, name: str, x: np.ndarray, where: str = "") -> np.ndarray:
        """Physical values of field `name` -> standardized space, float32.

        Args:
            name: The field.
            x: Its values in its units, any shape (a vector's components last).
            where: Names the data in error messages.

        Returns:
            float32 array of the shape of `x`.

        Raises:
            FieldnetError: On an unknown field, or values its transform cannot take.
        """
        return self[name].forward(x, where)

    def inverse(self, name: str, z: np.ndarray) -> np.ndarray:
        """Standardized values of field `name` -> physical values, float32.

        Args:
            name: The field.
            z: Standardized values, any shape.

        Returns:
            float32 array of the shape of `z`, in the field's units.

        Raises:
            FieldnetError: On an unknown field.
        """
        return self[name].inverse(z)

    def forward_channels(self, names: Sequence[str], x: np.ndarray) -> np.ndarray:
        """Channels-last physical array (..., C) -> standardized, channels in `names` order.

        Args:
            names: The fields of the channels, in order (a vector takes its components).
            x: Physical values, shape `(..., C)`.

        Returns:
            float32 array of shape `(..., C)`.

        Raises:
            FieldnetError: If C does not match the fields, or a field is unknown.
        """
        return self._map_channels(names, x, "forward")

    def inverse_channels(self, names: Sequence[str], z: np.ndarray) -> np.ndarray:
        """Channels-last standardized array (..., C) -> physical, e.g. a model's prediction.

        Args:
            names: The fields of the channels, in order (a vector takes its components).
            z: Standardized values, shape `(..., C)`.

        Returns:
            float32 array of shape `(..., C)`, in the fields' units.

        Raises:
            FieldnetError: If C does not match the fields, or a field is unknown.
        """
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
        """The normalizer as a JSON-ready dict; `from_json` reads it back.

        Returns:
            {"fields": [each field's statistics]}, and "params" when it has any.
        """
        out = {"fields": [asdict(s) for s in self.fields.values()]}
        if self.params:
            out["params"] = [asdict(p) for p in self.params.values()]
        return out

    @classmethod
    def from_json(cls, data: dict) -> Normalizer:
        """The normalizer of a `to_json` dict (also one written before transforms had names).

        Args:
            data: The dict, {"fields": [...], "params": [...]}.

        Returns:
            The normalizer.

        Raises:
            FieldnetError: If it is not a normalizer description.
        """
        try:
            return cls((FieldStats.from_json(s) for s in data["fields"]),
                       (ParamStats(**p) for p in data.get("params", [])))
        except (KeyError, TypeError) as err:
            raise FieldnetError(f"not a normalizer description: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes JSON atomically (`files.write_json`).

        Args:
            path: The JSON file (normalizer.json of a run); its folder must exist.
        """
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        """The normalizer `save` wrote to `path`.

        Args:
            path: The JSON file (normalizer.json of a run).

        Returns:
            The normalizer.

        Raises:
            FieldnetError: If the file is missing, not valid JSON or not a normalizer.
        """
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
