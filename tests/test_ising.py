"""The Ising Monte Carlo against exact results, and its file format and command line.

Monte Carlo errors come from independent chains: each chain's time average is one
independent estimate, so the standard error of their mean needs no autocorrelation model.
Agreement is required within 4 σ: with the ~30 comparisons below, the chance that a
correct sampler fails any of them by chance is below 0.2 %.
"""

import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_tools import ising, ising_exact, ising_mc
from fieldnet import cli
from fieldnet.errors import FieldnetError

SIGMAS = 4.0
T_C = ising_exact.CRITICAL_TEMPERATURE


def sample_observables(L, temps, chains, algorithm, burn_in_per_record, blocks, seed=0):
    """Time series (R, nT, C) of |m| and E/N, and the final states, of chains per T."""
    beta = jnp.asarray(np.repeat(1.0 / np.asarray(temps), chains), jnp.float32)
    start_key, burn_key, run_key = jax.random.split(jax.random.key(seed), 3)
    spins = ising_mc.initial_spins(start_key, beta.size, L)
    states, _, _ = ising_mc.run_block(spins, burn_key, beta, burn_in_per_record, algorithm)
    abs_m, energy = [], []
    for block in range(blocks):
        states, m, e = ising_mc.run_block(states[-1], jax.random.fold_in(run_key, block), beta,
                                          1, algorithm)
        abs_m.append(np.asarray(m))
        energy.append(np.asarray(e))
    shape = (-1, len(temps), chains)
    return (np.concatenate(abs_m).reshape(shape), np.concatenate(energy).reshape(shape),
            np.asarray(states[-1]).reshape(len(temps), chains, L, L))


def deviation_in_sigmas(series, exact):
    """(MC mean - exact) / standard error, from the spread of the per-chain averages."""
    chain_means = series.mean(axis=0)
    error = chain_means.std(ddof=1) / np.sqrt(chain_means.size)
    return (chain_means.mean() - exact) / error


def check(label, series, exact):
    deviation = deviation_in_sigmas(series, exact)
    print(f"{label}: MC {series.mean():.5f} exact {exact:.5f} ({deviation:+.2f} σ)")
    assert abs(deviation) < SIGMAS, f"{label}: {deviation:+.2f} σ from the exact {exact:.5f}"


# --- exact results -------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1.0, 1.5, 2.27, 3.0, 10.0])
def test_kaufman_partition_function_matches_enumeration(T):
    enumerated = ising_exact.enumerated_averages(4, T)
    assert ising_exact.log_partition_function(4, T) == pytest.approx(enumerated["log_z"],
                                                                     rel=1e-12)
    assert ising_exact.mean_energy_per_spin(4, T) == pytest.approx(enumerated["energy"],
                                                                   abs=1e-8)


def test_exact_energy_approaches_onsager_at_tc():
    """At T_c the infinite-lattice energy is -√2, approached as 1/L with periodic boundaries."""
    errors = [ising_exact.mean_energy_per_spin(L, T_C) + np.sqrt(2) for L in (32, 64, 128)]
    assert all(e < 0 for e in errors)
    assert errors[1] / errors[0] == pytest.approx(0.5, abs=0.02)
    assert errors[2] / errors[1] == pytest.approx(0.5, abs=0.02)


def test_wolff_cluster_matches_breadth_first_search():
    rng = np.random.default_rng(0)
    for L, p in [(4, 0.5), (6, 0.3), (6, 0.7), (7, 0.9), (6, 1.0)]:  # odd L: wraps, too
        bond_right, bond_down = rng.random((2, 32, L, L)) < p
        seeds = rng.integers(0, L, (32, 2))
        seed_mask = np.zeros((32, L, L), bool)
        seed_mask[np.arange(32), seeds[:, 0], seeds[:, 1]] = True
        grown = np.asarray(ising_mc.grow_cluster(jnp.asarray(seed_mask), jnp.asarray(bond_right),
                                                 jnp.asarray(bond_down)))
        for c in range(32):
            expected = _breadth_first_cluster(tuple(seeds[c]), bond_right[c], bond_down[c])
            np.testing.assert_array_equal(grown[c], expected)


