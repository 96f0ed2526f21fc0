"""data_tools.snapshot: Gadget-layout particle snapshots gridded into fieldnet files."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_tools import gadget, snapshot
from fieldnet import cli
from fieldnet.data import h5format
from tests.snapshot_files import lattice, write_snapshot

ROOT = Path(__file__).resolve().parents[1]
BOX = 25.0  # Mpc/h
G = 8       # cells per side in most tests
H, OMEGA_M = 0.7, 0.3


def hubble(redshift, omega_m=OMEGA_M):
    """H(a) in km/s per Mpc/h for flat LCDM."""
    return 100.0 * np.sqrt(omega_m * (1 + redshift) ** 3 + 1 - omega_m)


def random_particles(n, seed=0, gas=True):
    rng = np.random.default_rng(seed)
    dm = {"positions": rng.uniform(0, BOX, (n, 3)), "velocities": rng.normal(0, 200, (n, 3)),
          "masses": 1e9}
    if not gas:
        return dm, None
    gas_particles = {"positions": rng.uniform(0, BOX, (n, 3)),
                     "velocities": rng.normal(0, 200, (n, 3)),
                     "masses": rng.uniform(1e8, 2e8, n),
                     "internal_energy": 10 ** rng.uniform(1, 4, n),
                     "electron_abundance": rng.uniform(1.0, 1.16, n)}
    return dm, gas_particles


def grid(path, tmp_path, *args, name="out.h5", **kwargs):
    """Runs the converter in-process; returns {field: array} of the written file."""
    out = tmp_path / name
    snapshot.convert([path] if isinstance(path, str | Path) else path, out, *args,
                     progress=False, **kwargs)
    with h5py.File(out) as f:
        return {name: f[f"fields/{name}"][...] for name in f["fields"]}


def test_single_file_multi_file_and_folder_give_the_same_fields(tmp_path):
    dm, gas = random_particles(16**3)
    single = write_snapshot(tmp_path / "snap_000.hdf5", dm=dm, gas=gas, redshift=0.5)[0]
    parts = write_snapshot(tmp_path / "snapdir_000" / "snap_000", n_files=3, dm=dm, gas=gas,
                           redshift=0.5)
    expected = grid(single, tmp_path, G, name="a.h5")
    assert set(expected) == {"density", "velocity_x", "velocity_y", "velocity_z",
                             "velocity_dispersion", "velocity_divergence", "gas_density",
                             "temperature"}
    for k, source in enumerate((parts[2], parts[0].parent)):
        fields = grid(source, tmp_path, G, name=f"b{k}.h5", chunk=1000)  # chunks span files
        for name, values in expected.items():
            np.testing.assert_allclose(fields[name], values, rtol=1e-4,
                                       atol=1e-4 * np.abs(values).max(), err_msg=name)
    info = h5format.read_info(tmp_path / "b1.h5")
    assert info.ndim == 3 and info.box_size == pytest.approx(BOX)
    assert info.fields["density"].units == "mean density"
    assert info.fields["temperature"].units == "K"
    assert info.fields["density"].log_floor == pytest.approx(1e-3)
    # the same floors as the simulator's files (data_tools.phase_space.log_floors), so a
    # model trained on one normalizes the other alike; the signed fields have none
    assert info.fields["velocity_dispersion"].log_floor == pytest.approx(1.0)
    assert info.fields["temperature"].log_floor == pytest.approx(10.0)
    assert info.fields["velocity_divergence"].log_floor is None


def test_total_mass_is_conserved(tmp_path):
    dm, gas = random_particles(4000)
    path = write_snapshot(tmp_path / "s.hdf5", dm=dm, gas=gas)[0]
    maps = grid(path, tmp_path, G, dim=2, slabs=2)
    assert maps["density"].shape == (6, G, G)
    for axis in range(3):  # every projection holds all the mass once
        np.testing.assert_allclose(maps["density"][2 * axis:2 * axis + 2].sum(dtype=np.float64),
                                   1e9 * 4000, rtol=1e-5)
        np.testing.assert_allclose(maps["gas_density"][2 * axis:2 * axis + 2].sum(
            dtype=np.float64), gas["masses"].sum(), rtol=1e-5)
    boxes = grid(path, tmp_path, G, name="3d.h5")
    assert boxes["density"].mean(dtype=np.float64) == pytest.approx(1.0, rel=1e-5)


def one_particle(tmp_path, position, name="one.hdf5", **header):
    dm = {"positions": np.array([position], float), "velocities": np.zeros((1, 3)),
          "masses": 1e10}
    return write_snapshot(tmp_path / name, dm=dm, **header)[0]


def test_a_particle_at_a_cell_centre_lands_in_that_cell(tmp_path):
    cell = np.array([2, 5, 7])
    density = grid(one_particle(tmp_path, (cell + 0.5) * BOX / G), tmp_path, G)["density"][0]
    expected = np.zeros((G, G, G))
    expected[tuple(cell)] = G**3  # all the mass in one cell: G^3 times the mean
    np.testing.assert_allclose(density, expected, atol=1e-3)


@pytest.mark.parametrize("edge", [0.0, BOX])
def test_deposit_wraps_around_periodic_edges(tmp_path, edge):
    """A particle on the corner (0 or exactly BoxSize, which wraps) shares its mass
    equally among the 8 cells around the corner, on both sides of every face."""
    density = grid(one_particle(tmp_path, (edge,) * 3), tmp_path, G)["density"][0]
    corner = np.ix_([0, G - 1], [0, G - 1], [0, G - 1])
    np.testing.assert_allclose(density[corner], G**3 / 8, rtol=1e-5)
    assert density.sum() == pytest.approx(G**3, rel=1e-5)


@pytest.mark.parametrize("particles_per_side", [8, 16])
def test_a_uniform_lattice_gives_uniform_density(tmp_path, particles_per_side):
    dm = {"positions": lattice(particles_per_side, BOX), "masses": 1e9,
          "velocities": np.zeros((particles_per_side**3, 3))}
    path = write_snapshot(tmp_path / "lattice.hdf5", dm=dm)[0]
    np.testing.assert_allclose(grid(path, tmp_path, G)["density"], 1.0, rtol=1e-5)


def test_mass_weighted_mean_temperature_equals_the_particles(tmp_path):
    dm, gas = random_particles(3000, seed=3)
    path = write_snapshot(tmp_path / "s.hdf5", dm=dm, gas=gas)[0]
    fields = grid(path, tmp_path, G)
    weights = fields["gas_density"].astype(np.float64)
    on_grid = (fields["temperature"] * weights).sum() / weights.sum()
    temperature = gadget.gas_temperature(gas["internal_energy"], gas["electron_abundance"])
    expected = (gas["masses"] * temperature).sum() / gas["masses"].sum()
    assert on_grid == pytest.approx(expected, rel=1e-5)


def test_temperature_formula_by_hand(tmp_path):
    """u = 1e4 (km/s)^2 = 1e10 (m/s)^2, x_e = 1.1, X = 0.76:
    mu = 4 / (1 + 2.28 + 3.344) = 0.603865; T = 2/3 * 1e10 * mu * m_p / k_B = 487711 K."""
    from data_tools import gas

    assert (gadget.PROTON_MASS, gadget.BOLTZMANN) == (gas.PROTON_MASS, gas.BOLTZMANN)
    assert gadget.gas_temperature(1e4, 1.1) == pytest.approx(487711.4, rel=1e-5)
    # Fully ionised without ElectronAbundance: mu = 4 / (3 + 5X) = 0.588235
    assert gadget.gas_temperature(1e4) == pytest.approx(475088.3, rel=1e-5)
    # X from GFM_Metals: X = 0.7, x_e = 1.1: mu = 4 / (1 + 2.1 + 3.08) = 0.647249
    assert gadget.gas_temperature(1e4, 1.1, 0.7) == pytest.approx(522750.9, rel=1e-5)
    cell = np.array([1, 2, 3])
    gas = {"positions": np.array([(cell + 0.5) * BOX / G]), "velocities": np.zeros((1, 3)),
           "masses": 1e8, "internal_energy": [1e4], "electron_abundance": [1.1],
           "hydrogen_fraction": [0.7]}
    dm = {"positions": lattice(4, BOX), "velocities": np.zeros((64, 3)), "masses": 1e9}
    path = write_snapshot(tmp_path / "hot.hdf5", dm=dm, gas=gas, redshift=2.0)[0]
    temperature = grid(path, tmp_path, G)["temperature"][0]
    assert temperature[tuple(cell)] == pytest.approx(522750.9, rel=1e-5)


def test_a_known_velocity_field_gives_its_divergence_and_dispersion(tmp_path):
    """v_x = A sin(2 pi x / L) on a lattice at the cell centres, at z = 1 (stored as
    v / sqrt(a)): theta = A (2 pi / L) cos(2 pi x / L) / (a H). Each site also holds two
    particles moving at +-s along y, so the dispersion is s everywhere. At 16 cells per
    wavelength the deposit's 4th-order difference is low by (kH)^4 / 30 = 8e-4."""
    amplitude, spread, redshift, cells = 300.0, 50.0, 1.0, 16
    x = lattice(cells, BOX)
    n = len(x)
    phase = 2 * np.pi * x[:, 0] / BOX
    velocities = np.zeros((2 * n, 3))
    velocities[:, 0] = np.tile(amplitude * np.sin(phase), 2)
    velocities[:n, 1], velocities[n:, 1] = spread, -spread
    dm = {"positions": np.concatenate([x, x]), "velocities": velocities, "masses": 1e9}
    path = write_snapshot(tmp_path / "flow.hdf5", dm=dm, redshift=redshift)[0]
    with h5py.File(path) as f:  # the file holds w = v / sqrt(a)
        assert f["PartType1/Velocities"][0, 1] == pytest.approx(spread * np.sqrt(2), rel=1e-6)
    fields = {k: v[0] for k, v in grid(path, tmp_path, cells).items()}
    centres = (np.arange(cells) + 0.5) * BOX / cells
    wave = amplitude * np.sin(2 * np.pi * centres / BOX)[:, None, None]
    np.testing.assert_allclose(fields["velocity_x"], np.broadcast_to(wave, (cells,) * 3),
                               atol=1e-3 * amplitude)
    np.testing.assert_allclose(fields["velocity_y"], 0.0, atol=1e-3 * spread)
    np.testing.assert_allclose(fields["velocity_dispersion"], spread, rtol=1e-3)
    a = 1 / (1 + redshift)
    theta = (amplitude * 2 * np.pi / BOX * np.cos(2 * np.pi * centres / BOX)
             / (a * hubble(redshift)))[:, None, None]
    np.testing.assert_allclose(fields["velocity_divergence"],
                               np.broadcast_to(theta, (cells,) * 3),
                               atol=1e-3 * np.abs(theta).max())


