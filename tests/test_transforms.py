import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fieldnet import data, symmetry
from fieldnet.data import h5format
from fieldnet.data.dataset import transform_fields
from fieldnet.data.transforms import (
    TRANSFORMS,
    FieldStats,
    Normalizer,
    RunningMoments,
    exp10,
    log10_floored,
    parse_transforms,
    resolve_transforms,
)
from fieldnet.errors import FieldnetError

ROOT = Path(__file__).resolve().parents[1]
EPS = float(np.finfo(np.float32).eps)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_log_roundtrip_and_floor():
    x = np.array([1e-3, 1.0, 1e5], np.float32)
    np.testing.assert_allclose(exp10(log10_floored(x)), x, rtol=1e-5)
    # zeros and positive values below the floor (empty cells) are raised to it
    floored = log10_floored(np.array([0.0, 1e-8, 10.0], np.float32), floor=1e-4)
    np.testing.assert_allclose(floored, [-4, -4, 1], rtol=1e-6)


def test_non_positive_without_floor_names_the_data():
    with pytest.raises(FieldnetError, match=r"f\.h5:fields/T\[3\]: non-positive value 0"):
        log10_floored(np.array([1.0, 0.0], np.float32), where="f.h5:fields/T[3]")
    with pytest.raises(FieldnetError, match="floor must be positive"):
        log10_floored(np.ones(2, np.float32), floor=0.0)
    with pytest.raises(FieldnetError, match="theta:none or theta:asinh") as err:
        log10_floored(np.array([1.0, -2.0], np.float32), where="f.h5:fields/theta[0]",
                      field="theta")
    assert one_line(err).startswith("f.h5:fields/theta[0]: negative value -2 where")


def test_negative_value_under_a_log_floor_is_an_error_naming_the_value():
    with pytest.raises(FieldnetError) as err:
        log10_floored(np.array([0.0, 5.0, -0.25], np.float32), floor=1e-3,
                      where="f.h5:fields/T[3]", field="T")
    message = one_line(err)
    assert message.startswith("f.h5:fields/T[3]: negative value -0.25")
    assert "data.transforms=T:none" in message
    with pytest.raises(FieldnetError, match=r"f\.h5:fields/T\[3\]: NaN value"):
        log10_floored(np.array([1.0, np.nan], np.float32), floor=1e-3, where="f.h5:fields/T[3]")
    with pytest.raises(FieldnetError, match="NaN value"):
        log10_floored(np.array([1.0, np.nan], np.float32))


def test_running_moments_match_numpy_across_chunks():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=10_000)
    moments = RunningMoments()
    for chunk in np.array_split(values, 7):
        moments.update(chunk)
    mean, std = moments.mean_std()
    assert mean == pytest.approx(values.mean(), rel=1e-10)
    assert std == pytest.approx(values.std(), rel=1e-8)


def test_normalizer_fit_forward_inverse():
    rng = np.random.default_rng(1)
    rho = np.exp(rng.normal(1.0, 2.0, size=(4, 32, 32))).astype(np.float32)
    vel = rng.normal(5.0, 3.0, size=(4, 32, 32, 2)).astype(np.float32)
    norm = Normalizer.fit({"rho": lambda: ((r, "rho") for r in rho),
                           "v": lambda: ((v, "v") for v in vel)},
                          floors={"rho": None}, vector_components={"v": 2})
    z = norm.forward("rho", rho)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-4
    np.testing.assert_allclose(norm.inverse("rho", z), rho, rtol=1e-4)
    # Vectors are scaled, never shifted, so that reflections commute with normalization.
    assert norm["v"].mean == 0.0 and norm["v"].transform == "none"
    np.testing.assert_allclose(norm.forward("v", -vel), -norm.forward("v", vel))
    both = np.concatenate([rho[..., None], vel], axis=-1)
    back = norm.inverse_channels(["rho", "v"], norm.forward_channels(["rho", "v"], both))
    np.testing.assert_allclose(back, both, rtol=1e-4, atol=1e-5)


def signed_values(rng, shape, scale=1.0):
    """A heavy-tailed signed field: Student-t with 3 degrees of freedom."""
    return (scale * rng.standard_t(3, size=shape)).astype(np.float32)