def _breadth_first_cluster(seed, bond_right, bond_down):
    L = bond_right.shape[0]
    cluster, frontier = np.zeros((L, L), bool), [seed]
    cluster[seed] = True
    while frontier:
        i, j = frontier.pop()
        for site, bonded in [((i, (j + 1) % L), bond_right[i, j]),
                             ((i, (j - 1) % L), bond_right[i, (j - 1) % L]),
                             (((i + 1) % L, j), bond_down[i, j]),
                             (((i - 1) % L, j), bond_down[(i - 1) % L, j])]:
            if bonded and not cluster[site]:
                cluster[site] = True
                frontier.append(site)
    return cluster


def test_integrated_autocorrelation_time_of_ar1_process():
    """AR(1) with coefficient φ has ρ(t) = φ^t, so τ_int = (1 + φ) / (2 (1 - φ)) = 4.5."""
    phi, steps, chains = 0.8, 20000, 16
    noise = np.random.default_rng(1).normal(size=(steps, chains))
    x = np.zeros_like(noise)
    for t in range(1, steps):
        x[t] = phi * x[t - 1] + noise[t]
    # relative error ≈ sqrt(4 W / N) with W = 6 τ: sqrt(24 · 4.5 / 320000) ≈ 1.8 %; allow 4σ
    assert ising_mc.integrated_autocorrelation_time(x) == pytest.approx(4.5, rel=0.075)
    assert ising_mc.integrated_autocorrelation_time(noise) == pytest.approx(0.5, abs=0.05)


def test_observables_on_known_configurations():
    aligned = np.ones((4, 4))
    checkerboard = np.where(np.indices((4, 4)).sum(0) % 2, 1.0, -1.0)
    stack = np.stack([aligned, -aligned, checkerboard])[None]  # leading axes (1, 3)
    np.testing.assert_allclose(ising.energy_per_spin(stack), [[-2, -2, 2]])
    np.testing.assert_allclose(ising.abs_magnetization(stack), [[1, 1, 0]])
    np.testing.assert_allclose(ising.energy_per_spin(jnp.asarray(stack, jnp.int8)), [[-2, -2, 2]])


# --- Monte Carlo against exact results --------------------------------------------------

L4_TEMPS = (1.5, 2.27, 3.0)


@pytest.fixture(scope="module", params=ising_mc.ALGORITHMS)
def l4_run(request):
    """1024 independent chains per T on the 4×4 lattice: 128 updates of burn-in, 64 measured."""
    return request.param, sample_observables(4, L4_TEMPS, 1024, request.param,
                                             burn_in_per_record=8, blocks=4)


@pytest.mark.slow
def test_l4_averages_match_enumeration(l4_run):
    algorithm, (abs_m, energy, _) = l4_run
    for i, T in enumerate(L4_TEMPS):
        exact = ising_exact.enumerated_averages(4, T)
        check(f"L=4 {algorithm} T={T} E/N", energy[:, i], exact["energy"])
        check(f"L=4 {algorithm} T={T} |m|", abs_m[:, i], exact["abs_m"])


@pytest.mark.slow
def test_l4_stationary_distribution_is_boltzmann(l4_run):
    """Detailed balance sanity: the final states of independent chains are i.i.d. draws;
    their energy histogram must match g(E) exp(-E/T) (Pearson χ², p > 1e-4)."""
    from scipy import stats

    algorithm, (_, _, final_states) = l4_run
    all_energies, _ = ising_exact.enumerate_states(4)
    levels, degeneracy = np.unique(np.round(all_energies * 16).astype(int), return_counts=True)
    for i, T in enumerate(L4_TEMPS):
        weights = degeneracy * np.exp(-levels / T)
        expected = weights / weights.sum() * final_states.shape[1]
        sampled = np.round(ising.energy_per_spin(final_states[i]) * 16).astype(int)
        observed = np.array([(sampled == level).sum() for level in levels])
        common = expected >= 5  # pool the rare levels so the χ² approximation holds
        observed = np.append(observed[common], observed[~common].sum())
        expected = np.append(expected[common], expected[~common].sum())
        p_value = stats.chisquare(observed, expected).pvalue
        print(f"L=4 {algorithm} T={T} energy histogram χ² p = {p_value:.3f}")
        assert p_value > 1e-4, (algorithm, T, observed, expected.round(1))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm,temps", [("metropolis", (2.0, T_C, 2.6)),
                                             ("wolff", (T_C,)),
                                             ("wolff+metropolis", (2.15, T_C, 2.4))])
