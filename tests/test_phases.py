"""T_c estimation: crossings, bootstrap errors, finite-size extrapolation, and the study."""

import json
import math

import numpy as np
import pytest

from experiments.configs import ising
from experiments.studies import ising_phases as phase_study
from fieldnet.eval import phases


def test_onsager_value():
    assert phases.ONSAGER_TC == pytest.approx(2.269185314, abs=1e-9)


def test_half_crossing_interpolates_and_handles_wiggles():
    t = np.array([2.0, 2.1, 2.2, 2.3])
    assert phases.half_crossing(t, np.array([0.9, 0.7, 0.3, 0.1])) == pytest.approx(2.15)
    # Noise crossing twice: midpoint of the first (2.08) and last (2.25) crossings.
    wiggly = np.array([0.9, 0.4, 0.6, 0.4])
    assert phases.half_crossing(t, wiggly) == pytest.approx((2.08 + 2.25) / 2)
    assert math.isnan(phases.half_crossing(t, np.full(4, 0.9)))


def test_bootstrap_error_matches_binomial_error():
    """A logistic curve sampled with independent chains: the bootstrap error of the crossing
    agrees with the binomial error of p propagated through the slope: interpolating between
    two neighbours gives between sqrt(1/2) and 1 times sigma_p / slope (30% allowed for the
    bootstrap's own noise and the finite grid)."""
    rng = np.random.default_rng(0)
    temps = np.linspace(2.0, 2.5, 11)
    width, n = 0.05, 400
    p_true = 1 / (1 + np.exp((temps - 2.27) / width))
    samples = []
    for p in p_true:
        values = (rng.random(n) < p).astype(float)
        samples.append((values, np.arange(n)))
    curve = phases.Curve(16, temps, np.array([v.mean() for v, _ in samples]), samples)
    tc, err = phases.bootstrap_crossing(curve, 400, np.random.default_rng(1))
    slope = 1 / (4 * width)
    expected = math.sqrt(0.25 / n) / slope * math.sqrt(0.5)  # two neighbouring points
    assert abs(tc - 2.27) < 4 * err
    assert 0.7 * expected < err < 1.3 * expected / math.sqrt(0.5)


def test_extrapolation_recovers_known_tc_and_inflates_bad_fits():
    sizes = np.array([16, 24, 32, 48, 64])
    rng = np.random.default_rng(2)
    err = np.full(5, 0.004)
    fits = [phases.finite_size_extrapolation(sizes, 2.269 + 0.8 / sizes + rng.normal(0, 0.004, 5),
                                             err) for _ in range(200)]
    pulls = np.array([(f.tc - 2.269) / f.tc_err for f in fits])
    assert abs(pulls.mean()) < 0.3 and 0.7 < pulls.std() < 1.3
    scattered = phases.finite_size_extrapolation(sizes, 2.269 + 0.8 / sizes
                                                 + np.array([0.02, -0.02, 0.02, -0.02, 0.02]),
                                                 err)
    plain = phases.finite_size_extrapolation(sizes, 2.269 + 0.8 / sizes, err)
    assert scattered.chi2 / scattered.dof > 1
    assert scattered.tc_err > plain.tc_err * math.sqrt(scattered.chi2 / scattered.dof) * 0.99


def test_two_term_extrapolation_removes_the_bias_of_a_next_order_correction():
    """Crossings with an L^-2 correction: the one-term fit misses T_c by more than 3 sigma
    even after its chi2 inflation, the two-term fit is unbiased with pulls of unit width."""
    sizes = np.array([16, 24, 32, 48, 64])
    rng = np.random.default_rng(3)
    err = np.full(5, 0.003)
    exact = 2.269 + 0.8 / sizes - 40.0 / sizes**2
    one = phases.finite_size_extrapolation(sizes, exact, err)
    assert abs(one.tc - 2.269) > 3 * one.tc_err
    fits = [phases.finite_size_extrapolation(sizes, exact + rng.normal(0, 0.003, 5), err,
                                             corrections=2) for _ in range(300)]
    pulls = np.array([(f.tc - 2.269) / f.tc_err for f in fits])
    assert abs(pulls.mean()) < 0.2 and 0.7 < pulls.std() < 1.3
    assert fits[0].dof == 2 and len(fits[0].coefficients) == 2
    with pytest.raises(ValueError, match="at least 3 lattice sizes"):
        phases.finite_size_extrapolation(sizes[:2], exact[:2], err[:2], corrections=2)


def test_ensemble_error_counts_the_seed_scatter():
    """Members share the data (one common error) and scatter by seed: the combined error
    gives pulls of unit width, the data's error alone does not."""
    rng = np.random.default_rng(4)
    data_err, seed_sigma, k = 0.004, 0.015, 8
    pulls, naive = [], []
    for _ in range(2000):
        members = 2.269 + rng.normal(0, data_err) + rng.normal(0, seed_sigma, k)
        combined = phases.ensemble_error(data_err, members)
        pulls.append((members.mean() - 2.269) / combined.error)
        naive.append((members.mean() - 2.269) / data_err)
    assert 0.9 < np.std(pulls) < 1.15
    assert np.std(naive) > 1.4
    one = phases.ensemble_error(0.004, [2.25, 2.27, math.nan])
    assert one.seed_scatter == pytest.approx(np.std([2.25, 2.27], ddof=1))
    assert one.error == pytest.approx(math.hypot(0.004, one.seed_scatter / math.sqrt(2)))
    alone = phases.ensemble_error(0.004, [2.25])
    assert alone.error == 0.004 and math.isnan(alone.seed_scatter)