def test_each_transform_round_trips_to_float32_precision():
    rng = np.random.default_rng(2)
    values = {"log10": np.exp(rng.normal(0.0, 4.0, size=(3, 16, 16))).astype(np.float32),
              "none": signed_values(rng, (3, 16, 16), 50.0),
              "asinh": signed_values(rng, (3, 16, 16), 50.0)}
    assert set(values) == set(TRANSFORMS)
    for name, x in values.items():
        norm = Normalizer.fit({"f": lambda x=x: ((s, "f") for s in x)}, floors={},
                              vector_components={}, transforms={"f": name})
        stats = norm["f"]
        z = stats.forward(x)
        assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-4
        t = stats.unstandardize(z)
        # the error of t is a few roundings of z * std + mean (and of the transform itself)
        t_err = 8 * EPS * (np.abs(t).max() + abs(stats.mean) + np.abs(z).max() * stats.std)
        back = stats.inverse(z)
        if name == "log10":   # d(10^t) / 10^t = ln(10) dt
            np.testing.assert_allclose(back, x, rtol=np.log(10) * t_err + 4 * EPS)
        elif name == "none":
            np.testing.assert_allclose(back, x, rtol=0, atol=t_err)
        else:   # x = s sinh(t): |dx| <= s cosh(t) dt <= (s + |x|) dt
            np.testing.assert_array_less(np.abs(back - x),
                                         (stats.scale + np.abs(x)) * t_err + 4 * EPS * np.abs(x))


def write_file(path, fields, sims=6, per_sim=2, log_floors=None):
    n = sims * per_sim
    return h5format.write_arrays(path, fields, ndim=2, box_size=25.0, source="test",
                                 sim_index=np.repeat(np.arange(sims), per_sim)[:n],
                                 log_floors=log_floors, units={name: "" for name in fields})


def dataset_config(path, **kw):
    c = data.default_config()
    c.update(path=str(path), crop_size=8, split_sims={"train": [0, 1, 2, 3], "val": [4],
                                                      "test": [5]}, augment=False, **kw)
    return c


def old_fit_and_forward(ds, fields):
    """The standardization as it was before transforms had names: every scalar log10 with its
    floor, vectors divided by their RMS; returns ({name: (mean, std)}, forward(name, x))."""
    stats = {}
    for f in fields:
        moments = RunningMoments()
        for r in ds.splits["train"]:
            for block, _ in ds.source.iter_blocks(f, r.sample, r.lo, r.hi):
                moments.update(block if f.is_vector else np.log10(
                    np.maximum(block, np.float32(f.log_floor))))
        mean, std = moments.mean_std(centered=not f.is_vector)
        stats[f.name] = (0.0 if f.is_vector else mean, std)

    def forward(f, x):
        mean, std = stats[f.name]
        if f.is_vector:
            return np.asarray(x, np.float32) / np.float32(std)
        return (np.log10(np.maximum(x, np.float32(f.log_floor))) - np.float32(mean)) \
            / np.float32(std)
    return stats, forward


def test_default_transforms_are_the_old_log10_standardization_bit_for_bit(tmp_path):
    rng = np.random.default_rng(3)
    rho = rng.lognormal(size=(12, 16, 16)).astype(np.float32)
    rho[0, :2] = 0.0   # empty cells, raised to the floor
    path = write_file(tmp_path / "a.h5", {
        "density": rho, "temperature": (1e4 * (rho + 0.1) ** 0.6).astype(np.float32),
        "velocity_x": rng.normal(3, 2, rho.shape).astype(np.float32),
        "velocity_y": rng.normal(-1, 2, rho.shape).astype(np.float32)},
        log_floors={"density": 1e-3, "temperature": 10.0})
    with data.FieldDataset(dataset_config(path, input_field="density,velocity",
                                          vector_fields="velocity")) as ds:
        fields = ds.inputs + ds.targets
        old_stats, old_forward = old_fit_and_forward(ds, fields)
        for f in fields:
            assert (ds.normalizer[f.name].mean, ds.normalizer[f.name].std) == old_stats[f.name]
        assert [ds.normalizer[f.name].transform for f in fields] == ["log10", "none", "log10"]
        test = ds.read("test")
        old_x = np.concatenate([old_forward(f, test["x_phys"][..., i:i + f.components])
                                for i, f in zip((0, 1), ds.inputs, strict=True)], axis=-1)
        np.testing.assert_array_equal(test["x"], old_x)
        np.testing.assert_array_equal(test["y"], old_forward(ds.targets[0], test["y_phys"]))
        # a normalizer file written before transforms had names reads back the same
        old_json = {"fields": [{"name": f.name, "mean": old_stats[f.name][0],
                                "std": old_stats[f.name][1], "log": not f.is_vector,
                                "floor": f.log_floor, "components": f.components}
                               for f in fields]}
        (tmp_path / "normalizer.json").write_text(json.dumps(old_json))
        assert Normalizer.load(tmp_path / "normalizer.json") == ds.normalizer