def test_l16_energy_matches_kaufman(algorithm, temps):
    """Metropolis: 256 sweeps of burn-in (≳ 10 τ at T_c for L = 16), then 128 measured.
    Cluster updates: 64 (≳ 10 τ, τ ≲ 5 measured at L = 16), then 128."""
    burn_in_per_record = 16 if algorithm == "metropolis" else 4
    _, energy, _ = sample_observables(16, temps, 128, algorithm, burn_in_per_record, blocks=8)
    for i, T in enumerate(temps):
        check(f"L=16 {algorithm} T={T:.4f} E/N", energy[:, i],
              ising_exact.mean_energy_per_spin(16, T))


def test_l32_low_temperature_magnetization_matches_yang():
    """Below T_c, with periodic boundaries, <|m|>_L - m0 is exponentially small in L/ξ:
    ξ = 1 / (4 (K - K*)) is 0.6 at T = 1.5 and 2.2 at T = 2.0, so e^{-L/ξ} < 1e-6 at L = 32,
    far below the ~1e-4 statistical error; the only tolerance is statistical."""
    temps = (1.5, 2.0)
    abs_m, _, _ = sample_observables(32, temps, 64, "metropolis", burn_in_per_record=8, blocks=4)
    for i, T in enumerate(temps):
        check(f"L=32 T={T} |m| vs Yang", abs_m[:, i],
              float(ising_exact.spontaneous_magnetization(T)))


@pytest.mark.slow
def test_generated_dataset_matches_kaufman():
    """The whole pipeline (pilot τ, 20 τ burn-in, 2 τ spacing) on both sides of T_c and in
    the Wolff window: 32 chains × 8 stored samples per T."""
    temps = [2.1, 2.27, 2.5]
    lattice = ising.generate([16], temps, samples=256, seed=5, chains=32, progress=False)[0]
    assert lattice.algorithm == ["metropolis", "wolff+metropolis", "metropolis"]
    for T in temps:
        at_T = lattice.temperature == np.float32(T)
        energy = ising.energy_per_spin(lattice.spins[at_T])
        per_chain = energy.reshape(32, 8).T  # samples are ordered by chain
        assert np.all(np.diff(lattice.chain[at_T].reshape(32, 8), axis=1) == 0)
        check(f"generated L=16 T={T} E/N", per_chain, ising_exact.mean_energy_per_spin(16, T))


# --- generator, file and command line ------------------------------------------------------

def test_same_seed_gives_identical_configurations():
    first = ising.generate([8], [1.5, 3.0], samples=6, seed=3, chains=2, progress=False)[0]
    again = ising.generate([8], [1.5, 3.0], samples=6, seed=3, chains=2, progress=False)[0]
    other = ising.generate([8], [1.5, 3.0], samples=6, seed=4, chains=2, progress=False)[0]
    alone = ising.generate([8], [3.0], samples=6, seed=3, chains=2, progress=False)[0]
    np.testing.assert_array_equal(first.spins, again.spins)
    np.testing.assert_array_equal(first.chain, again.chain)
    assert not np.array_equal(first.spins, other.spins)
    # the chains of one (L, T) do not depend on which other temperatures are generated
    np.testing.assert_array_equal(first.spins[first.temperature == 3.0], alone.spins)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ising") / "tiny.h5"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(ising.main, ["--out", str(path), "--L", "8,6", "--temps", "1.5,3.0",
                             "--samples", "5", "--chains", "2", "--seed", "1", "--quiet"])
    assert exit_info.value.code == 0
    return path


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ising.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--out", "--L", "--temps", "--samples", "--chains", "--seed", "--overwrite"):
        assert option in out


