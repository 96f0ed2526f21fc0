"""Notebooks that reproduce every figure (jupytext percent-format sources) and
`make_figures`, which executes them all."""
