"""A run's dataset as the run saw it, and which of its maps a notebook reads and shows."""

from __future__ import annotations

import numpy as np

from notebooks.lib.runs import ROOT


def open_run_dataset(workdir):
    """The run's dataset, with the normalizer the run saved (never refitted); a relative
    data path is taken in the repository root, as the run's command took it
    (`fieldnet.inference.open_dataset`)."""
    from fieldnet.inference import open_dataset

    return open_dataset(workdir, data_root=ROOT)


def training_maps(ds, max_samples: int = 64) -> dict:
    """Up to `max_samples` training maps spread over the train split (`ds.read`), so that
    the overview of a large dataset fits in memory."""
    regions = ds.splits["train"]
    if ds.source.single_box or len(regions) <= max_samples:
        return ds.read("train")
    picks = np.linspace(0, len(regions) - 1, max_samples).round().astype(int)
    return ds.read([regions[i].sample for i in np.unique(picks)])


def log_fields(ds, samples: dict) -> tuple[np.ndarray, np.ndarray]:
    """log10 rho and log10 T stacks (first input / target channel) of `ds.read` samples,
    with the run's log floors."""
    log_rho = ds.normalizer[ds.input_names[0]].unstandardize(samples["x"][..., 0])
    log_t = ds.normalizer[ds.target_names[0]].unstandardize(samples["y"][..., 0])
    return log_rho, log_t


def pick_by_simulation(sim_index: np.ndarray, n: int) -> np.ndarray:
    """Up to n sample positions, one per simulation first (then the rest, in order)."""
    sim_index = np.asarray(sim_index)
    _, first = np.unique(sim_index, return_index=True)
    first = np.sort(first)
    rest = np.setdiff1d(np.arange(len(sim_index)), first)
    return np.concatenate([first, rest])[:n]
