"""Figures of a run, drawn as `matplotlib.figure.Figure` objects (no pyplot state).

- `report`: the field-to-field report (maps, P(k), r(k), PDFs, phase diagram, training).
- `samples`: a generative run's samples (maps, P(k), calibration, per-pixel spread).
- `calibration`: coverage and PIT of samples before and after `eval.calibration`.
- `phases`: the phase study's P(ordered | T) curves and T_c(L) extrapolation.
"""
