import subprocess
import sys

import h5py
import numpy as np
import pytest

from data_tools import camels
from fieldnet import cli, data
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError

SUITE, SET = "IllustrisTNG", "LH"
N_SIMS = 2
N_MAPS = N_SIMS * 15
PARAMS = np.array([[0.3, 0.8, 1.0, 1.0, 1.0, 1.0], [0.25, 0.9, 2.0, 0.5, 1.5, 0.7]])


def write_cmd_maps(folder, n_maps=N_MAPS, fields=("Mtot", "T"), dtype=np.float32):
    rng = np.random.default_rng(0)
    maps = {}
    for field in fields:
        maps[field] = np.exp(rng.normal(10, 1, size=(n_maps, 256, 256))).astype(dtype)
        np.save(folder / f"Maps_{field}_{SUITE}_{SET}_z=0.00.npy", maps[field])
    np.savetxt(folder / f"params_{SET}_{SUITE}.txt", PARAMS)
    return maps


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_tools.camels", *map(str, args)],
                          capture_output=True, text=True)


def test_maps_round_trip(tmp_path):
    maps = write_cmd_maps(tmp_path)
    out = tmp_path / "cmd.h5"
    result = run_cli("--maps-dir", tmp_path, "--input", "Mtot", "--target", "T",
                     "--suite", SUITE, "--set", SET, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "30 samples" in result.stdout and "2 simulations" in result.stdout
    info = h5format.read_info(out)
    assert info.ndim == 2 and info.box_size == 25.0
    assert info.fields["Mtot"].units == "(M_sun/h)/(Mpc/h)^2" and info.fields["T"].units == "K"
    assert info.fields["T"].log_floor is None
    np.testing.assert_array_equal(info.sim_index, np.arange(N_MAPS) // 15)
    assert info.param_names == ["Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2"]
    np.testing.assert_allclose(info.params, PARAMS[np.arange(N_MAPS) // 15], rtol=1e-6)
    with h5py.File(out) as f:
        for field in ("Mtot", "T"):
            np.testing.assert_array_equal(f[f"fields/{field}"][...], maps[field])
    # The loader reads it by CMD names.
    cfg = data.default_config()
    cfg.update(path=str(out), input_field="Mtot", target_field="T", crop_size=64, prefetch=0,
               split_fractions=(0.5, 0.5, 0.0))
    ds = data.FieldDataset(cfg)
    assert ds.batch("train", 2, 0, 0)["x"].shape == (2, 64, 64, 1)


def test_zeros_get_a_log_floor(tmp_path):
    maps = write_cmd_maps(tmp_path, fields=("Mtot", "Mstar"))
    maps["Mstar"][3, :10] = 0.0
    np.save(tmp_path / f"Maps_Mstar_{SUITE}_{SET}_z=0.00.npy", maps["Mstar"])
    out = camels.convert(tmp_path, ["Mtot"], "Mstar", SUITE, SET, tmp_path / "o.h5")
    floor = h5format.read_info(out).fields["Mstar"].log_floor
    assert floor == pytest.approx(maps["Mstar"][maps["Mstar"] > 0].min())


def test_a_negative_value_is_an_error_not_floored(tmp_path):
    maps = write_cmd_maps(tmp_path, fields=("Mtot", "Mstar"))
    maps["Mstar"][3, :10] = 0.0
    maps["Mstar"][4, 5, 6] = -2.5
    np.save(tmp_path / f"Maps_Mstar_{SUITE}_{SET}_z=0.00.npy", maps["Mstar"])
    with pytest.raises(FieldnetError, match=r"Maps_Mstar_.*\.npy\[4\]: negative value -2\.5 "):
        camels.convert(tmp_path, ["Mtot"], "Mstar", SUITE, SET, tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def test_grids(tmp_path):
    rng = np.random.default_rng(1)
    grids = {}
    for field in ("Mtot", "T"):
        grids[field] = np.exp(rng.normal(size=(N_SIMS, 16, 16, 16))).astype(np.float32)
        np.save(tmp_path / f"Grids_{field}_{SUITE}_{SET}_16_z=0.00.npy", grids[field])
    np.savetxt(tmp_path / f"params_{SET}_{SUITE}.txt", PARAMS)
    out = camels.convert(tmp_path, ["Mtot"], "T", SUITE, SET, tmp_path / "g.h5", grid_res=16)
    info = h5format.read_info(out)
    assert info.ndim == 3 and info.fields["Mtot"].units == "(M_sun/h)/(Mpc/h)^3"
    np.testing.assert_array_equal(info.sim_index, [0, 1])
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["fields/T"][...], grids["T"])


def test_bad_inputs_fail_in_one_line(tmp_path):
    write_cmd_maps(tmp_path)
    base = ["--maps-dir", tmp_path, "--input", "Mtot", "--suite", SUITE, "--set", SET]
    cases = {
        "missing field": ([*base, "--target", "Mgas", "--out", tmp_path / "a.h5"],
                          "Maps_Mgas_IllustrisTNG_LH_z=0.00.npy: no such file"),
        "missing dir": (["--maps-dir", tmp_path / "none", "--input", "Mtot", "--target", "T",
                         "--out", tmp_path / "b.h5"], "no such directory"),
    }
    for name, (args, message) in cases.items():
        result = run_cli(*args)
        assert result.returncode == 2, name
        assert message in result.stderr and "Traceback" not in result.stderr, name
        assert len(result.stderr.strip().splitlines()) == 1, name
    assert not (tmp_path / "a.h5").exists()


def test_mismatched_count_dtype_and_shape(tmp_path):
    write_cmd_maps(tmp_path, n_maps=29)
    with pytest.raises(FieldnetError, match=r"params_LH_IllustrisTNG\.txt: 2 simulations x 15"):
        camels.convert(tmp_path, ["Mtot"], "T", SUITE, SET, tmp_path / "o.h5")
    np.save(tmp_path / f"Maps_T_{SUITE}_{SET}_z=0.00.npy", np.ones((30, 256, 256), np.int32))
    with pytest.raises(FieldnetError, match=r"Maps_T_IllustrisTNG_LH_z=0\.00\.npy: dtype int32"):
        camels.convert(tmp_path, ["Mtot"], "T", SUITE, SET, tmp_path / "o.h5")
    np.save(tmp_path / f"Maps_T_{SUITE}_{SET}_z=0.00.npy", np.ones((30, 256), np.float32))
    with pytest.raises(FieldnetError, match=r"shape \(30, 256\), expected \(N, R, R\)"):
        camels.convert(tmp_path, ["Mtot"], "T", SUITE, SET, tmp_path / "o.h5")


def test_existing_output_needs_overwrite(tmp_path, capsys):
    write_cmd_maps(tmp_path)
    out = tmp_path / "cmd.h5"
    out.write_text("keep me")
    args = ["--maps-dir", str(tmp_path), "--input", "Mtot", "--target", "T", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        cli.run(camels.main, args, flags=cli.OVERWRITE_FLAG)
    assert exit_info.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