def test_vectors_rotate_with_the_grid(tmp_path):
    """Rotating the particles by 90 degrees about z, (x, y) -> (y, L - x) with
    (v_x, v_y) -> (v_y, -v_x), rotates every scalar field and swaps and flips the
    velocity components (cell centres map onto cell centres)."""
    dm, gas = random_particles(2000, seed=5)

    def rotate(p):
        pos, vel = np.asarray(p["positions"]), np.asarray(p["velocities"])
        return {**p, "positions": np.stack([pos[:, 1], BOX - pos[:, 0], pos[:, 2]], 1),
                "velocities": np.stack([vel[:, 1], -vel[:, 0], vel[:, 2]], 1)}

    plain = grid(write_snapshot(tmp_path / "a.hdf5", dm=dm, gas=gas, redshift=0.3)[0],
                 tmp_path, G, name="a.h5")
    turned = grid(write_snapshot(tmp_path / "b.hdf5", dm=rotate(dm), gas=rotate(gas),
                                 redshift=0.3)[0], tmp_path, G, name="b.h5")

    def turn(field):  # field'[i, j, k] = field[G - 1 - j, i, k]
        return field[0, ::-1].transpose(1, 0, 2)

    expected = {name: turn(values) for name, values in plain.items()}
    expected["velocity_x"], expected["velocity_y"] = expected["velocity_y"], -expected["velocity_x"]
    for name, values in expected.items():
        np.testing.assert_allclose(turned[name][0], values, rtol=1e-4,
                                   atol=1e-4 * np.abs(values).max(), err_msg=name)


