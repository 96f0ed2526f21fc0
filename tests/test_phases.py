"""T_c estimation: crossings, bootstrap errors, finite-size extrapolation, and the study."""

import json
import math

import numpy as np
import pytest

from experiments.configs import ising
from fieldnet import phase_study, phases


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


def test_study_runs_end_to_end(tmp_path):
    c = ising.get_config("quick")
    c.data.path = str(tmp_path / "ising.h5")
    c.data.lattice_sizes = (8, 12)
    c.generate.samples = 32
    c.generate.n_temps = 10
    c.train.num_steps = 30
    c.train.progress = False
    report = phase_study.train_and_evaluate(c, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert {"tc", "tc_err", "per_L"} <= set(saved)
    assert set(saved["per_L"]) == {"8", "12"}
    assert all({"tc", "tc_err"} <= set(v) for v in saved["per_L"].values())
    assert 1.0 < report["tc"] < 3.5 and report["tc_err"] > 0
    for name in ("p_ordered.png", "tc_vs_L.png", "training.png"):
        assert (tmp_path / "run" / "figures" / name).stat().st_size > 0
