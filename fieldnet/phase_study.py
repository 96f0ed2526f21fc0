"""The Ising phase study as library calls (what `python -m experiments.ising_phases` runs).

    from experiments.configs import ising
    report = phase_study.train_and_evaluate(ising.get_config("quick"), "runs/ising_quick")

A ResNet with periodic padding and global pooling, invariant under the global spin flip
(and the lattice symmetries with `symmetry="dihedral"`), learns ordered vs disordered
only from temperatures far from the transition. Chains are split in two: training uses
one half, the P(ordered | T) curves and their bootstrap use the other.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from scipy.special import softmax

from fieldnet import evaluate, models, phase_figures, phases, report, symmetry, train
from fieldnet.errors import FieldnetError
from fieldnet.experiment import prepare_workdir, write_json

ORDERED, DISORDERED = 1, 0


class IsingData:
    """Spins of every lattice size, split by chain; batches pure in (seed, step)."""

    def __init__(self, config: ml_collections.ConfigDict):
        from data_tools.ising import read_ising

        d = config.data
        if not d.ordered_below < d.disordered_above:
            raise FieldnetError(f"data.ordered_below={d.ordered_below} must be below "
                                f"data.disordered_above={d.disordered_above}")
        self.sizes = [int(L) for L in d.lattice_sizes]
        self.ordered_below, self.disordered_above = d.ordered_below, d.disordered_above
        self.spins, self.temperature, self.chain, self.train_idx, self.eval_idx = {}, {}, {}, {}, {}
        rng = np.random.default_rng(d.split_seed)
        for L in self.sizes:
            spins, temperature, chain = read_ising(d.path, L)
            self.spins[L], self.temperature[L], self.chain[L] = spins, temperature, chain
            chains = np.unique(chain)
            held_out = rng.permutation(chains)[: int(round(d.eval_chain_fraction * len(chains)))]
            is_eval = np.isin(chain, held_out)
            far = (temperature <= d.ordered_below) | (temperature >= d.disordered_above)
            self.train_idx[L] = np.flatnonzero(~is_eval & far)
            self.eval_idx[L] = np.flatnonzero(is_eval)
            if self.train_idx[L].size == 0:
                raise FieldnetError(f"{d.path}: L={L} has no training samples with T <= "
                                    f"{d.ordered_below} or T >= {d.disordered_above}")

    def labels(self, L: int, idx: np.ndarray) -> np.ndarray:
        return np.where(self.temperature[L][idx] <= self.ordered_below, ORDERED,
                        DISORDERED).astype(np.int32)

    def batch(self, step: int, batch_size: int, seed: int, augment: bool = True) -> dict:
        """Lattice sizes take turns by step; each sample gets a random lattice symmetry."""
        L = self.sizes[step % len(self.sizes)]
        rng = np.random.default_rng([seed, step])
        idx = rng.choice(self.train_idx[L], size=batch_size)
        x = self.spins[L][idx][..., None]
        if augment:
            elements = symmetry.group_elements(2)
            x = np.concatenate([symmetry.apply(x[i:i + 1], elements[g])
                                for i, g in enumerate(rng.integers(len(elements), size=len(x)))])
        return {"x": np.ascontiguousarray(x), "label": self.labels(L, idx)}

    def validation(self, batch_size: int, seed: int) -> list[dict]:
        """One batch per size from the held-out chains at the training temperatures."""
        out = []
        rng = np.random.default_rng([seed, 1 << 20])
        for L in self.sizes:
            far = self.eval_idx[L][(self.temperature[L][self.eval_idx[L]] <= self.ordered_below)
                                   | (self.temperature[L][self.eval_idx[L]]
                                      >= self.disordered_above)]
            idx = rng.choice(far, size=batch_size)
            out.append({"x": self.spins[L][idx][..., None], "label": self.labels(L, idx)})
        return out


def cross_entropy(model: nnx.Module, batch: dict):
    logits = model(batch["x"]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


def ensure_data(config: ml_collections.ConfigDict) -> Path:
    path = Path(config.data.path)
    if path.exists():
        return path
    if not config.generate.enabled:
        raise FileNotFoundError(f"{path}: no such data file (data.path)")
    from data_tools import ising

    g = config.generate
    path.parent.mkdir(parents=True, exist_ok=True)
    temps = np.linspace(g.t_min, g.t_max, g.n_temps) if g.n_temps else ising.default_temperatures()
    lattices = ising.generate(config.data.lattice_sizes, temps, g.samples, seed=g.seed,
                              chains=g.chains)
    return ising.write(path, lattices, g.seed)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | Path | None = None) -> dict:
    ensure_data(config)
    workdir = prepare_workdir(config, workdir)
    data = IsingData(config)
    try:
        model = models.build(config.model, rngs=nnx.Rngs(config.seed), in_channels=1,
                             num_classes=2, ndim=2)
    except ValueError as err:
        raise FieldnetError(f"model config: {err}") from None
    bad = [L for L in data.sizes if L % model.stride]
    if bad:
        raise FieldnetError(f"lattice sizes {bad} are not divisible by the model's stride "
                            f"{model.stride}; lower model.depth")
    tc = config.train

    def batches(start):
        return (data.batch(step, tc.batch_size, config.seed) for step in range(start,
                                                                               tc.num_steps))

    result = train.fit(model, batches, data.validation(tc.batch_size, config.seed), tc, workdir,
                       loss_fn=cross_entropy)
    step = train.restore_params(model, workdir, tc, best=True)
    report = analyse(model, data, config, workdir)
    report.update(train_steps=result.final_step, checkpoint_step=step)
    write_json(workdir / "eval.json", report)
    return report


def analyse(model: nnx.Module, data: IsingData, config, workdir: Path) -> dict:
    """P(ordered | T) per size on held-out chains, T_c(L) with bootstrap, extrapolation."""
    rng = np.random.default_rng(config.analysis.bootstrap_seed)
    curves, per_size = [], {}
    for L in data.sizes:
        idx = data.eval_idx[L]
        logits = evaluate.predict_stack(model, data.spins[L][idx][..., None],
                                        config.analysis.batch_size)
        p = softmax(logits, axis=-1)[:, ORDERED]
        curve = phases.ordered_probability_curve(L, data.temperature[L][idx],
                                                 data.chain[L][idx], p)
        tc_L, err = phases.bootstrap_crossing(curve, config.analysis.n_bootstrap, rng)
        if not np.isfinite(tc_L):
            raise FieldnetError(f"P(ordered|T) of L={L} never crosses 1/2; train longer")
        curves.append(curve)
        per_size[str(L)] = {"tc": tc_L, "tc_err": err}
    fit = phases.finite_size_extrapolation(data.sizes, [v["tc"] for v in per_size.values()],
                                           [v["tc_err"] for v in per_size.values()],
                                           nu=config.analysis.nu)
    phase_figures.phase_curves(curves, workdir / "figures" / "p_ordered.png",
                         ordered_below=data.ordered_below,
                         disordered_above=data.disordered_above)
    phase_figures.tc_extrapolation(data.sizes, per_size, fit, workdir / "figures" / "tc_vs_L.png",
                             nu=config.analysis.nu)
    report.training_curves(workdir / "metrics.jsonl", workdir / "figures" / "training.png")
    return {"tc": fit.tc, "tc_err": fit.tc_err, "per_L": per_size,
            "onsager_tc": phases.ONSAGER_TC,
            "relative_error": (fit.tc - phases.ONSAGER_TC) / phases.ONSAGER_TC,
            "pull": (fit.tc - phases.ONSAGER_TC) / fit.tc_err,
            "fit": {"slope": fit.slope, "chi2": fit.chi2, "dof": fit.dof, "nu": config.analysis.nu},
            "curves": {str(c.L): {"T": c.temperatures.tolist(), "p_ordered": c.p_ordered.tolist()}
                       for c in curves},
            "references": {"fully_connected_L_le_60": 2.266, "zero_padded_cnn_review": 2.26}}