def test_asinh_scale_is_the_mean_magnitude_of_the_train_split_only(tmp_path):
    rng = np.random.default_rng(4)
    theta = signed_values(rng, (12, 16, 16))
    theta[10:] *= 100.0   # the test simulation (sim 5) is much larger
    path = write_file(tmp_path / "s.h5", {"theta": theta,
                                          "temperature": np.exp(theta / 100).astype(np.float32)})
    with data.FieldDataset(dataset_config(path, input_field="theta",
                                          transforms="theta:asinh")) as ds:
        stats = ds.normalizer["theta"]
        train = [r.sample for r in ds.splits["train"]]
        assert stats.transform == "asinh"
        assert stats.scale == pytest.approx(np.abs(theta[train].astype(np.float64)).mean(),
                                            rel=1e-12)
        assert stats.scale < 0.1 * np.abs(theta).mean()
        t = np.arcsinh(theta[train].astype(np.float64) / stats.scale)
        assert stats.mean == pytest.approx(t.mean(), abs=1e-6)
        assert stats.std == pytest.approx(t.std(), rel=1e-6)
        assert stats.space == f"asinh(theta / {stats.scale:.4g})"
        saved = Normalizer.from_json(json.loads(json.dumps(ds.normalizer.to_json())))
        assert saved == ds.normalizer and saved["theta"].scale == stats.scale


def test_transforms_config_is_parsed_per_field():
    assert parse_transforms("") == {}
    assert parse_transforms(" theta:none , sigma:asinh,") == {"theta": "none", "sigma": "asinh"}
    assert resolve_transforms("theta:none", ["density", "theta", "v", "temperature"], ["v"]) == {
        "density": "log10", "theta": "none", "v": "none", "temperature": "log10"}
    assert resolve_transforms("v:none", ["v", "temperature"], ["v"])["v"] == "none"
    assert data.default_config().transforms == ""


@pytest.mark.parametrize("transforms, expected", [
    ("velocity_divergence:sqrt", "field 'velocity_divergence': unknown transform 'sqrt'"),
    ("velocity_divergence", "entry 'velocity_divergence' is not field:transform"),
    ("velocity_divergence:", "entry 'velocity_divergence:' is not field:transform"),
    ("pressure:none", "field 'pressure' is neither an input nor a target"),
    ("velocity:asinh", "field 'velocity' is a vector"),
    ("velocity:log10", "field 'velocity' is a vector"),
    ("velocity_divergence:none,velocity_divergence:asinh",
     "field 'velocity_divergence' is named twice"),
])
def test_bad_transforms_fail_in_one_line_before_any_file_is_read(tmp_path, transforms, expected):
    config = dataset_config(tmp_path / "does_not_exist.h5", input_field="velocity_divergence,"
                            "velocity", vector_fields="velocity", transforms=transforms)
    with pytest.raises(FieldnetError) as err:
        data.FieldDataset(config)
    message = one_line(err)
    assert message.startswith("data.transforms:") and expected in message