@pytest.mark.parametrize("family", ["cgs", "gadget4", "swift"])
def test_units_and_conventions_of_other_codes_give_the_same_fields(tmp_path, family):
    dm, gas = random_particles(2000, seed=7)
    reference = grid(write_snapshot(tmp_path / "g.hdf5", dm=dm, gas=gas, redshift=1.5)[0],
                     tmp_path, G, name="g.h5")
    other = write_snapshot(tmp_path / "o" / "snap", n_files=2, dm=dm, gas=gas, redshift=1.5,
                           family=family)
    fields = grid(other[0], tmp_path, G, name="o.h5")
    for name, values in reference.items():
        np.testing.assert_allclose(fields[name], values, rtol=2e-4,
                                   atol=2e-4 * np.abs(values).max(), err_msg=name)


@pytest.mark.parametrize("dim", [2, 3])
def test_several_snapshots_become_several_simulations(tmp_path, dim):
    paths = []
    for i, (z, om, h) in enumerate([(0.0, 0.3, 0.7), (1.0, 0.25, 0.68)]):
        dm, gas = random_particles(1000, seed=i)
        paths += write_snapshot(tmp_path / f"snap_{i:03d}.hdf5", dm=dm, gas=gas, redshift=z,
                                omega_m=om, h=h)
    out = tmp_path / "two.h5"
    snapshot.convert(paths, out, G, dim=dim, slabs=2, progress=False)
    info = h5format.read_info(out)
    per_sim = 1 if dim == 3 else 6
    np.testing.assert_array_equal(info.sim_index, np.repeat([0, 1], per_sim))
    assert info.param_names == ["redshift", "omega_m", "hubble"]
    np.testing.assert_allclose(info.params, np.repeat([[0.0, 0.3, 0.7], [1.0, 0.25, 0.68]],
                                                      per_sim, axis=0), rtol=1e-6)
    assert ("velocity_z" in info.fields) == (dim == 3)


