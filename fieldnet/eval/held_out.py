"""Evaluation of a trained field-to-field model on the held-out simulations.

The model is compared everywhere with the best *local* mapping: the conditional mean of
the (log) target in bins of the (log) first input, fitted on the train split
(`fieldnet.eval.baseline`). Errors are measured in the normalized target space (the
standardized log10 of the first target field), where the loss lives; spectra and
correlations of its log10 fluctuations in h/Mpc. Which statistics fill the "test" block
is `config.eval.statistics` (`fieldnet.eval.statistics`).

A generative run (`model.objective = "flow"`) draws `config.eval.n_samples` samples of
every test map (`config.eval.sample_steps` Heun steps, noise from `config.seed`); its
prediction is their mean, so the usual keys compare with a regression run's, and the
"samples" statistic adds how the samples themselves match the truth. Drawing them costs
minutes on a CPU, so the run keeps them (`write_test_samples`, the workdir's
test_samples.h5), and `held_out` evaluates kept samples (`read_test_samples`) again
without drawing them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from flax import nnx

from fieldnet import models
from fieldnet.data import h5format
from fieldnet.data.source import parse_names
from fieldnet.errors import FieldnetError
from fieldnet.eval import sampling, statistics
from fieldnet.eval.baseline import LocalBaseline
from fieldnet.eval.inference import jitted_forward
from fieldnet.grid import Grid


def predict_stack(model: nnx.Module, x: np.ndarray, batch_size: int,
                  cond: np.ndarray | None = None) -> np.ndarray:
    """Model outputs for a stack of whole fields (N, *spatial, C), a batch at a time; `cond`
    (N, P) are the standardized parameters of a conditioned model."""
    forward = jitted_forward(model)
    return np.concatenate([
        np.asarray(forward(x[i:i + batch_size], None if cond is None else cond[i:i + batch_size]))
        for i in range(0, len(x), batch_size)])


def fit_baseline(ds, bins: int) -> LocalBaseline:
    """T(rho) from the train split, in normalized space (first input and target channel)."""
    baseline = LocalBaseline(n_bins=bins)
    return baseline.fit((s["x"][..., 0], s["y"][..., 0]) for s in ds.iter_samples("train"))


@dataclasses.dataclass
class HeldOut:
    """A run's test split as log10 fields `(N, *spatial)` (first input: `log_rho`; first
    target: `true_log_t`), with the model's and the local baseline's predictions, their
    spectra (`metrics.spectral_comparison`) and `summary`, the "test" block of eval.json.
    A generative run's `samples_log_t` are its samples `(N, S, *spatial)` (None otherwise),
    and `pred_log_t` their mean; `samples` are the same samples normalized, of every target
    channel `(N, S, *spatial, C)`, as drawn (what `write_test_samples` keeps)."""

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

    @property
    def box_size(self) -> float:
        """The box side [Mpc/h] (the first axis's, for the figures' extents)."""
        return self.grid.lengths[0]


def sample_test_maps(model: nnx.Module, test: dict, config) -> np.ndarray:
    """`config.eval.n_samples` samples `(N, S, *spatial, C)` of each test map (normalized),
    map i's noise drawn as `sampling.sample_noise(config.seed, i, ...)`."""
    x, e = test["x"], config.eval
    shape = (*x.shape[1:-1], model.out_channels)
    noise = np.stack([sampling.sample_noise(config.seed, i, shape, e.n_samples)
                      for i in range(len(x))])
    return sampling.sample_stack(model, x, noise, steps=e.sample_steps, cond=test["cond"],
                                 batch_size=e.batch_size, progress=config.train.progress)


def check_samples(samples, test: dict) -> np.ndarray:
    """Given samples of the test split `test` (`ds.read("test")`), checked to be
    (N, S, *spatial, C) for its N maps and C target channels, as float32."""
    samples, y = np.asarray(samples, np.float32), test["y"]
    if samples.ndim != y.ndim + 1 or samples.shape[:1] + samples.shape[2:] != y.shape \
            or samples.shape[1] < 1:
        raise FieldnetError(f"samples must be (N, S, *spatial, C) = ({y.shape[0]}, S, "
                            f"{', '.join(map(str, y.shape[1:]))}) for the test split, got "
                            f"{samples.shape}")
    return samples


def held_out(model: nnx.Module, ds, config, samples: np.ndarray | None = None) -> HeldOut:
    """Predictions of `model` and of the local baseline on the test split, and their
    statistics (`config.eval.statistics` beside the required ones; for a generative run
    also "samples"). A generative run's `samples` (N, S, *spatial, C), normalized (say
    `read_test_samples` of its test_samples.h5), are evaluated instead of drawing new ones;
    a regression run takes none."""
    test = ds.read("test")
    x, y = test["x"], test["y"]
    names = parse_names(config.eval.get("statistics", ""))
    if models.objective_of(config.model) == "flow":
        samples = (sample_test_maps(model, test, config) if samples is None
                   else check_samples(samples, test))
        pred = samples.mean(axis=1)
        names.append("samples")
    elif samples is not None:
        raise FieldnetError("samples given, but the run is a regression run "
                            "(model.objective='regression')")
    else:
        pred = predict_stack(model, x, config.eval.batch_size, test["cond"])
    base = fit_baseline(ds, config.eval.baseline_bins).predict(x[..., 0])[..., None]
    to_log = ds.normalizer[ds.target_names[0]].unstandardize
    true_log, pred_log, base_log = (to_log(a[..., 0]) for a in (y, pred, base))
    samples_norm = None if samples is None else samples[..., 0]
    samples_log = None if samples is None else to_log(samples_norm)
    grid = Grid.box(true_log.shape[1:], ds.box_size)
    comparison = statistics.Comparison(y[..., 0], pred[..., 0], base[..., 0], true_log,
                                       pred_log, base_log, grid, test["sim_index"],
                                       samples_norm, samples_log)
    summary = statistics.evaluate(comparison, names)
    density = ds.input_names[0]
    return HeldOut(ds.normalizer[density].unstandardize(x[..., 0]), true_log, pred_log, base_log,
                   test["sim_index"], comparison.spec_model, comparison.spec_baseline, summary,
                   grid, test["units"][density], samples_log, samples)


def write_test_samples(path: str | os.PathLike, h: HeldOut, ds, config) -> Path:
    """Keeps a generative run's test samples `h.samples` as a fieldnet-format file
    (atomically; `h5format.add_samples`): samples/<target> (N, S, *spatial) with their
    mean/<target> and std/<target>, in the targets' physical units, and /sim_index of the
    test maps. `read_test_samples` gives them back to `held_out`."""
    if h.samples is None:
        raise FieldnetError("write_test_samples needs a generative run's held-out samples")
    n, n_samples, *spatial = h.samples.shape[:-1]
    e = config.eval
    with h5format.create(path, ndim=len(spatial), box_size=ds.box_size,
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
    """The samples of `write_test_samples`'s file, normalized with `ds`'s normalizer as
    drawn (N, S, *spatial, C), for `held_out(..., samples=)`; a file of other maps than
    `ds`'s test split is a one-line `FieldnetError`."""
    physical, sim_index = h5format.read_samples(path, ds.target_names)
    test_sims = ds.sim_indices("test")
    if not np.array_equal(sim_index, test_sims):
        raise FieldnetError(f"{path}: {len(sim_index)} maps of simulations "
                            f"{sorted(set(sim_index.tolist()))}, not the test split's "
                            f"{len(test_sims)} maps of {sorted(set(test_sims.tolist()))} in "
                            "order")
    return ds.normalizer.forward_channels(ds.target_names, physical)
