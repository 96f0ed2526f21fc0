"""The training data pipeline: splits, random periodic crops, augmentation, batches.

    ds = FieldDataset(config.data)                   # opens, splits, fits the normalizer
    for batch in ds.batches("train", 16, seed=0, start_step=k):   # {"x": ..., "y": ...}
        ...
    test = ds.read("test")                           # whole samples, normalized + physical

Every batch is a pure function of (seed, split, step, process_index): a run resumed at
step k sees exactly the batches an uninterrupted run sees from step k, with no iterator
state to checkpoint. Each process reads only its own slice of each global batch.

Splits are by simulation (`/sim_index`), never by map, shuffled with `split_seed` (kept
apart from the training seed so that every training seed is evaluated on the same test
simulations). A file that holds a single periodic box has one simulation; it is then split
into disjoint slabs along the first spatial axis (train first, then val, then test), and a
crop never crosses a slab boundary along that axis (it still wraps around the periodic
other axes), so no test voxel is ever seen in training. `FieldDataset.grid` is the `Grid` of
one whole sample; whole-sample reads carry the `grid` of the arrays read, which for a slab
is shorter along the first axis and not periodic along it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import ml_collections
import numpy as np
from ml_collections.config_dict import placeholder

from fieldnet import symmetry
from fieldnet.data.loader import GrainBatches, batch_stream
from fieldnet.data.loader import check_settings as check_loader_settings
from fieldnet.data.prefetch import Prefetcher
from fieldnet.data.source import Field, FieldSource, parse_names
from fieldnet.data.transforms import Normalizer, resolve_transforms
from fieldnet.errors import FieldnetError, data_error
from fieldnet.grid import Grid

SPLITS = ("train", "val", "test")
# The training loader by default, and of a config recorded before data.loader existed.
DEFAULT_LOADER = "grain"


def default_config() -> ml_collections.ConfigDict:
    """All data keys with their defaults; experiment configs embed this as `config.data`."""
    c = ml_collections.ConfigDict()
    c.path = ""                      # HDF5 file: fieldnet format, or any file (see below)
    c.input_field = "density"        # name(s), comma-separated: /fields/<name> or a dataset path
    c.target_field = "temperature"
    c.vector_fields = ""             # which of those are vectors, stored as <name>_x, _y, _z
    # Per-field transforms before standardization, "field:transform,..." with transform
    # log10 (every scalar's default), none or asinh (fieldnet.data.transforms); a vector
    # takes none only.
    c.transforms = ""
    c.crop_size = 64                 # cubic training crops (pixels per side)
    # Keys whose default is None are typed placeholders, so that the command line can set
    # them (--config.data.box_size=25).
    c.input_log_floor = placeholder(float)   # None -> the dataset's log_floor attribute
    c.target_log_floor = placeholder(float)
    c.box_size = placeholder(float)  # Mpc/h, every side; None -> the file's box_size attribute
    c.sample_axis = True             # raw HDF5 only: leading sample axis, or one big box
    c.split_fractions = (0.8, 0.1, 0.1)   # train, val, test: of simulations (or of the box)
    c.split_sims = None              # or {"train": [...], "val": [...], "test": [...]} sim ids
    c.split_seed = 0
    c.max_train_sims = placeholder(int)      # train on the first N train simulations only
    # Score on the first N maps of each validation and test simulation only: maps of one
    # box share its parameters and their errors, so for a given cost more boxes at fewer
    # maps each measure a mean (MSE, coverage) more precisely.
    c.eval_maps_per_sim = placeholder(int)
    c.condition_on = ""              # comma-separated /params names given to the model ("": none)
    # Training crops see their standardized parameters plus Gaussian noise of this standard
    # deviation, so that the model cannot key on the few exact parameter vectors of the
    # training simulations (the val/test parameters are never perturbed).
    c.condition_noise = 0.0
    c.augment = True                 # random symmetry-group element per training crop
    c.loader = DEFAULT_LOADER        # training batches from "grain" or "thread" (data.loader)
    c.workers = 0                    # grain worker processes (0: in this process)
    c.prefetch = 2                   # batches computed ahead (per worker, with workers)
    c.stats_max_samples = placeholder(int)   # fit the normalizer on at most this many samples
    return c


@dataclass(frozen=True)
class Region:
    """A sample, or rows lo:hi of its first spatial axis (a slab of a single box)."""

    sample: int
    lo: int
    hi: int
    periodic: bool   # whether the first axis wraps (a whole periodic sample)


def split_simulations(sim_index: np.ndarray, fractions: Sequence[float], seed: int,
                      explicit: dict | None = None,
                      max_train: int | None = None,
                      eval_maps: int | None = None) -> dict[str, np.ndarray]:
    """Sample indices per split; every simulation lands in at most one split.

    `max_train` keeps only the first that many training simulations (in the split's
    order) and leaves validation and test as they are, so runs with growing `max_train`
    train on nested sets and are scored on the same boxes (a data-scaling curve).
    `eval_maps` keeps the first that many samples (in file order) of each validation and
    test simulation, and every training sample.

    Args:
        sim_index: Simulation id of each sample, shape `(N,)`.
        fractions: Fractions of the simulations in train, val and test (3 numbers ≥ 0
            summing to 1); unused with `explicit`.
        seed: Seed of the shuffle of the simulations (`data.split_seed`).
        explicit: Simulation ids per split, `{"train": [...], "val": [...], "test": [...]}`
            (`data.split_sims`), instead of `fractions`.
        max_train: Train on the first this many training simulations only; None: all.
        eval_maps: Samples kept of each validation and test simulation; None: all.

    Returns:
        {split: indices of its samples, int array} for `"train"`, `"val"` and `"test"`.

    Raises:
        FieldnetError: On a simulation listed in two splits or absent from `sim_index`,
            bad `fractions`, too few simulations for them, or `max_train` above the train
            split's size.
    """
    sims = np.unique(sim_index)
    if explicit:
        chosen = {s: np.asarray(explicit.get(s) or [], np.int64) for s in SPLITS}
        flat = np.concatenate(list(chosen.values()))
        if len(np.unique(flat)) != len(flat):
            raise FieldnetError("data.split_sims: a simulation is listed in two splits")
        unknown = np.setdiff1d(flat, sims)
        if unknown.size:
            raise FieldnetError(f"data.split_sims: no simulations {unknown.tolist()} in the file")
    else:
        counts = _split_counts(len(sims), fractions, "simulations")
        order = np.random.default_rng(seed).permutation(sims)
        bounds = np.cumsum([0, *counts])
        chosen = {s: order[bounds[i]:bounds[i + 1]] for i, s in enumerate(SPLITS)}
    if max_train is not None:
        if max_train > len(chosen["train"]):
            raise FieldnetError(f"data.max_train_sims={max_train}, but the train split has only "
                                f"{len(chosen['train'])} simulations")
        chosen["train"] = chosen["train"][:max_train]
    indices = {s: np.flatnonzero(np.isin(sim_index, chosen[s])) for s in SPLITS}
    if eval_maps is not None:
        for s in ("val", "test"):
            taken = Counter()
            keep = []
            for i in indices[s]:   # file order
                taken[sim_index[i]] += 1
                keep.append(taken[sim_index[i]] <= eval_maps)
            indices[s] = indices[s][np.asarray(keep, bool)]
    return indices


def split_box(length: int, fractions: Sequence[float]) -> dict[str, tuple[int, int]]:
    """Disjoint slabs (lo, hi) along the first axis of a single box: train, val, test.

    Args:
        length: Pixels of the box along its first spatial axis.
        fractions: Fractions of those rows in train, val and test (3 numbers ≥ 0 summing
            to 1).

    Returns:
        {split: (lo, hi)}, rows lo:hi of the first axis, for `"train"`, `"val"` and
        `"test"`, in that order along the axis.

    Raises:
        FieldnetError: On bad `fractions` or too few rows for them.
    """
    bounds = np.cumsum([0, *_split_counts(length, fractions, "rows of the box")])
    return {s: (int(bounds[i]), int(bounds[i + 1])) for i, s in enumerate(SPLITS)}


def check_config(c: ml_collections.ConfigDict) -> None:
    """Fails in one line on data values that would fail (or silently misbehave) later.

    Runs before any file is read.

    Args:
        c: The run's `config.data` (keys as `default_config()`).

    Raises:
        FieldnetError: Naming the key, on an unset path, no input or target field, a bad
            transform, crop size, prefetch, loader, worker count, split fractions,
            condition noise, `max_train_sims` or `eval_maps_per_sim`, or a non-positive
            log floor or box size.
    """
    if not str(c.path):
        raise FieldnetError("data.path is not set; name an HDF5 file")
    if not parse_names(c.input_field) or not parse_names(c.target_field):
        raise FieldnetError("data.input_field and data.target_field each need at least one name")
    field_transforms(c)
    if not isinstance(c.crop_size, int) or c.crop_size < 1:
        raise FieldnetError(f"data.crop_size must be a positive integer, got {c.crop_size!r}")
    if not isinstance(c.prefetch, int) or c.prefetch < 0:
        raise FieldnetError(f"data.prefetch must be an integer ≥ 0, got {c.prefetch!r}")
    try:
        check_loader_settings(*_loader_settings(c), where="data.")
    except ValueError as err:
        raise FieldnetError(str(err)) from None
    _check_fractions(c.split_fractions)
    noise = c.get("condition_noise", 0.0)
    if not isinstance(noise, int | float) or not noise >= 0:
        raise FieldnetError(f"data.condition_noise must be a number ≥ 0, got {noise!r}")
    for key in ("max_train_sims", "eval_maps_per_sim"):
        n = c.get(key)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise FieldnetError(f"data.{key} must be a positive integer (or None), got {n!r}")
    for key in ("input_log_floor", "target_log_floor", "box_size"):
        if c[key] is not None and not c[key] > 0:
            raise FieldnetError(f"data.{key} must be positive (or None), got {c[key]!r}")


def field_transforms(c: ml_collections.ConfigDict) -> dict[str, str]:
    """The transform of every input and target field.

    `data.transforms`' choice, else log10 for a scalar and none for a vector.

    Args:
        c: The run's `config.data`.

    Returns:
        {field: transform name} for every input and target field.

    Raises:
        FieldnetError: On a bad choice (`resolve_transforms`).
    """
    return resolve_transforms(c.get("transforms", ""),
                              list(dict.fromkeys(parse_names(c.input_field)
                                                 + parse_names(c.target_field))),
                              parse_names(c.vector_fields))


def _loader_settings(c: ml_collections.ConfigDict) -> tuple[str, int]:
    return c.get("loader", DEFAULT_LOADER), c.get("workers", 0)


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise FieldnetError(f"data.split_fractions must be 3 non-negative numbers summing to 1, "
                            f"got {fractions}")
    return fractions


def _split_counts(total: int, fractions: Sequence[float], what: str) -> list[int]:
    fractions = _check_fractions(fractions)
    val, test = (max(round(f * total), 1 if f > 0 else 0) for f in fractions[1:])
    train = total - val - test
    if fractions[0] > 0 and train < 1:
        raise FieldnetError(f"only {total} {what}: too few for split fractions {fractions}")
    return [train, val, test]


def transform_fields(values: np.ndarray, fields: list[Field], g: symmetry.Element,
                     first_spatial_axis: int = 0) -> np.ndarray:
    """One group element on the channels of `values`.

    Scalar fields move, vector fields also rotate their components.

    Args:
        values: Array, channels last in `fields`' order, spatial axes from
            `first_spatial_axis`.
        fields: The fields of the channels, in order (a vector has `components` channels).
        g: The symmetry-group element.
        first_spatial_axis: 0 for one sample `(*spatial, C)`, 1 for a batch
            `(b, *spatial, C)`.

    Returns:
        C-contiguous array of the shape of `values` (cubic spatial axes keep it).
    """
    parts, start = [], 0
    for f in fields:
        part = values[..., start:start + f.components]
        parts.append(symmetry.apply_to_vector(part, g, first_spatial_axis) if f.is_vector
                     else symmetry.apply(part, g, first_spatial_axis))
        start += f.components
    return np.ascontiguousarray(np.concatenate(parts, axis=-1))


def transform_batch(values: np.ndarray, elements: np.ndarray,
                    fields: list[Field] | None = None) -> np.ndarray:
    """Group element `symmetry.group_elements(d)[elements[i]]` on sample i of a batch.

    As `transform_fields` does. Vectorized over the batch: one transform per distinct
    element (at most 8 in 2D, 48 in 3D), whatever the batch size.

    Args:
        values: Batch of cubic samples, shape `(b, *spatial, C)`.
        elements: Index of each sample's group element, shape `(b,)`.
        fields: The fields of the channels, in order; None: every channel a scalar field.

    Returns:
        Array of shape `(b, *spatial, C)`.
    """
    group = symmetry.group_elements(values.ndim - 2)
    elements = np.asarray(elements)
    out = np.empty_like(values)
    for e in np.unique(elements):
        chosen = elements == e
        out[chosen] = (symmetry.apply(values[chosen], group[e]) if fields is None
                       else transform_fields(values[chosen], fields, group[e], 1))
    return out


def periodic_crops(values: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """Crops of `size` per spatial side of a batch of periodic samples.

    The crop of sample i starts at `starts[i]` and wraps around each axis, as the training
    crops of a file do; with `size` the whole side, a random periodic translation. One
    gather for the whole batch.

    Args:
        values: Batch of periodic samples, shape `(b, *spatial, C)`.
        starts: First pixel of each crop along each spatial axis, shape `(b, d)`.
        size: Pixels of a crop per spatial side.

    Returns:
        Array of shape `(b, *(size,) * d, C)`.
    """
    starts = np.asarray(starts)
    spatial = values.shape[1:-1]
    ndim = len(spatial)
    index = [np.arange(len(values)).reshape(-1, *[1] * ndim)]
    for axis, n in enumerate(spatial):
        shape = [-1] + [size if a == axis else 1 for a in range(ndim)]
        index.append(((starts[:, axis:axis + 1] + np.arange(size)) % n).reshape(shape))
    return values[tuple(index)]


class FieldDataset:
    """Input/target fields of one file, split, normalized, served as crops or whole samples.

    Opening it reads the metadata, splits by simulation (or a single box into slabs) and,
    without a `normalizer`, fits one on the train split. Use it as a context manager, or
    call `close()`, to close the file.

    Args:
        config: The data config, `default_config()` with its keys set: `path` (a fieldnet
            HDF5 file or any HDF5 file), `input_field` and `target_field` (names, or
            dataset paths, comma-separated for several channels), `crop_size`, and the
            optional keys documented there (transforms, log floors, box size, splits,
            augmentation).
        normalizer: Train-split statistics to reuse (as a resumed run does); None fits
            them now.
        process_index: This process's index among `process_count`, for multi-host runs.
        process_count: Number of processes; each gets a disjoint, contiguous slice of
            batch_size // process_count items of every global batch.

    Raises:
        FieldnetError: (a ValueError) If the file, its fields or the config do not fit: a
            missing file or field, no target, a crop larger than the field or than a
            split's slab, an empty split, split fractions that do not sum to 1, a
            normalizer without statistics for a field, or a `process_index` outside
            [0, process_count).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from fieldnet import data
        >>> from fieldnet.data import h5format
        >>> tmp = tempfile.TemporaryDirectory()
        >>> rho = np.random.default_rng(0).lognormal(size=(6, 16, 16)).astype(np.float32)
        >>> path = h5format.write_arrays(
        ...     Path(tmp.name) / "tiny.h5", {"density": rho, "temperature": 1e4 * rho**0.6},
        ...     ndim=2, box_size=25.0, source="example", sim_index=[0, 0, 1, 1, 2, 2],
        ...     units={"density": "mean density", "temperature": "K"})
        >>> config = data.default_config()
        >>> config.path, config.crop_size = str(path), 8
        >>> with data.FieldDataset(config) as ds:   # 3 simulations: one per split
        ...     batch = ds.batch("train", 4, seed=0, step=0)
        ...     test = ds.read("test")
        >>> ds.in_channels, batch["x"].shape, batch["y"].shape
        (1, (4, 8, 8, 1), (4, 8, 8, 1))
        >>> test["x"].shape, len(set(test["sim_index"]))   # both maps of one simulation
        ((2, 16, 16, 1), 1)
        >>> tmp.cleanup()
    """

    def __init__(self, config: ml_collections.ConfigDict, *, normalizer: Normalizer | None = None,
                 process_index: int = 0, process_count: int = 1):
        if not 0 <= process_index < process_count:
            raise FieldnetError(f"process_index {process_index} not in [0, {process_count})")
        check_config(config)
        self.config = config
        self.process_index, self.process_count = process_index, process_count
        self.source = FieldSource(
            config.path, parse_names(config.input_field), parse_names(config.target_field),
            vector_fields=parse_names(config.vector_fields), sample_axis=config.sample_axis,
            box_size=config.box_size, input_log_floor=config.input_log_floor,
            target_log_floor=config.target_log_floor)
        try:
            self.crop_size = int(config.crop_size)
            self.condition_names = parse_names(config.get("condition_on", ""))
            self._condition_columns = self._find_condition_columns()
            self._check_crop()
            self.splits = self._make_splits()
            self._check_window("train")
            self.normalizer = normalizer if normalizer is not None else self.fit_normalizer()
            missing = [f.name for f in self.inputs + self.targets
                       if f.name not in self.normalizer.fields]
            missing += [n for n in self.condition_names if n not in self.normalizer.params]
            if missing:
                raise FieldnetError(f"the normalizer has no statistics for {missing}")
            for name, transform in field_transforms(config).items():
                if self.normalizer[name].transform != transform:
                    raise FieldnetError(f"field {name!r}: the normalizer's transform is "
                                        f"{self.normalizer[name].transform}, data.transforms "
                                        f"asks for {transform}")
            # every sample's standardized parameters, once: crops look them up
            self._conditions = (self.normalizer.forward_params(
                self.condition_names, self.source.params[:, self._condition_columns])
                if self.condition_names else None)
        except BaseException:
            self.close()
            raise
        self._group_size = len(symmetry.group_elements(self.ndim))

    # --- metadata ---------------------------------------------------------------------------

    @property
    def inputs(self) -> list[Field]:
        """The input fields, in channel order."""
        return self.source.inputs

    @property
    def targets(self) -> list[Field]:
        """The target fields, in channel order."""
        return self.source.targets

    @property
    def input_names(self) -> list[str]:
        """The input fields' names, in channel order."""
        return [f.name for f in self.inputs]

    @property
    def target_names(self) -> list[str]:
        """The target fields' names, in channel order."""
        return [f.name for f in self.targets]

    @property
    def in_channels(self) -> int:
        """Channels of the input (a vector field counts its components)."""
        return sum(f.components for f in self.inputs)

    @property
    def out_channels(self) -> int:
        """Channels of the target (a vector field counts its components)."""
        return sum(f.components for f in self.targets)

    @property
    def ndim(self) -> int:
        """Number of spatial axes of the fields, 1, 2 or 3."""
        return self.source.ndim

    @property
    def cond_dim(self) -> int:
        """How many simulation parameters the model is conditioned on (0: none)."""
        return len(self.condition_names)

    def _find_condition_columns(self) -> list[int]:
        if not self.condition_names:
            return []
        known = self.source.param_names
        if self.source.params is None:
            raise data_error(self.source.path, "params", reason="missing, but "
                             f"data.condition_on names {self.condition_names}")
        missing = [n for n in self.condition_names if n not in known]
        if missing:
            raise data_error(self.source.path, "params", reason=f"no parameter(s) {missing} "
                             f"to condition on (data.condition_on); the file has {known}")
        return [known.index(n) for n in self.condition_names]

    def condition(self, sample: int) -> np.ndarray | None:
        """The standardized parameters sample `sample` is conditioned on.

        Args:
            sample: Index of the sample in the file.

        Returns:
            float32 array `(P,)`, or None when data.condition_on names none.
        """
        return None if self._conditions is None else self._conditions[sample]

    def sim_indices(self, split: str) -> np.ndarray:
        """The simulation of each region of `split`, in split order.

        The order of `read(split)`'s maps.

        Args:
            split: One of `SPLITS`.

        Returns:
            int64 array `(regions,)`.
        """
        return np.array([self.source.sim_index[r.sample] for r in self.splits[split]],
                        np.int64)

    def n_sims(self, split: str) -> int:
        """How many simulations `split` holds (a single box's slab counts as one).

        Args:
            split: One of `SPLITS`.

        Returns:
            The number of distinct simulations.
        """
        return len(np.unique(self.sim_indices(split)))

    @property
    def grid(self) -> Grid:
        """The `Grid` of one whole sample of the file (box lengths in Mpc/h)."""
        return self.source.grid

    def region_grid(self, region: Region) -> Grid:
        """The `Grid` of a region's arrays.

        A slab keeps the cell size, spans its rows of the first axis and wraps along it only
        when it is the whole box.

        Args:
            region: A sample, or a slab of a single box.

        Returns:
            The grid, lengths in Mpc/h.
        """
        whole = self.grid
        rows = region.hi - region.lo
        return Grid((rows, *whole.shape[1:]),
                    (whole.spacing[0] * rows, *whole.lengths[1:]),
                    (whole.periodic[0] and region.periodic, *whole.periodic[1:]))

    def describe(self) -> str:
        """One line for logs: file, shape, box, split sizes, fields."""
        sizes = ", ".join(f"{s} {len(r)}" for s, r in self.splits.items())
        unit = "slab" if self.source.single_box else "samples"
        shape = "x".join(map(str, self.source.spatial_shape))
        box = " x ".join(f"{x:g}" for x in self.grid.lengths)
        return (f"{self.source.path}: {self.source.num_samples} samples of {shape} "
                f"({self.ndim}D, box {box} Mpc/h); {unit}: {sizes}; "
                f"inputs {self.input_names} -> targets {self.target_names}")

    # --- splits and normalization -------------------------------------------------------------

    def _make_splits(self) -> dict[str, list[Region]]:
        n0 = self.source.spatial_shape[0]
        if self.source.single_box:
            for key in ("max_train_sims", "eval_maps_per_sim"):
                if self.config.get(key) is not None:
                    raise FieldnetError(f"{self.source.path} is one box, split into slabs: "
                                        f"data.{key} needs a file of many simulations")
            slabs = split_box(n0, self.config.split_fractions)
            return {s: [Region(0, lo, hi, periodic=(hi - lo == n0))] if hi > lo else []
                    for s, (lo, hi) in slabs.items()}
        explicit = self.config.split_sims
        explicit = dict(explicit) if explicit else None
        indices = split_simulations(self.source.sim_index, self.config.split_fractions,
                                    int(self.config.split_seed), explicit,
                                    self.config.get("max_train_sims"),
                                    self.config.get("eval_maps_per_sim"))
        return {s: [Region(int(i), 0, n0, True) for i in idx] for s, idx in indices.items()}

    def fit_normalizer(self) -> Normalizer:
        """Each field's transform (`data.transforms`), with its mean/std (and asinh scale)
        over the train split only, streamed block by block."""
        regions = self.splits["train"]
        limit = self.config.stats_max_samples
        if limit and len(regions) > limit:
            picks = np.linspace(0, len(regions) - 1, int(limit)).round().astype(int)
            regions = [regions[i] for i in picks]

        def blocks(field: Field):
            for r in regions:
                yield from self.source.iter_blocks(field, r.sample, r.lo, r.hi)

        fields = {f.name: f for f in self.inputs + self.targets}
        normalizer = Normalizer.fit({name: partial(blocks, f) for name, f in fields.items()},
                                    floors={name: f.log_floor for name, f in fields.items()},
                                    vector_components={name: f.components for name, f in
                                                       fields.items() if f.is_vector},
                                    transforms=field_transforms(self.config))
        if self.condition_names:
            rows = self.source.params[[r.sample for r in self.splits["train"]]]
            normalizer.params = {p.name: p for p in Normalizer.fit_params(
                self.condition_names, rows[:, self._condition_columns])}
        return normalizer

    # --- crops and batches --------------------------------------------------------------------

    def _check_crop(self) -> None:
        shape = self.source.spatial_shape
        if self.crop_size > min(shape):
            raise data_error(self.source.path, self.inputs[0].datasets[0],
                             reason=f"crop_size {self.crop_size} is larger than the field "
                             f"{'x'.join(map(str, shape))}")

    def _check_window(self, split: str) -> None:
        regions = self.splits[split]
        if not regions:
            raise FieldnetError(f"{self.source.path}: the {split} split is empty "
                                f"(data.split_fractions = {tuple(self.config.split_fractions)})")
        for r in regions:
            if not r.periodic and r.hi - r.lo < self.crop_size:
                raise data_error(self.source.path, self.inputs[0].datasets[0], r.sample,
                                 reason=f"crop_size {self.crop_size} is larger than the "
                                 f"{split} slab (rows {r.lo}:{r.hi} of the first axis)")

    def batch(self, split: str, batch_size: int, seed: int, step: int) -> dict[str, np.ndarray]:
        """This process's slice of global batch `step`.

        {"x": (b, *crop, C_in), "y": ...}, and "cond" (b, P), the standardized parameters,
        when data.condition_on names any.

        Training crops are augmented when data.augment is set; val/test crops never are.

        Args:
            split: One of `SPLITS`.
            batch_size: Global batch size; this process gets batch_size // process_count
                items.
            seed: Seed of the crops and augmentation (≥ 0).
            step: Index of the global batch (≥ 0).

        Returns:
            {"x": float32 `(b, *crop, C_in)`, "y": float32 `(b, *crop, C_out)`} normalized, and
            "cond" `(b, P)` when conditioned.

        Raises:
            FieldnetError: If `batch_size` is not divisible by the process count, `seed` or
                `step` is negative, or the crop does not fit the split.
        """
        if batch_size % self.process_count:
            raise FieldnetError(f"batch_size {batch_size} is not divisible by "
                                f"process_count {self.process_count}")
        if seed < 0 or step < 0:
            raise FieldnetError(f"seed and step must be non-negative, got {seed}, {step}")
        self._check_window(split)
        local = batch_size // self.process_count
        first = self.process_index * local
        items = [self._item(split, seed, step * batch_size + j, step, j)
                 for j in range(first, first + local)]
        x, y, cond, elements = (list(column) for column in zip(*items, strict=True))
        batch = {"x": np.stack(x), "y": np.stack(y)}
        if split == "train" and self.config.augment:
            batch["x"] = transform_batch(batch["x"], np.array(elements), self.inputs)
            batch["y"] = transform_batch(batch["y"], np.array(elements), self.targets)
        if self.condition_names:
            batch["cond"] = np.stack(cond)
        return batch

    def batches(self, split: str, batch_size: int, seed: int, start_step: int = 0,
                num_steps: int | None = None) -> Prefetcher[dict] | GrainBatches[dict]:
        """Batches start_step, start_step + 1, ..., computed ahead by data.loader.

        A background thread, or grain in this process or in data.workers worker processes
        (`fieldnet.data.loader`). Every loader yields the same arrays as `batch`.

        Close it (or use `with`) to stop the thread or the workers.

        Args:
            split: One of `SPLITS`.
            batch_size: Global batch size.
            seed: Seed of the crops and augmentation.
            start_step: First batch yielded.
            num_steps: How many batches; None: endless.

        Returns:
            An iterator over `batch(split, batch_size, seed, step)` for the steps, in order.

        Raises:
            FieldnetError: If the crop does not fit the split.
        """
        self._check_window(split)
        stop = None if num_steps is None else start_step + num_steps
        return batch_stream(partial(FieldDataset.batch, self, split, batch_size, seed),
                            start_step, stop, *_loader_settings(self.config),
                            prefetch=int(self.config.prefetch))

    def _item(self, split: str, seed: int, position: int, step: int,
              slot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """(x, y, cond, the index of its symmetry element) of one batch item; the element
        is drawn for every training crop, and applied to the batch by `batch`."""
        regions = self.splits[split]
        split_id = SPLITS.index(split)
        epoch, offset = divmod(position, len(regions))
        region = regions[_epoch_order(seed, split_id, epoch, len(regions))[offset]]
        rng = np.random.default_rng([seed, split_id, step, slot])
        starts = [int(rng.integers(0, n)) for n in self.source.spatial_shape]
        if not region.periodic:
            starts[0] = int(rng.integers(region.lo, region.hi - self.crop_size + 1))
        y = self._window(self.targets, region.sample, starts, self.crop_size)
        x = self._window(self.inputs, region.sample, starts, self.crop_size)
        element = 0  # the identity
        if split == "train" and self.config.augment:
            element = int(rng.integers(self._group_size))
        cond = self.condition(region.sample)
        noise = float(self.config.get("condition_noise", 0.0))
        if split == "train" and cond is not None and noise > 0:
            cond = (cond + noise * rng.standard_normal(cond.shape)).astype(np.float32)
        return x, y, cond, element

    def _window(self, fields: list[Field], sample: int, starts: list[int],
                size: int) -> np.ndarray:
        sizes = [size] * self.ndim
        return np.concatenate(
            [self.normalizer.forward(f.name, self.source.read_window(f, sample, starts, sizes),
                                     self.source.where(f.datasets[0], sample))
             for f in fields], axis=-1)

    # --- whole samples for evaluation -----------------------------------------------------------

    def iter_samples(self, which: str | int | Sequence[int]) -> Iterator[dict]:
        """Whole samples one at a time (a split name, or file sample indices), no batch axis.

        Each dict: x, y (normalized, (*spatial, C)), x_phys, y_phys (physical units),
        sample_index, sim_index, params (or None), cond (the standardized
        conditioning parameters, or None), grid (the `Grid` of these arrays,
        `region_grid`: a slab's is shorter along axis 0 and not periodic along it), units
        {field: units}.

        Args:
            which: A split name (one of `SPLITS`), a sample index of the file, or a sequence
                of them.

        Yields:
            One dict per sample, as above.
        """
        units = {f.name: f.units for f in self.inputs + self.targets}
        for r in self._regions(which):
            x_phys = np.concatenate([self.source.read_sample(f, r.sample, r.lo, r.hi)
                                     for f in self.inputs], axis=-1)
            y_phys = np.concatenate([self.source.read_sample(f, r.sample, r.lo, r.hi)
                                     for f in self.targets], axis=-1)
            params = self.source.params
            yield {
                "x": self._normalize(x_phys, self.inputs, r.sample),
                "y": self._normalize(y_phys, self.targets, r.sample),
                "x_phys": x_phys, "y_phys": y_phys,
                "sample_index": r.sample, "sim_index": int(self.source.sim_index[r.sample]),
                "params": None if params is None else params[r.sample],
                "cond": self.condition(r.sample),
                "grid": self.region_grid(r), "units": units,
            }

    def read(self, which: str | int | Sequence[int]) -> dict:
        """Like `iter_samples`, stacked along a leading sample axis (mind the memory).

        Args:
            which: A split name (one of `SPLITS`), a sample index of the file, or a sequence
                of them.

        Returns:
            The keys of `iter_samples`, arrays stacked `(N, ...)` ("params" and "cond" None
            when absent), "grid" and "units" those of the first sample.

        Raises:
            FieldnetError: If there is nothing to read for `which`.
        """
        samples = list(self.iter_samples(which))
        if not samples:
            raise FieldnetError(f"{self.source.path}: nothing to read for {which!r}")
        stacked = {k: np.stack([s[k] for s in samples]) for k in
                   ("x", "y", "x_phys", "y_phys", "sample_index", "sim_index")}
        for key in ("params", "cond"):
            values = [s[key] for s in samples]
            stacked[key] = None if values[0] is None else np.stack(values)
        first = samples[0]
        stacked.update({k: first[k] for k in ("grid", "units")})
        return stacked

    def _regions(self, which: str | int | Sequence[int]) -> list[Region]:
        if isinstance(which, str):
            if which not in SPLITS:
                raise FieldnetError(f"unknown split {which!r}; expected one of {SPLITS}")
            return self.splits[which]
        indices = [which] if isinstance(which, int | np.integer) else list(which)
        n, n0 = self.source.num_samples, self.source.spatial_shape[0]
        for i in indices:
            if not 0 <= int(i) < n:
                raise data_error(self.source.path, self.inputs[0].datasets[0], i,
                                 reason=f"sample index out of range (the file has {n})")
        return [Region(int(i), 0, n0, True) for i in indices]

    def _normalize(self, values: np.ndarray, fields: list[Field], sample: int) -> np.ndarray:
        parts, start = [], 0
        for f in fields:
            part = values[..., start:start + f.components]
            parts.append(self.normalizer.forward(f.name, part,
                                                 self.source.where(f.datasets[0], sample)))
            start += f.components
        return np.concatenate(parts, axis=-1)

    def close(self) -> None:
        """Closes the file."""
        self.source.close()

    def __reduce__(self):
        # Pickled (as a grain worker process receives it), a dataset travels as what it was
        # made from and the copy opens the file itself: h5py handles cannot cross processes.
        # The same config, normalizer and process slice make the same splits and batches.
        return _reopen, (self.config, self.normalizer, self.process_index, self.process_count)

    def __enter__(self) -> FieldDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reopen(config: ml_collections.ConfigDict, normalizer: Normalizer, process_index: int,
            process_count: int) -> FieldDataset:
    return FieldDataset(config, normalizer=normalizer, process_index=process_index,
                        process_count=process_count)


@lru_cache(maxsize=8)
def _epoch_order(seed: int, split_id: int, epoch: int, count: int) -> np.ndarray:
    """The shuffled order of a split's regions in one pass (epoch) over it."""
    return np.random.default_rng([seed, split_id, epoch, count]).permutation(count)
