r"""How much of a density -> temperature model's test error any model of the family shares:
trained runs of one test split, compared as an ensemble, averaged over the symmetry group,
and (a conditioned run) averaged over the parameters of its training simulations.

    S=runs/sweep
    python -m benchmarks.error_budget --conditioned $S/conditioned \
        --runs $S/baseline,$S/width_24,$S/dropout_0.1,$S/weight_decay_0.05,$S/depth_2

A run's relative data.path is taken in the working directory (run this from the repository
root, as the runs' commands ran). Prints one JSON object; every number is a test MSE of
log10 T over the local baseline's, both in dex² (so runs with different normalizers
compare), on the runs' common test maps:

- `runs`: each run's own prediction (its eval.json's ratio, to rounding);
- `ensemble`: the mean prediction of the first 1, 2, ... runs. If it barely falls below
  the single runs', the runs agree on one function and their error is not the variance of
  training (seed, width, regularization) but shared by them;
- `group_averaged`: each run's prediction averaged over the d!·2^d axis permutations and
  reflections of the periodic grid (input transformed, output transformed back), which
  makes any model exactly equivariant;
- `marginalized`: the conditioned run's prediction averaged over the standardized
  parameters of its training simulations. The parameters are drawn independently of the
  density, so this is the unconditioned prediction that the conditioned run's knowledge
  implies: where it lands beside the unconditioned runs shows whether they already use
  all that the conditioned run knows about T given the density alone.
"""

from __future__ import annotations

import json

import numpy as np

from fieldnet import cli, symmetry
from fieldnet.data.dataset import transform_fields
from fieldnet.errors import FieldnetError
from fieldnet.eval import held_out
from fieldnet.inference import open_run


def group_averaged(predict, x: np.ndarray, ds) -> np.ndarray:
    """The mean over the grid's symmetry group of g⁻¹·predict(g·x) for a stack x
    (N, *spatial, C) of the dataset's inputs; each map's channels transform as its fields
    do (vector fields rotate their components)."""
    return np.mean([transform_fields(predict(transform_fields(x, ds.inputs, g, 1)),
                                     ds.targets, symmetry.inverse(g), 1)
                    for g in symmetry.group_elements(ds.ndim)], axis=0)


class Run:
    """A trained run's model and test split: `log_t(pred)` turns its normalized outputs into
    log10 T; `true`, `baseline`: log10 T of the truth and of the local baseline."""

    def __init__(self, workdir, batch: int):
        run = open_run(workdir)
        if run.objective.generative:
            raise FieldnetError(f"{workdir}: a {run.objective.name} run; give regression runs")
        self.model, config = run.model, run.config
        with run.dataset() as ds:
            self.ds = ds
            test = ds.read("test")
            self.x, self.cond, self.sim_index = test["x"], test["cond"], test["sim_index"]
            to_log = ds.normalizer[ds.target_names[0]].unstandardize
            self.log_t = lambda a: to_log(a[..., 0])
            self.true = self.log_t(test["y"])
            base = held_out.fit_baseline(ds, config.eval.baseline_bins).predict(self.x[..., 0])
            self.baseline = to_log(base)
            self.train_cond = (None if ds.cond_dim == 0 else np.unique(
                np.stack([ds.condition(r.sample) for r in ds.splits["train"]]), axis=0))
        self.batch = batch

    def predict(self, x: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        return held_out.predict_stack(self.model, x, self.batch,
                                      self.cond if cond is None else cond)

    def ratio(self, pred_log_t: np.ndarray) -> float:
        return float(np.mean((pred_log_t - self.true) ** 2)
                     / np.mean((self.baseline - self.true) ** 2))


def budget(run_dirs: list[str], conditioned: str | None = None, batch: int = 16) -> dict:
    runs = [Run(d, batch) for d in run_dirs]
    if not runs:
        raise FieldnetError("--runs names no run")
    first = runs[0]
    for name, r in zip(run_dirs[1:], runs[1:], strict=True):
        if r.true.shape != first.true.shape or not np.allclose(r.true, first.true, atol=1e-4):
            raise FieldnetError(f"{name}: not the test maps of {run_dirs[0]}")
    preds = [r.log_t(r.predict(r.x)) for r in runs]
    out = {"runs": dict(zip(run_dirs, map(first.ratio, preds), strict=True)),
           "ensemble": [first.ratio(np.mean(preds[:k], axis=0))
                        for k in range(1, len(preds) + 1)],
           "group_averaged": {d: r.ratio(r.log_t(group_averaged(r.predict, r.x, r.ds)))
                              for d, r in zip(run_dirs, runs, strict=True)},
           "n_test_maps": int(len(first.x)),
           "n_test_boxes": int(len(np.unique(first.sim_index)))}
    if conditioned:
        c = Run(conditioned, batch)
        if c.train_cond is None:
            raise FieldnetError(f"{conditioned}: not conditioned (data.condition_on is empty)")
        total = sum(c.predict(c.x, np.repeat(p[None], len(c.x), axis=0))
                    for p in c.train_cond)
        out["conditioned"] = {"run": conditioned, "own": c.ratio(c.log_t(c.predict(c.x))),
                              "marginalized": c.ratio(c.log_t(total / len(c.train_cond))),
                              "training_parameter_vectors": int(len(c.train_cond))}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog="python -m benchmarks.error_budget",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True,
                        help="comma-separated regression run folders with the same test maps")
    parser.add_argument("--conditioned", default=None,
                        help="a conditioned run folder of the same data, to marginalize")
    parser.add_argument("--batch", type=cli.positive_int, default=16)
    args = parser.parse_args(argv)
    print(json.dumps(budget(args.runs.split(","), args.conditioned, args.batch), indent=1))


if __name__ == "__main__":
    cli.run(main)
