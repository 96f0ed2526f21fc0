"""The evaluation keys of a run's config, with their defaults: experiment configs embed
`default_config()` as `config.eval`, as they embed `fieldnet.data`'s and `fieldnet.train`'s.
"""

from __future__ import annotations

import ml_collections

from fieldnet.errors import FieldnetError
from fieldnet.eval.calibration import METHOD, check_method
from fieldnet.eval.statistics import selected


def default_config() -> ml_collections.ConfigDict:
    """All evaluation keys with their defaults."""
    c = ml_collections.ConfigDict()
    c.baseline_bins = 40           # bins of the first input for the local baseline
    c.n_maps = 3                   # held-out samples shown in figures/maps.png
    c.batch_size = 8
    # Registered statistics (fieldnet.eval.statistics) beside the required pixel and
    # spectral ones; "pdf" adds the Wasserstein-1 distance of the one-point PDFs.
    c.statistics = "pdf"
    # Read by generative runs only (model.objective = "flow"): samples drawn of every test
    # map, each 2 * sample_steps network evaluations. Coverage and CRPS are unbiased for any
    # number (fieldnet.eval.metrics), so 16 keep the whole test split affordable.
    c.n_samples = 16
    c.sample_steps = 20            # Heun steps from noise (t = 0) to a sample (t = 1)
    # Validation maps (spread over the validation boxes) whose n_samples samples fit the
    # spread of the samples (fieldnet.eval.calibration), saved as calibration.json and
    # applied by predict and Run.sample; 0 (the default): the run is not calibrated. On the
    # default data the fit moves well-calibrated samples away from nominal (8 validation
    # boxes; docs/concepts/calibration.md), so it is a choice per config.
    c.calibration_maps = 0
    # "spread" (widen the samples about their mean) or "offset" (move each sample by a
    # constant over the map, which keeps the samples' power spectrum at k > 0)
    c.calibration_method = METHOD
    return c


def check_config(c: ml_collections.ConfigDict) -> None:
    """Fails at start, in one line naming the key, on values evaluation could not use.

    Args:
        c: The run's `config.eval` (keys as `default_config()`).

    Raises:
        FieldnetError: a batch size or bin count that is not a positive integer, a negative
            `n_maps` or `calibration_maps`, an unknown statistic or calibration method.
    """
    for key in ("batch_size", "baseline_bins"):
        if isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] < 1:
            raise FieldnetError(f"eval.{key} must be a positive integer, got {c[key]!r}")
    for key in ("n_maps", "calibration_maps"):
        value = c.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FieldnetError(f"eval.{key} must be an integer ≥ 0, got {value!r}")
    selected(c.get("statistics", ""))
    check_method(c.get("calibration_method", METHOD), "eval.calibration_method")