def test_missing_fields_and_vector_components_are_named(tmp_path):
    rng = np.random.default_rng(5)
    rho = rng.lognormal(size=(12, 8, 8)).astype(np.float32)
    path = write_file(tmp_path / "v.h5", {"density": rho, "temperature": rho,
                                          "velocity_x": rho - 1})
    with pytest.raises(FieldnetError) as err:
        data.FieldDataset(dataset_config(path, input_field="density,velocity",
                                         vector_fields="velocity"))
    assert one_line(err).startswith(f"{path}:fields/velocity_y: missing component of vector "
                                    "field 'velocity'")
    with pytest.raises(FieldnetError) as err:
        data.FieldDataset(dataset_config(path, input_field="pressure"))
    assert one_line(err).startswith(f"{path}:fields/pressure: missing dataset for field "
                                    "'pressure'; the file has ['density', 'temperature', "
                                    "'velocity_x']")
    with pytest.raises(FieldnetError) as err:
        data.FieldDataset(dataset_config(path, target_field="momentum", vector_fields="momentum"))
    assert "fields/momentum_x: missing (vector field 'momentum'" in one_line(err)
    assert "the file has ['density', 'temperature', 'velocity_x']" in str(err.value)


def test_log10_of_a_signed_field_names_it_and_suggests_a_transform(tmp_path):
    rng = np.random.default_rng(6)
    theta = signed_values(rng, (12, 8, 8))
    path = write_file(tmp_path / "t.h5", {"theta": theta, "temperature": np.exp(theta)},
                      log_floors={"theta": 1e-3})
    with pytest.raises(FieldnetError) as err:
        data.FieldDataset(dataset_config(path, input_field="theta"))
    message = one_line(err)
    assert "fields/theta[" in message and "negative value" in message
    assert "data.transforms=theta:none or theta:asinh" in message
    with data.FieldDataset(dataset_config(path, input_field="theta",
                                          transforms="theta:none")) as ds:
        assert ds.normalizer["theta"].transform == "none"
        assert ds.normalizer["theta"].space == "theta"
        assert ds.normalizer["theta"].floor is None   # the file's log floor is log10's only


def test_a_run_normalizer_with_another_transform_is_refused(tmp_path):
    rng = np.random.default_rng(7)
    theta = signed_values(rng, (12, 8, 8))
    path = write_file(tmp_path / "t.h5", {"theta": theta, "temperature": np.exp(theta)})
    with data.FieldDataset(dataset_config(path, input_field="theta",
                                          transforms="theta:none")) as ds:
        normalizer = ds.normalizer
    with pytest.raises(FieldnetError, match="field 'theta': the normalizer's transform is none, "
                       "data.transforms asks for asinh"):
        data.FieldDataset(dataset_config(path, input_field="theta", transforms="theta:asinh"),
                          normalizer=normalizer)


@pytest.mark.parametrize("transforms", ["", "theta:none,velocity:none", "theta:asinh"])
def test_standardization_commutes_with_the_group(tmp_path, transforms):
    rng = np.random.default_rng(8)
    shape = (12, 8, 8)
    path = write_file(tmp_path / "g.h5", {
        "theta": signed_values(rng, shape), "temperature": rng.lognormal(size=shape),
        "velocity_x": signed_values(rng, shape, 30.0),
        "velocity_y": signed_values(rng, shape, 30.0)})
    with data.FieldDataset(dataset_config(path, input_field="velocity,theta",
                                          vector_fields="velocity",
                                          transforms=transforms or "theta:none")) as ds:
        x = ds.read("test")["x_phys"]
        names = ds.input_names
        for g in symmetry.group_elements(2):
            moved = transform_fields(x, ds.inputs, g, first_spatial_axis=1)
            np.testing.assert_array_equal(
                ds.normalizer.forward_channels(names, moved),
                transform_fields(ds.normalizer.forward_channels(names, x), ds.inputs, g, 1))
    with pytest.raises(FieldnetError, match="field 'v' is a vector; it takes none only"):
        Normalizer.fit({"v": lambda: iter([(x[..., :2], "v")])}, floors={},
                       vector_components={"v": 2}, transforms={"v": "asinh"})


