"""Figures of a run, drawn as `matplotlib.figure.Figure` objects (no pyplot state).

- `report`: the field-to-field report (maps, P(k), r(k), PDFs, phase diagram, training).
- `phases`: the phase study's P(ordered | T) curves and T_c(L) extrapolation.
"""
