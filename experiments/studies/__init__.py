"""The studies, as functions `train_and_evaluate(config, workdir) -> eval.json's content`
that the command lines in `experiments/` run and that notebooks and tests call directly.

- `density_to_temp`: matter density -> gas temperature with a U-Net.
- `ising_phases`: ordered vs disordered 2D Ising configurations, and T_c.
- `sweep`: one study under several config overrides, tabulated.
"""
