"""What the notebooks need beyond `fieldnet.figures`, one concern a module:

- `runs`: the checkout the notebooks belong to, and the run each one shows (given, or made
  and reused under runs/notebooks/);
- `samples`: a run's dataset with its saved normalizer, and which of its maps to show;
- `recompute`: a density run's held-out predictions rebuilt from its best checkpoint (a
  flow run's from the test samples it kept), their check against its eval.json, and that
  two runs show the same test maps;
- `output`: figures written as PNG and PDF with the numbers they show in their metadata;
- `data_figures`, `sweep_figures`, `symmetry_figures`: the figures the report does not draw
  (training maps, metrics against each varied setting, equivariance errors);
- `equivariance`: the errors those symmetry figures show;
- `ising_results`: an Ising run's eval.json read back as `fieldnet.eval.phases` results.

Figures are `matplotlib.figure.Figure` objects (no pyplot), as in `fieldnet.figures`.
"""
