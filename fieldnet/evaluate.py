"""Evaluation of a trained field-to-field model on the held-out simulations.

The model is compared everywhere with the best *local* mapping: the conditional mean of
log10 T in bins of log10 rho, fitted on the train split (`fieldnet.baseline`). Errors are
measured in the normalized target space (standardized log10 T), where the loss lives;
spectra and correlations of log10 T fluctuations in h/Mpc.
"""

from __future__ import annotations

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


def evaluate_run(model: nnx.Module, ds, config, workdir: str | Path, *, train_steps: int,
                 checkpoint_step: int | None = None) -> dict:
    """Writes eval.json and figures/ into the workdir and returns eval.json's content."""
    from fieldnet.experiment import write_json

    workdir = Path(workdir)
    test = ds.read("test")
    x, y = test["x"], test["y"]
    pred = predict_stack(model, x, config.eval.batch_size)
    baseline = fit_baseline(ds, config.eval.baseline_bins)
    base = baseline.predict(x[..., 0])[..., None]
    target = ds.target_names[0]
    to_log = ds.normalizer[target].unstandardize
    true_log, pred_log, base_log = (to_log(a[..., 0]) for a in (y, pred, base))
    spec_model = metrics.spectral_comparison(pred_log, true_log, ds.box_size)
    spec_base = metrics.spectral_comparison(base_log, true_log, ds.box_size)
    summary = metrics.summary(pred[..., 0], y[..., 0], pred_log, true_log, base[..., 0], base_log,
                              ds.box_size, spec_model=spec_model, spec_baseline=spec_base)
    result = {"test": summary, "n_test": int(len(x)), "train_steps": int(train_steps),
              "checkpoint_step": checkpoint_step}
    write_json(workdir / "eval.json", result)
    density = ds.input_names[0]
    report.write_all(workdir / "figures", log_rho=ds.normalizer[density].unstandardize(x[..., 0]),
                     true_log_t=true_log, pred_log_t=pred_log, baseline_log_t=base_log,
                     spec_model=spec_model, spec_baseline=spec_base,
                     metrics_jsonl=workdir / "metrics.jsonl", baseline_mse=summary["baseline_mse"],
                     density_units=test["units"][density], box_size=ds.box_size)
    return result
