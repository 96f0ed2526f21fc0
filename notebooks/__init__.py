"""Notebooks that reproduce every figure (jupytext percent-format sources), `make_figures`,
which executes them all, and `lib`, the code they share."""
