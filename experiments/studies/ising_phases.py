"""The Ising phase study as library calls (what `python -m experiments.ising_phases` runs).

    from experiments.configs import ising
    from experiments.studies import ising_phases
    report = ising_phases.train_and_evaluate(ising.get_config("quick"), "runs/ising_quick")

A ResNet with periodic padding and global pooling, invariant under the global spin flip
(and the lattice symmetries with `symmetry="dihedral"`), learns ordered vs disordered
only from temperatures far from the transition. Chains are split in two: training uses
one half, the P(ordered | T) curves and their bootstrap use the other.

Where a classifier puts its boundary between the training temperatures is not fixed by
the training data (they are separable), so it changes with the training seed, and so does
T_c. An ensemble of `ensemble.size` classifiers with different seeds is therefore trained;
the curves use their mean P(ordered), and the error of T_c counts the scatter between the
members' own estimates besides the chains' bootstrap."""

from __future__ import annotations

import math
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx
from scipy.special import softmax

from fieldnet import models, rundir, symmetry, train
from fieldnet.data.dataset import periodic_crops, transform_batch
from fieldnet.data.ising import read_ising
from fieldnet.errors import FieldnetError
from fieldnet.eval import phases
from fieldnet.eval.held_out import predict_stack
from fieldnet.figures import phases as phase_figures
from fieldnet.figures import report
from fieldnet.files import write_json
from fieldnet.grid import check_divisible
from fieldnet.records import to_json_value

ORDERED, DISORDERED = 1, 0


class IsingData:
    """Spins of every lattice size, split by chain; batches pure in (seed, step)."""

    def __init__(self, config: ml_collections.ConfigDict):
        d = config.data
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
        """Lattice sizes take turns by step; with `augment`, each configuration gets a random
        periodic translation and lattice symmetry, the field dataset's augmentation
        (`periodic_crops` of the whole lattice, `transform_batch`)."""
        L = self.sizes[step % len(self.sizes)]
        rng = np.random.default_rng([seed, step])
        idx = rng.choice(self.train_idx[L], size=batch_size)
        x = self.spins[L][idx][..., None]
        if augment:
            starts = rng.integers(L, size=(batch_size, 2))
            elements = rng.integers(len(symmetry.group_elements(2)), size=batch_size)
            x = transform_batch(periodic_crops(x, starts, L), elements)
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


def check_config(config: ml_collections.ConfigDict) -> None:
    """Every value the study reads, checked in one line before any Monte Carlo runs."""
    train.check_config(config.train)
    d = config.data
    if not d.ordered_below < d.disordered_above:
        raise FieldnetError(f"data.ordered_below={d.ordered_below} must be below "
                            f"data.disordered_above={d.disordered_above}")
    if not 0 < d.eval_chain_fraction < 1:
        raise FieldnetError(f"data.eval_chain_fraction must be in (0, 1), got "
                            f"{d.eval_chain_fraction!r}")
    sizes = list(d.lattice_sizes)
    if not sizes or any(not isinstance(L, int) or L < 2 for L in sizes):
        raise FieldnetError(f"data.lattice_sizes must be integers ≥ 2, got {sizes}")
    check_divisible(sizes, models.stride_of(config.model), "data.lattice_sizes",
                    models.stride_formula(config.model.get("name", "unet")))
    member_seeds(config)
    an = config.analysis
    if not isinstance(an.batch_size, int) or an.batch_size < 1 or an.n_bootstrap < 1:
        raise FieldnetError("analysis.batch_size and analysis.n_bootstrap must be positive")


def member_seeds(config: ml_collections.ConfigDict) -> list[int]:
    """Seeds of the ensemble's members: K·seed + k, so that runs with different `seed` train
    disjoint ensembles (and K = 1 trains with `seed` itself)."""
    size = config.ensemble.size
    if size < 1:
        raise FieldnetError(f"ensemble.size must be at least 1, got {size}")
    return [config.seed * size + k for k in range(size)]


def train_member(config: ml_collections.ConfigDict, data: IsingData, seed: int,
                 workdir: Path) -> tuple[nnx.Module, train.TrainResult]:
    """One classifier, trained (or resumed) in its own workdir; returns its final parameters.

    The final parameters, not the best by validation loss: at the training temperatures the
    validation loss falls to ~1e-4 within a hundred steps, so its minimum is noise.
    """
    try:
        model = models.build(config.model, rngs=nnx.Rngs(seed), in_channels=1, num_classes=2,
                             ndim=2)
    except ValueError as err:
        raise FieldnetError(f"model config: {err}") from None
    tc = config.train

    def batches(start):
        return (data.batch(step, tc.batch_size, seed) for step in range(start, tc.num_steps))

    workdir.mkdir(parents=True, exist_ok=True)
    result = train.fit(model, batches, data.validation(tc.batch_size, seed), tc, workdir)
    return model, result