def test_fields_option_and_dark_matter_only(tmp_path, capsys):
    dm, _ = random_particles(500, gas=False)
    path = write_snapshot(tmp_path / "dmo.hdf5", dm=dm)[0]
    fields = grid(path, tmp_path, G)
    assert "temperature" not in fields and "density" in fields
    out = tmp_path / "some.h5"
    assert snapshot.main([str(path), "--out", str(out), "--grid", "8", "--quiet",
                          "--fields", "velocity_divergence,density"]) == 0
    assert list(h5format.read_info(out).fields) == ["density", "velocity_divergence"]
    assert "from 1 snapshots" in capsys.readouterr().out


# ------------------------------------------------------------------------- bad input

def bad_inputs(tmp):
    """{case: (snapshot argument, extra arguments, message part)}; files made in `tmp`."""
    dm, gas = random_particles(200)
    good = write_snapshot(tmp / "good.hdf5", dm=dm, gas=gas)[0]
    (tmp / "text.hdf5").write_text("not hdf5")
    with h5py.File(tmp / "noheader.hdf5", "w") as f:
        f.create_group("PartType1")
    cases = {"not HDF5": (tmp / "text.hdf5", [], "not a readable HDF5 file"),
             "no Header": (tmp / "noheader.hdf5", [], "no /Header group")}
    for attr in ("BoxSize", "Redshift"):
        path = write_snapshot(tmp / f"no{attr}.hdf5", dm=dm, gas=gas)[0]
        with h5py.File(path, "a") as f:
            del f["Header"].attrs[attr]
        cases[f"no {attr}"] = (path, [], f"no {attr} attribute")
    parts = write_snapshot(tmp / "multi" / "snap_001", n_files=3, dm=dm, gas=gas)
    parts[1].unlink()
    cases["missing file of a set"] = (parts[0], [], "snap_001.1.hdf5: missing file 1 of the 3")
    dmo = write_snapshot(tmp / "dmo.hdf5", dm=dm)[0]
    cases["absent particle type"] = (dmo, ["--fields", "temperature"],
                                     "'temperature' needs gas (PartType0)")
    nou = write_snapshot(tmp / "nou.hdf5", dm=dm, gas=gas)[0]
    with h5py.File(nou, "a") as f:
        del f["PartType0/InternalEnergy"]
    cases["gas without InternalEnergy"] = (nou, [], "PartType0/InternalEnergy: missing")
    outside = {**dm, "positions": dm["positions"].copy()}
    outside["positions"][0, 2] = 1.01 * BOX
    cases["outside the box"] = (write_snapshot(tmp / "outside.hdf5", dm=outside)[0], [],
                                "positions outside the box")
    nan = {**gas, "internal_energy": gas["internal_energy"].copy()}
    nan["internal_energy"][5] = np.nan
    cases["NaN"] = (write_snapshot(tmp / "nan.hdf5", dm=dm, gas=nan)[0], [],
                    "NaN or infinite values")
    cases["grid not a power of 2"] = (good, ["--grid", "12"], "--grid must be a power of 2")
    cases["grid zero"] = (good, ["--grid", "0"], "expected a positive integer")
    cases["out is the input"] = (good, ["--out", str(tmp / "multi" / ".." / "good.hdf5"),
                                        "--overwrite"], "is a file of the input snapshot")
    return cases