def test_inspect_reads_the_ising_format(tiny_file):
    from data_tools import inspect

    summary = inspect.summarize(tiny_file)
    assert summary["ising"] == {"lattice_sizes": [6, 8],
                                "configurations": {"6": 10, "8": 10}}
    assert "fieldnet-ising format: configurations per lattice size L=6: 10, L=8: 10" in \
        inspect.format_summary(summary)


def test_file_layout(tiny_file):
    with h5py.File(tiny_file, "r") as f:
        assert f.attrs["format"] == "fieldnet-ising" and f.attrs["version"] == 1
        assert f.attrs["ndim"] == 2 and f.attrs["source"] == "data_tools.ising"
        assert f.attrs["box_size"] == 8 and "created_by" in f.attrs
        assert list(f.attrs["lattice_sizes"]) == [8, 6]
        chains_seen = []
        for L in (8, 6):
            group = f[f"L{L}"]
            spins = group["fields/spins"]
            assert spins.dtype == np.float32 and spins.shape == (10, L, L)
            assert set(np.unique(spins[...])) == {-1.0, 1.0}
            assert spins.attrs["units"] == "spin" and spins.attrs["description"]
            assert list(group["params"].attrs["names"]) == ["T", "L"]
            np.testing.assert_array_equal(group["params"][:, 1], L)
            assert sorted(set(group["params"][:, 0])) == [1.5, 3.0]
            assert group["sim_index"].dtype == np.int64
            assert group.attrs["box_size"] == L and group.attrs["ndim"] == 2
            assert np.all(group.attrs["tau_abs_m"] >= 0.4)
            assert group.attrs["tau_energy"].shape == (2,)
            assert list(group.attrs["algorithm"]) == ["metropolis", "metropolis"]
            chains_seen.append(set(group["sim_index"][...]))
        assert len(chains_seen[0]) == len(chains_seen[1]) == 4  # 2 chains × 2 temperatures
        assert not chains_seen[0] & chains_seen[1]  # chain ids are unique in the file
    spins, T, chain = ising.read_ising(tiny_file, 6)
    assert spins.shape == (10, 6, 6) and T.shape == chain.shape == (10,)


def test_rerun_without_overwrite_is_refused(tiny_file):
    result = subprocess.run([sys.executable, "-m", "data_tools.ising", "--out", str(tiny_file),
                             "--L", "8", "--temps", "1.5", "--samples", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "--overwrite" in result.stderr


@pytest.mark.parametrize("argv,message", [
    (["--L", "7"], "even"),
    (["--temps", "2:1:x"], "--temps"),
    (["--temps", "1.5,-1"], "positive"),
    ([], "required: --out"),
])
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    out = [] if not argv else ["--out", str(tmp_path / "x.h5")]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(ising.main, out + argv + ["--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def _corrupted_copy(tiny_file, tmp_path, edit):
    path = tmp_path / "bad.h5"
    path.write_bytes(tiny_file.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _set_one_spin_to_zero(f):
    f["L8/fields/spins"][3, 0, 0] = 0.0


def _make_non_square(f):
    del f["L8/fields/spins"]
    f["L8/fields"].create_dataset("spins", data=np.ones((10, 8, 6), np.float32))


def _drop_temperatures(f):
    del f["L8/params"]


@pytest.mark.parametrize("edit,message", [
    (_set_one_spin_to_zero, "values other than ±1"),
    (_make_non_square, "square"),
    (_drop_temperatures, "temperatures missing"),
])
def test_read_ising_rejects_bad_files(tiny_file, tmp_path, edit, message):
    path = _corrupted_copy(tiny_file, tmp_path, edit)
    with pytest.raises(FieldnetError, match=message) as info:
        ising.read_ising(path, 8)
    assert "\n" not in str(info.value)


def test_read_ising_names_a_missing_size_or_file(tiny_file, tmp_path):
    with pytest.raises(FieldnetError, match="no lattice size 16.*has: 8, 6"):
        ising.read_ising(tiny_file, 16)
    with pytest.raises(FieldnetError, match="no such file"):
        ising.read_ising(tmp_path / "absent.h5", 8)