def ordered_probabilities(model: nnx.Module, data: IsingData, batch_size: int) -> dict:
    """P(ordered) of every held-out configuration, per lattice size."""
    out = {}
    for L in data.sizes:
        logits = predict_stack(model, data.spins[L][data.eval_idx[L]][..., None],
                                        batch_size)
        out[L] = softmax(logits, axis=-1)[:, ORDERED]
    return out


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | Path | None = None) -> dict:
    """Trains the ensemble (member k in workdir/member_k/, each resumable), then analyses it;
    writes eval.json and figures/ in the workdir and returns eval.json's content."""
    check_config(config)
    rundir.check_creatable(workdir or rundir.default_workdir(config.name))
    ensure_data(config)
    workdir = rundir.prepare(config, workdir)
    data = IsingData(config)
    seeds = member_seeds(config)
    probabilities, steps = [], []
    for k, seed in enumerate(seeds):
        model, result = train_member(config, data, seed, workdir / f"member_{k}")
        probabilities.append(ordered_probabilities(model, data, config.analysis.batch_size))
        steps.append(result.final_step)
    result = analyse(probabilities, data, config, workdir, seeds)
    result.update(train_steps=min(steps))
    write_json(rundir.evaluation(workdir), result)
    return result


def analyse(probabilities: list[dict], data: IsingData, config, workdir: Path,
            seeds: list[int]) -> dict:
    """P(ordered | T) per size from the ensemble's mean probability on held-out chains,
    T_c(L) with a chain bootstrap, the extrapolation, and each member's own T_c.

    The error of T_c adds, in quadrature, the extrapolation's error (chain bootstrap,
    inflated by the fit's scatter) and the standard error over members of their own
    extrapolated T_c (the training seed's scatter); per size likewise.
    """
    an = config.analysis
    rng = np.random.default_rng(an.bootstrap_seed)
    curves, member_curves, tcs, boot_errs, member_tcs = [], [], [], [], []
    for L in data.sizes:
        idx = data.eval_idx[L]
        temperature, chain = data.temperature[L][idx], data.chain[L][idx]
        mean_p = np.mean([p[L] for p in probabilities], axis=0)
        curve = phases.ordered_probability_curve(L, temperature, chain, mean_p)
        tc_L, err = phases.bootstrap_crossing(curve, an.n_bootstrap, rng)
        if not np.isfinite(tc_L):
            raise FieldnetError(f"P(ordered|T) of L={L} never crosses 1/2; train longer")
        members = [phases.ordered_probability_curve(L, temperature, chain, p[L])
                   for p in probabilities]
        curves.append(curve)
        member_curves.append(members)
        tcs.append(tc_L)
        boot_errs.append(err)
        member_tcs.append([phases.half_crossing(c.temperatures, c.p_ordered) for c in members])
    fit = phases.finite_size_extrapolation(data.sizes, tcs, boot_errs, nu=an.nu,
                                           corrections=an.corrections)
    member_fits = [phases.finite_size_extrapolation(data.sizes, column, boot_errs, nu=an.nu,
                                                    corrections=an.corrections)
                   if np.all(np.isfinite(column)) else None
                   for column in np.transpose(member_tcs)]
    total = phases.ensemble_error(fit.tc_err, [f.tc if f else math.nan for f in member_fits])
    per_size = {}
    for L, tc_L, err, column in zip(data.sizes, tcs, boot_errs, member_tcs, strict=True):
        size_total = phases.ensemble_error(err, column)
        per_size[str(L)] = {"tc": tc_L, "tc_err": size_total.error, "tc_err_bootstrap": err,
                            "seed_scatter": to_json_value(size_total.seed_scatter),
                            "members": to_json_value(column)}
    figures = rundir.figures(workdir)
    phase_figures.phase_curves(curves, figures / "p_ordered.png",
                               ordered_below=data.ordered_below,
                               disordered_above=data.disordered_above,
                               members=member_curves)
    phase_figures.tc_extrapolation(data.sizes, per_size, fit, figures / "tc_vs_L.png", nu=an.nu,
                                   tc_err=total.error)
    report.training_curves([rundir.metrics(workdir / f"member_{k}") for k in range(len(seeds))],
                           figures / report.FIGURE_NAMES["training"],
                           labels=[f"member {k}" for k in range(len(seeds))],
                           ylabel="cross-entropy")
    return {"tc": fit.tc, "tc_err": total.error, "per_L": per_size,
            "onsager_tc": phases.ONSAGER_TC,
            "relative_error": (fit.tc - phases.ONSAGER_TC) / phases.ONSAGER_TC,
            "pull": (fit.tc - phases.ONSAGER_TC) / total.error,
            "fit": {"tc_err": fit.tc_err, "slope": fit.coefficients[0],
                    "coefficients": fit.coefficients, "chi2": fit.chi2, "dof": fit.dof,
                    "nu": an.nu, "corrections": an.corrections},
            "ensemble": {"size": len(seeds), "seeds": seeds,
                         "tc": to_json_value([f.tc if f else math.nan for f in member_fits]),
                         "seed_scatter": to_json_value(total.seed_scatter)},
            "curves": {str(c.L): {"T": c.temperatures.tolist(), "p_ordered": c.p_ordered.tolist()}
                       for c in curves},
            "references": {"fully_connected_L_le_60": 2.266, "zero_padded_cnn_review": 2.26}}

