"""Evaluation of a trained field-to-field model on the held-out simulations.

The model is compared everywhere with the best *local* mapping: the conditional mean of
the (log) target in bins of the (log) first input, fitted on the train split
(`fieldnet.eval.baseline`). Errors are measured in the normalized target space (the
standardized transform of the target field: log10 unless `data.transforms` says otherwise),
where the loss lives; spectra and correlations of its fluctuations in that transform's space,
in h/Mpc. Which statistics fill the "test" block is `config.eval.statistics`
(`fieldnet.eval.statistics`).

Every target channel is scored alike, against a local baseline fitted on the first input for
that channel: eval.json's `test.fields` holds one block per target (a vector target's
components as `<name>_x`, `_y`, `_z`), and the top-level keys of `test` are the first
target's.

What the model's prediction is comes from the run's objective (`fieldnet.objectives`): a
regression run predicts each test map (`predict_stack`); a generative run draws samples of
each and predicts their mean, so the usual keys compare with a regression run's, and adds
statistics of the samples themselves. `score` takes the prediction (and samples) and
computes the rest, the same for every objective.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flax import nnx

from fieldnet.data import h5format
from fieldnet.data.source import parse_names
from fieldnet.errors import FieldnetError
from fieldnet.eval import statistics
from fieldnet.eval.baseline import LocalBaseline
from fieldnet.eval.inference import jitted_forward
from fieldnet.grid import Grid


def predict_stack(model: nnx.Module, x: np.ndarray, batch_size: int,
                  cond: np.ndarray | None = None) -> np.ndarray:
    """Model outputs for a stack of whole fields, a batch at a time.

    Args:
        model: The field model, normalized fields to normalized fields.
        x: Normalized input fields, shape `(N, *spatial, C_in)`.
        batch_size: Fields per forward pass.
        cond: Standardized parameters of a conditioned model, shape `(N, P)`; None for an
            unconditioned one.

    Returns:
        Normalized outputs, shape `(N, *spatial, C_out)`.
    """
    forward = jitted_forward(model)
    return np.concatenate([
        np.asarray(forward(x[i:i + batch_size], None if cond is None else cond[i:i + batch_size]))
        for i in range(0, len(x), batch_size)])


def fit_baseline(ds, bins: int, channel: int = 0) -> LocalBaseline:
    """T(rho) from the train split, in normalized space.

    The local mapping of target channel `channel` on the first input channel.

    Args:
        ds: The run's `FieldDataset`.
        bins: Bins of the first input channel.
        channel: The target channel.

    Returns:
        The fitted baseline.
    """
    return fit_baselines(ds, bins, [channel])[0]


def fit_baselines(ds, bins: int, channels: Sequence[int]) -> list[LocalBaseline]:
    """`fit_baseline` of each target channel in `channels`, in one pass over the train split.

    Args:
        ds: The run's `FieldDataset`.
        bins: Bins of the first input channel.
        channels: The target channels.

    Returns:
        One fitted baseline per channel, in `channels` order.
    """
    baselines = [LocalBaseline(n_bins=bins) for _ in channels]
    for sample in ds.iter_samples("train"):
        for baseline, c in zip(baselines, channels, strict=True):
            baseline.partial_fit(sample["x"][..., 0], sample["y"][..., c])
    return [baseline.finalize() for baseline in baselines]


def scored_targets(ds) -> list[tuple[str, str, int]]:
    """Every target channel, in channel order, with its name in eval.json.

    A scalar target goes by its name, a vector target's components by `<name>_x`, ...

    Args:
        ds: The run's `FieldDataset`.

    Returns:
        (name in eval.json, target field, channel) of every target channel.
    """
    out, channel = [], 0
    for name in ds.target_names:
        width = ds.normalizer[name].components
        for j in range(width):
            out.append((name if width == 1 else f"{name}_{'xyz'[j]}", name, channel))
            channel += 1
    return out


@dataclasses.dataclass
class HeldOut:
    """A run's test split as log10 fields `(N, *spatial)` (first input: `log_rho`; first
    target: `true_log_t`), with the model's and the local baseline's predictions, their
    spectra (`metrics.spectral_comparison`) and `summary`, the "test" block of eval.json.
    A generative run's `samples_log_t` are its samples `(N, S, *spatial)` (None otherwise),
    and `pred_log_t` their mean; `samples` are the same samples normalized, of every target
    channel `(N, S, *spatial, C)`, as drawn (what `write_test_samples` keeps). `targets`
    holds every target channel's `statistics.Comparison` by its eval.json name
    (`scored_targets`); the first is the one above. `calibrations` holds a generative run's
    calibration of each target channel (`fieldnet.eval.calibration`), by the same names, or
    None."""

    log_rho: np.ndarray
    true_log_t: np.ndarray
    pred_log_t: np.ndarray
    baseline_log_t: np.ndarray
    sim_index: np.ndarray
    spec_model: dict
    spec_baseline: dict
    summary: dict
    grid: Grid
    density_units: str
    samples_log_t: np.ndarray | None = None
    samples: np.ndarray | None = None
    targets: dict[str, statistics.Comparison] = dataclasses.field(default_factory=dict)
    calibrations: dict | None = None


def check_samples(samples, test: dict) -> np.ndarray:
    """Samples of the test split, checked to fit its maps and target channels.

    Args:
        samples: Samples, expected shape `(N, S, *spatial, C)` for the N maps and C target
            channels of `test`, S ≥ 1.
        test: The test split, `ds.read("test")`.

    Returns:
        The samples as float32 `(N, S, *spatial, C)`.

    Raises:
        FieldnetError: If the samples have another shape.
    """
    samples, y = np.asarray(samples, np.float32), test["y"]
    if samples.ndim != y.ndim + 1 or samples.shape[:1] + samples.shape[2:] != y.shape \
            or samples.shape[1] < 1:
        raise FieldnetError(f"samples must be (N, S, *spatial, C) = ({y.shape[0]}, S, "
                            f"{', '.join(map(str, y.shape[1:]))}) for the test split, got "
                            f"{samples.shape}")
    return samples


def score(ds, config, test: dict, pred: np.ndarray, samples: np.ndarray | None = None,
          extra_statistics: Sequence[str] = ()) -> HeldOut:
    """A prediction of the test split and the local baseline's, and their statistics
    (`config.eval.statistics` beside the required ones, then `extra_statistics`).

    Args:
        ds: The run's dataset.
        config: The run's config (`eval.statistics`, `eval.baseline_bins` are read).
        test: The test split, `ds.read("test")`.
        pred: The prediction (N, *spatial, C), normalized.
        samples: A generative run's samples (N, S, *spatial, C), normalized, whose mean
            `pred` is; None otherwise.
        extra_statistics: Registered statistics that the objective adds ("samples").

    Returns:
        The `HeldOut` of the test split.
    """
    x, y = test["x"], test["y"]
    names = parse_names(config.eval.get("statistics", "")) + list(extra_statistics)
    targets = scored_targets(ds)
    baselines = fit_baselines(ds, config.eval.baseline_bins, [c for _, _, c in targets])
    grid = test["grid"]
    comparisons, blocks = {}, {}
    for (label, name, c), baseline in zip(targets, baselines, strict=True):
        to_space = ds.normalizer[name].unstandardize
        base = baseline.predict(x[..., 0])
        samples_c = None if samples is None else samples[..., c]
        comparisons[label] = statistics.Comparison(
            y[..., c], pred[..., c], base, to_space(y[..., c]), to_space(pred[..., c]),
            to_space(base), grid, test["sim_index"], samples_c,
            None if samples_c is None else to_space(samples_c))
        blocks[label] = statistics.evaluate(comparisons[label], names)
    first = next(iter(comparisons))
    summary = {**blocks[first], "fields": blocks}
    c0 = comparisons[first]
    density = ds.input_names[0]
    return HeldOut(ds.normalizer[density].unstandardize(x[..., 0]), c0.true_log, c0.pred_log,
                   c0.baseline_log, test["sim_index"], c0.spec_model, c0.spec_baseline, summary,
                   grid, test["units"][density], c0.samples_log, samples, comparisons)


def write_test_samples(path: str | os.PathLike, h: HeldOut, ds, config) -> Path:
    """Keeps a generative run's test samples `h.samples` as a fieldnet-format file.

    Written atomically (`h5format.add_samples`): samples/<target> (N, S, *spatial) with
    their mean/<target> and std/<target>, in the targets' physical units, and /sim_index of
    the test maps. `read_test_samples` gives them back to `score`.

    Args:
        path: The HDF5 file to write (replaced if it exists).
        h: The held-out evaluation, with its samples.
        ds: The run's `FieldDataset` (its target fields and normalizer).
        config: The run's config (`eval.sample_steps` and `seed` are recorded).

    Returns:
        The path written.

    Raises:
        FieldnetError: If `h` has no samples (not a generative run).
    """
    if h.samples is None:
        raise FieldnetError("write_test_samples needs a generative run's held-out samples")
    n, n_samples, *spatial = h.samples.shape[:-1]
    e = config.eval
    with h5format.create(path, ndim=len(spatial), box_size=h.grid.lengths,
                         source="fieldnet.eval.held_out", overwrite=True) as out:
        out.attrs.update(sample_steps=e.sample_steps, seed=config.seed)
        write = h5format.add_samples(
            out, ds.target_names, [f.units for f in ds.targets], n, n_samples, spatial,
            origin=f"of the test maps, drawn in evaluation ({e.sample_steps} Heun steps, "
                   f"seed {config.seed})")
        for i, drawn in enumerate(h.samples):
            write(i, ds.normalizer.inverse_channels(ds.target_names, drawn))
        h5format.add_index(out, h.sim_index)
    return Path(path)


def read_test_samples(path: str | os.PathLike, ds) -> np.ndarray:
    """The samples of `write_test_samples`'s file, normalized with `ds`'s normalizer as drawn.

    For `score(..., samples=)`.

    Args:
        path: The HDF5 file `write_test_samples` wrote.
        ds: The run's `FieldDataset`.

    Returns:
        The normalized samples, shape `(N, S, *spatial, C)`.

    Raises:
        FileNotFoundError: If there is no such file.
        FieldnetError: If the file holds other maps than `ds`'s test split, or is not a
            readable samples file.
    """
    physical, sim_index = h5format.read_samples(path, ds.target_names)
    test_sims = ds.sim_indices("test")
    if not np.array_equal(sim_index, test_sims):
        raise FieldnetError(f"{path}: {len(sim_index)} maps of simulations "
                            f"{sorted(set(sim_index.tolist()))}, not the test split's "
                            f"{len(test_sims)} maps of {sorted(set(test_sims.tolist()))} in "
                            "order")
    return ds.normalizer.forward_channels(ds.target_names, physical)