def test_normalizer_json_and_file_roundtrip(tmp_path):
    norm = Normalizer([FieldStats("density", 0.1, 0.5), FieldStats("T", 4.0, 0.3, floor=10.0),
                       FieldStats("theta", 0.0, 1.2, "asinh", scale=0.7)])
    assert Normalizer.from_json(norm.to_json()) == norm
    norm.save(tmp_path / "normalizer.json")
    assert Normalizer.load(tmp_path / "normalizer.json") == norm
    with pytest.raises(FieldnetError, match="no such normalizer file"):
        Normalizer.load(tmp_path / "missing.json")
    with pytest.raises(FieldnetError, match="no field 'velocity'"):
        norm["velocity"]
    with pytest.raises(FieldnetError, match="field 'x': unknown transform 'sqrt'"):
        Normalizer.from_json({"fields": [{"name": "x", "mean": 0, "std": 1, "transform": "sqrt"}]})
    with pytest.raises(FieldnetError, match="asinh needs a positive scale"):
        FieldStats("x", 0.0, 1.0, "asinh")


def test_channel_count_mismatch_is_an_error():
    norm = Normalizer([FieldStats("density", 0.0, 1.0)])
    with pytest.raises(FieldnetError, match="expected 1 channels"):
        norm.forward_channels(["density"], np.ones((4, 4, 2), np.float32))


@pytest.mark.slow
def test_signed_input_trains_evaluates_and_predicts(tmp_path):
    """A tiny run on a signed input field and a vector, evaluated, and predicted through the
    command line with the run's saved transforms."""
    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as study

    rng = np.random.default_rng(9)
    k = np.fft.fftfreq(16)
    smooth = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 0.02)
    noise = rng.normal(size=(12, 16, 16))
    theta = np.fft.ifft2(np.fft.fft2(noise) * smooth).real
    theta = ((theta - theta.mean()) / theta.std()).astype(np.float32)
    temperature = (1e4 * 10 ** (0.3 * theta)).astype(np.float32)
    velocity = signed_values(rng, (12, 16, 16, 2), 100.0)
    path = write_file(tmp_path / "signed.h5", {"theta": theta, "temperature": temperature,
                                               "velocity_x": velocity[..., 0],
                                               "velocity_y": velocity[..., 1]})
    overrides = {"data.path": str(path), "data.input_field": "theta,velocity",
                 "data.vector_fields": "velocity", "data.crop_size": 16,
                 "data.transforms": "theta:asinh,velocity:none", "simulate.enabled": False,
                 "train.num_steps": 4, "train.warmup_steps": 2, "train.eval_every": 4,
                 "train.checkpoint_every": 4, "train.progress": False, "eval.n_maps": 1}
    # the command line takes the key, and refuses a bad value in one line before any work
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.density_to_temp",
         "--config=experiments/configs/density_to_temp.py:quick", f"--workdir={tmp_path}/bad",
         *(f"--config.{key}={value}" for key, value in overrides.items() if key != "data.path"),
         f"--config.data.path={tmp_path}/absent.h5", "--config.data.transforms=theta:sqrt"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: data.transforms: field 'theta': unknown transform 'sqrt'; expected one of "
        "log10, none, asinh"], bad.stderr[-2000:]
    assert not (tmp_path / "bad").exists()
    config = density_to_temp.get_config("quick")
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    workdir = tmp_path / "run"
    result = study.train_and_evaluate(config, workdir)
    saved = Normalizer.load(workdir / "normalizer.json")
    assert [saved[name].transform for name in ("theta", "velocity", "temperature")] == [
        "asinh", "none", "log10"]
    assert json.loads((workdir / "config.json").read_text())["data"]["transforms"] == \
        "theta:asinh,velocity:none"
    assert np.isfinite(result["test"]["mse"]) and result["n_test"] == 2
    out = tmp_path / "pred.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.predict", "--workdir", str(workdir), "--input",
         str(path), "--output", str(out), "--tile", "16", "--batch", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(out) as f:
        pred = f["fields/temperature"][...]
    assert pred.shape == temperature.shape and np.isfinite(pred).all() and pred.min() > 0
    # the prediction is the model's output mapped back through the run's normalizer
    from fieldnet.inference import open_run, predict_field

    run = open_run(workdir)
    model, normalizer = run.model, run.normalizer
    z = normalizer.forward_channels(["theta", "velocity"],
                                    np.concatenate([theta[3][..., None], velocity[3]], -1))
    expected = normalizer.inverse_channels(["temperature"], predict_field(model, z, 16, 4))
    np.testing.assert_allclose(pred[3], expected[..., 0], rtol=1e-5)
