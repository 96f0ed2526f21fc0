"""Evaluation of a trained field-to-field model on the held-out simulations.

The model is compared everywhere with the best *local* mapping: the conditional mean of
log10 T in bins of log10 rho, fitted on the train split (`fieldnet.baseline`). Errors are
measured in the normalized target space (standardized log10 T), where the loss lives;
spectra and correlations of log10 T fluctuations in h/Mpc.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from flax import nnx

from fieldnet import metrics, report
from fieldnet.baseline import LocalBaseline
from fieldnet.inference import jitted_forward


def predict_stack(model: nnx.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Model outputs for a stack of whole fields (N, *spatial, C), a batch at a time."""
    forward = jitted_forward(model)
    return np.concatenate([np.asarray(forward(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def fit_baseline(ds, bins: int) -> LocalBaseline:
    """T(rho) from the train split, in normalized space (first input and target channel)."""
    baseline = LocalBaseline(n_bins=bins)
    return baseline.fit((s["x"][..., 0], s["y"][..., 0]) for s in ds.iter_samples("train"))


@dataclasses.dataclass
class HeldOut:
    """A run's test split as log10 fields `(N, *spatial)`, with the model's and the local
    baseline's predictions, their spectra (`metrics.spectral_comparison`) and `summary`,
    the "test" block of eval.json."""

    log_rho: np.ndarray
    true_log_t: np.ndarray
    pred_log_t: np.ndarray
    baseline_log_t: np.ndarray
    sim_index: np.ndarray
    spec_model: dict
    spec_baseline: dict
    summary: dict
    box_size: float
    density_units: str


def held_out(model: nnx.Module, ds, config) -> HeldOut:
    """Predictions of `model` and of the local baseline on the test split, and their metrics."""
    test = ds.read("test")
    x, y = test["x"], test["y"]
    pred = predict_stack(model, x, config.eval.batch_size)
    base = fit_baseline(ds, config.eval.baseline_bins).predict(x[..., 0])[..., None]
    to_log = ds.normalizer[ds.target_names[0]].unstandardize
    true_log, pred_log, base_log = (to_log(a[..., 0]) for a in (y, pred, base))
    spec_model = metrics.spectral_comparison(pred_log, true_log, ds.box_size)
    spec_base = metrics.spectral_comparison(base_log, true_log, ds.box_size)
    summary = metrics.summary(pred[..., 0], y[..., 0], pred_log, true_log, base[..., 0], base_log,
                              ds.box_size, spec_model=spec_model, spec_baseline=spec_base)
    density = ds.input_names[0]
    return HeldOut(ds.normalizer[density].unstandardize(x[..., 0]), true_log, pred_log, base_log,
                   test["sim_index"], spec_model, spec_base, summary, ds.box_size,
                   test["units"][density])


def evaluate_run(model: nnx.Module, ds, config, workdir: str | Path, *, train_steps: int,
                 checkpoint_step: int | None = None) -> dict:
    """Writes eval.json and figures/ into the workdir and returns eval.json's content."""
    from fieldnet.experiment import write_json

    workdir = Path(workdir)
    h = held_out(model, ds, config)
    result = {"test": h.summary, "n_test": int(len(h.log_rho)), "train_steps": int(train_steps),
              "checkpoint_step": checkpoint_step}
    write_json(workdir / "eval.json", result)
    report.write_all(workdir / "figures", log_rho=h.log_rho, true_log_t=h.true_log_t,
                     pred_log_t=h.pred_log_t, baseline_log_t=h.baseline_log_t,
                     spec_model=h.spec_model, spec_baseline=h.spec_baseline,
                     metrics_jsonl=workdir / "metrics.jsonl",
                     baseline_mse=h.summary["baseline_mse"], density_units=h.density_units,
                     box_size=h.box_size)
    return result
