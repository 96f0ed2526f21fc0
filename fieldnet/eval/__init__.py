"""Evaluation: spectra, metrics, the statistics registry, the local baseline, held-out
evaluation, tiled inference and phase-transition analysis.

- `config`: the evaluation keys of a run's config (`config.eval`) and their check.
- `spectra`: power spectra, cross spectra and r(k) of periodic fields on a `Grid`.
- `metrics`: pixel and spectral comparisons of predicted with true stacks.
- `statistics`: the registry of statistics that `config.eval.statistics` selects.
- `baseline`: the best local mapping T(rho), fitted on the train split.
- `held_out`: a model's and the baseline's predictions of a test split, and their metrics.
- `inference`: exact full-field prediction by periodic tiling.
- `sampling`: samples of a flow-matching run (Heun ODE solver, whole fields or tiled).
- `calibration`: a spread factor for a flow run's samples, fitted on validation maps.
- `phases`: P(ordered | T) curves, their crossings and the finite-size extrapolation.
"""
