"""data_tools.simulate writes the dark matter's phase-space fields and takes --redshift."""

import h5py
import numpy as np
import pytest

from data_tools import cosmology, inspect, simulate
from fieldnet.cli import run
from fieldnet.data import h5format
from tests.shared import made_once

TINY = dict(n_sims=1, grid=16, box=20.0, seed=3, progress=False)
UNITS_3D = {"density": "mean density", "gas_density": "mean density", "temperature": "K",
            "velocity_x": "km/s", "velocity_y": "km/s", "velocity_z": "km/s",
            "velocity_dispersion": "km/s", "velocity_divergence": "dimensionless"}
POSITIVE = {"density", "gas_density", "temperature", "velocity_dispersion"}


NAMES = {"3d": "z0.h5", "3d_z1": "z1.h5", "2d": "maps.h5"}


def _simulate(folder):
    simulate.simulate_dataset(folder / NAMES["3d"], dim=3, **TINY)
    simulate.simulate_dataset(folder / NAMES["3d_z1"], dim=3, redshift=1.0, **TINY)
    simulate.simulate_dataset(folder / NAMES["2d"], dim=2, slabs=2, **TINY)


@pytest.fixture(scope="module")
def files():
    """The three small files, simulated once for all workers (`made_once`)."""
    folder = made_once("simulate_fields", _simulate)
    return {key: folder / name for key, name in NAMES.items()}


def read(path):
    with h5py.File(path) as f:
        return {name: f[f"fields/{name}"][...] for name in f["fields"]}


@pytest.mark.parametrize("which", ["3d", "2d"])
def test_the_fields_have_the_contract_names_units_and_floors(files, which):
    info = h5format.read_info(files[which])
    units = dict(UNITS_3D)
    if which == "2d":
        del units["velocity_z"]
        units.update(density="M_sun/h", gas_density="M_sun/h")
    assert {name: f.units for name, f in info.fields.items()} == units
    for name, field in info.fields.items():
        assert ("z = 0" in field.description) and (field.log_floor is not None) == (
            name in POSITIVE), name
        assert field.shape == info.fields["density"].shape
    fields = read(files[which])
    assert all(np.all(np.isfinite(values)) for values in fields.values())
    assert all(np.all(fields[name] >= 0) for name in POSITIVE)
    assert "velocity_divergence" in inspect.summarize(files[which])["fieldnet"]["fields"]


def test_maps_and_grids_of_one_box_agree(files):
    """The same simulation as 3D grids and as 2D maps: the gas holds the box's mass in each
    projection (Delta_g is smoothed, so its mean is 1 but for its floor), and the maps'
    mass-weighted velocity is the grids' mass-weighted velocity, slab by slab."""
    grids, maps = read(files["3d"]), read(files["2d"])
    with h5py.File(files["2d"]) as f:
        omega_m = float(f["params"][0, 0])
    box_mass = cosmology.RHO_CRIT * omega_m * 20.0**3
    for axis in range(3):
        assert maps["gas_density"][2 * axis:2 * axis + 2].sum(dtype=np.float64) == \
            pytest.approx(box_mass, rel=1e-3)
    rho = grids["density"][0].astype(np.float64)
    for axis, (first, second) in enumerate([("y", "z"), ("x", "z"), ("x", "y")]):
        for c, name in ((first, "velocity_x"), (second, "velocity_y")):
            flow = np.moveaxis(grids[f"velocity_{c}"][0] * rho, axis, 0).reshape(2, 8, 16, 16)
            mass = np.moveaxis(rho, axis, 0).reshape(2, 8, 16, 16).sum(axis=1)
            expected = flow.sum(axis=1) / np.where(mass > 0, mass, np.inf)
            got = maps[name][2 * axis:2 * axis + 2]
            # float32 fields of ~300 km/s, averaged over 8 cells
            np.testing.assert_allclose(got[mass > 0], expected[mass > 0], atol=1e-2)


def test_redshift_sets_the_time_of_the_fields(files):
    with h5py.File(files["3d_z1"]) as f:
        assert f.attrs["redshift"] == 1.0
        assert "z = 1" in f["fields/velocity_divergence"].attrs["description"]
    with h5py.File(files["3d"]) as f:
        assert f.attrs["redshift"] == 0.0
    now, then = read(files["3d"]), read(files["3d_z1"])
    assert np.std(then["density"]) < 0.8 * np.std(now["density"])  # D(z=1) / D(0) ~ 0.6
    assert not np.array_equal(now["temperature"], then["temperature"])


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "9"])
def test_bad_redshift_exits_2_with_a_reason(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        run(simulate.main, ["--out", str(tmp_path / "x.h5"), f"--redshift={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--redshift" in err and "\n" not in err
    assert not (tmp_path / "x.h5").exists()