def test_every_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    cases = bad_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for case, (path, extra, message) in cases.items():
        args = [str(path), "--out", str(out / "x.h5"), "--grid", "8", "--quiet", *extra]
        with pytest.raises(SystemExit) as exit_info:
            cli.run(snapshot.main, args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, case
        assert message in err and "Traceback" not in err, (case, err)
        assert len(err.strip().splitlines()) == 1, (case, err)
        assert list(out.iterdir()) == [], case
    assert cases["out is the input"][0].stat().st_size > 0


def test_command_line_bad_input_is_one_line(tmp_path):
    (tmp_path / "text.hdf5").write_text("not hdf5")
    proc = subprocess.run([sys.executable, "-m", "data_tools.snapshot",
                           str(tmp_path / "text.hdf5"), "--out", str(tmp_path / "o.h5"),
                           "--grid", "8"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'text.hdf5'}: not a readable HDF5 file")
    assert list(tmp_path.iterdir()) == [tmp_path / "text.hdf5"]


# ------------------------------------------------------------------- into training

@pytest.mark.slow
def test_an_imported_file_trains_density_to_temperature(tmp_path):
    """Three snapshots of 2D maps go through experiments.density_to_temp as a user's
    file: input gas_density, target temperature, the simulator off."""
    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as experiment

    rng = np.random.default_rng(11)
    paths = []
    for i in range(3):
        dm, gas = random_particles(4000, seed=20 + i)
        near = rng.integers(0, 64, len(gas["positions"]))  # clumped gas, hotter where dense
        gas["positions"] = (dm["positions"][near] + rng.normal(0, 0.5, (4000, 3))) % BOX
        gas["internal_energy"] = 100 * (1 + np.bincount(near, minlength=64)[near])
        paths += write_snapshot(tmp_path / f"snap_{i:03d}.hdf5", dm=dm, gas=gas)
    data = tmp_path / "maps.h5"
    snapshot.convert(paths, data, 16, dim=2, slabs=2, progress=False)
    c = density_to_temp.get_config("quick")
    c.data.path = str(data)
    c.data.input_field = "gas_density"
    c.data.target_field = "temperature"
    c.data.split_fractions = (1 / 3, 1 / 3, 1 / 3)
    c.data.crop_size = 16
    c.simulate.enabled = False
    c.train.num_steps = 4
    c.train.eval_every = c.train.checkpoint_every = 2
    c.train.batch_size = 2
    c.train.warmup_steps = 1
    c.train.log_every = 2
    c.train.val_batches = 1
    c.eval.n_maps = 1
    c.train.progress = False
    c.eval.statistics = ""
    report = experiment.train_and_evaluate(c, tmp_path / "run")
    assert report["train_steps"] == 4
    assert np.isfinite(report["test"]["mse"]) and -1 <= report["test"]["pixel_corr"] <= 1