def test_member_seeds_are_disjoint_between_runs():
    c = ising.get_config()
    c.ensemble.size = 4
    first = phase_study.member_seeds(c)
    c.seed = 1
    assert len(set(first) | set(phase_study.member_seeds(c))) == 8
    c.ensemble.size, c.seed = 1, 5
    assert phase_study.member_seeds(c) == [5]


def test_ising_batches_augment_by_lattice_symmetries_and_periodic_translations(tmp_path):
    """Every augmented configuration is a translated and D4-transformed copy of the one the
    plain batch of the same step holds (the same configuration is drawn either way)."""
    from data_tools import ising as ising_data
    from fieldnet import symmetry

    c = tiny_study_config(tmp_path)
    c.data.lattice_sizes = (6,)
    lattices = ising_data.generate([6], [1.5, 3.0], samples=4, seed=2, chains=4,
                                   progress=False)
    ising_data.write(c.data.path, lattices, seed=2)
    data = phase_study.IsingData(c)
    plain, augmented = data.batch(3, 24, seed=1, augment=False), data.batch(3, 24, seed=1)
    np.testing.assert_array_equal(plain["label"], augmented["label"])
    assert augmented["x"].shape == plain["x"].shape == (24, 6, 6, 1)
    assert not np.array_equal(plain["x"], augmented["x"])
    images = [[symmetry.apply(np.roll(x, (i, j), (0, 1)), g, 0) for g in
               symmetry.group_elements(2) for i in range(6) for j in range(6)]
              for x in plain["x"]]
    for moved, orbit in zip(augmented["x"], images, strict=True):
        assert any(np.array_equal(moved, image) for image in orbit)


def tiny_study_config(tmp_path):
    """The quick Ising config shrunk further (L = 8, 12; 30 steps), data under tmp_path."""
    c = ising.get_config("quick")
    c.data.path = str(tmp_path / "ising.h5")
    c.data.lattice_sizes = (8, 12)
    c.generate.samples = 32
    c.generate.n_temps = 10
    c.train.num_steps = 30
    c.train.progress = False
    return c


@pytest.mark.slow
def test_study_runs_end_to_end_and_resumes(tmp_path):
    c = tiny_study_config(tmp_path)
    assert c.ensemble.size == 2
    report = phase_study.train_and_evaluate(c, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert {"tc", "tc_err", "per_L", "curves", "onsager_tc", "relative_error", "pull", "fit",
            "references", "ensemble"} <= set(saved)
    assert set(saved["per_L"]) == {"8", "12"}
    assert all({"tc", "tc_err"} <= set(v) for v in saved["per_L"].values())
    assert 1.0 < report["tc"] < 3.5 and report["tc_err"] > 0
    assert saved["ensemble"]["seeds"] == [0, 1] and len(saved["ensemble"]["tc"]) == 2
    for k in range(2):
        assert (tmp_path / "run" / f"member_{k}" / "checkpoints").is_dir()
    for name in ("p_ordered.png", "tc_vs_L.png", "training.png"):
        assert (tmp_path / "run" / "figures" / name).stat().st_size > 0
    # A rerun finds every member trained and reproduces the estimate.
    again = phase_study.train_and_evaluate(c, tmp_path / "run")
    assert again["tc"] == report["tc"] and again["tc_err"] == report["tc_err"]


def test_phase_figures_draw_the_curves_and_the_extrapolation():
    from fieldnet.figures import phases as figures

    t = np.linspace(1.5, 3.0, 7)
    curves = [phases.Curve(L, t, 1 / (1 + np.exp((t - 2.3 + 1 / L) * L)), []) for L in (8, 16)]
    (ax,) = figures.phase_curves(curves, None, ordered_below=1.8, disordered_above=2.7).axes
    drawn = {line.get_label(): line for line in ax.lines}
    for c in curves:
        np.testing.assert_array_equal(drawn[f"L = {c.L}"].get_xdata(), t)
        np.testing.assert_array_equal(drawn[f"L = {c.L}"].get_ydata(), c.p_ordered)
    assert drawn[r"Onsager $T_c$"].get_xdata()[0] == phases.ONSAGER_TC
    assert ax.get_xlabel() == r"temperature $T$ [$J/k_B$]" and "ordered" in ax.get_ylabel()

    per_size = {"8": {"tc": 2.2, "tc_err": 0.02}, "16": {"tc": 2.25, "tc_err": 0.01}}
    fit = phases.Extrapolation(tc=2.27, tc_err=0.01, coefficients=[-0.2], chi2=0.0, dof=0)
    (ax,) = figures.tc_extrapolation([8, 16], per_size, fit, None, nu=1.0).axes
    points = ax.containers[0].lines[0]  # T_c(L) with its error bars, at L^(-1/nu)
    np.testing.assert_allclose(points.get_xdata(), [1 / 8, 1 / 16])
    np.testing.assert_array_equal(points.get_ydata(), [2.2, 2.25])
    fitted = next(line for line in ax.lines if line.get_label().startswith("fit"))
    np.testing.assert_allclose(fitted.get_ydata(), 2.27 - 0.2 * fitted.get_xdata())
    assert ax.get_xlabel() == r"$L^{-1/\nu}$ ($\nu = 1$)"
