"""Conditioning on simulation parameters: the data side (names, train-split statistics,
batches), which the models' FiLM layers consume."""

import numpy as np
import pytest

from fieldnet import data
from fieldnet.data import h5format
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError


@pytest.fixture(scope="module")
def param_file(tmp_path_factory):
    """Eight simulations of two 16^2 maps each, with parameters (a, b) per simulation."""
    rng = np.random.default_rng(0)
    rho = np.exp(rng.normal(size=(16, 16, 16))).astype(np.float32)
    sims = np.repeat(np.arange(8), 2)
    params = np.stack([1.0 + sims, 10.0 - 2.0 * sims], axis=1).astype(np.float32)
    path = tmp_path_factory.mktemp("params") / "p.h5"
    return h5format.write_arrays(path, {"density": rho, "temperature": 1e4 * rho},
                                 ndim=2, box_size=10.0, source="test", sim_index=sims,
                                 units={"density": "mean", "temperature": "K"},
                                 params=params, param_names=["a", "b"])


def config(path, **overrides):
    c = data.default_config()
    c.path = str(path)
    c.crop_size = 8
    c.split_fractions = (0.5, 0.25, 0.25)
    c.prefetch = 0
    c.update(overrides)
    return c


def test_unconditioned_batches_carry_no_parameters(param_file):
    with data.FieldDataset(config(param_file)) as ds:
        assert ds.cond_dim == 0 and "cond" not in ds.batch("train", 4, 0, 0)
        assert ds.read("test")["cond"] is None


def test_parameters_are_standardized_with_the_train_split(param_file):
    with data.FieldDataset(config(param_file, condition_on="b,a")) as ds:
        assert ds.cond_dim == 2 and ds.condition_names == ["b", "a"]
        train = ds.read("train")
        cond = train["cond"]
        np.testing.assert_allclose(cond.mean(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(cond.std(axis=0), 1.0, rtol=1e-5)
        # columns in condition_on's order; b falls as a rises
        np.testing.assert_allclose(cond[:, 0], -cond[:, 1], atol=1e-6)
        batch = ds.batch("train", 4, 0, 3)
        assert batch["cond"].shape == (4, 2) and batch["cond"].dtype == np.float32
        np.testing.assert_array_equal(batch["cond"], ds.batch("train", 4, 0, 3)["cond"])
        saved = Normalizer.from_json(ds.normalizer.to_json())
    assert saved == ds.normalizer and set(saved.params) == {"a", "b"}
    with data.FieldDataset(config(param_file, condition_on="b,a"), normalizer=saved) as again:
        np.testing.assert_array_equal(again.read("test")["cond"], ds_test_cond(param_file))


def test_condition_noise_perturbs_training_parameters_only(param_file):
    with data.FieldDataset(config(param_file, condition_on="a")) as exact, \
            data.FieldDataset(config(param_file, condition_on="a", condition_noise=0.3)) as noisy:
        a, b = exact.batch("train", 64, 0, 2), noisy.batch("train", 64, 0, 2)
        np.testing.assert_array_equal(a["x"], b["x"])   # the same crops and symmetries
        offsets = b["cond"] - a["cond"]
        # 64 draws of N(0, 0.3^2): the sample std is within 5 standard errors of 0.3
        assert abs(offsets.std() - 0.3) < 5 * 0.3 / np.sqrt(2 * 64)
        np.testing.assert_array_equal(b["cond"], noisy.batch("train", 64, 0, 2)["cond"])
        for split in ("val", "test"):
            np.testing.assert_array_equal(exact.batch(split, 4, 0, 1)["cond"],
                                          noisy.batch(split, 4, 0, 1)["cond"])


def ds_test_cond(path):
    with data.FieldDataset(config(path, condition_on="b,a")) as ds:
        return ds.read("test")["cond"]


def test_unknown_or_absent_parameters_are_one_line(param_file, tmp_path):
    with pytest.raises(FieldnetError, match=r"no parameter\(s\) \['c'\].*file has \['a', 'b'\]"):
        data.FieldDataset(config(param_file, condition_on="a,c"))
    with data.FieldDataset(config(param_file)) as ds:
        unconditioned = ds.normalizer
    with pytest.raises(FieldnetError, match="no statistics for \\['a'\\]"):
        data.FieldDataset(config(param_file, condition_on="a"), normalizer=unconditioned)
    rho = np.ones((2, 8, 8), np.float32)
    bare = h5format.write_arrays(tmp_path / "bare.h5", {"density": rho, "temperature": rho},
                                 ndim=2, box_size=1.0, source="test", sim_index=[0, 1],
                                 units={"density": "mean", "temperature": "K"})
    with pytest.raises(FieldnetError, match="params: missing"):
        data.FieldDataset(config(bare, condition_on="a", split_fractions=(0.5, 0.5, 0.0)))


def tiny_conditioned_config(path):
    """The study's quick config shrunk to a 4-step run conditioned on (a, b) of `path`'s
    16² maps, 8 simulations split 4 / 2 / 2."""
    from experiments.configs import density_to_temp

    c = density_to_temp.get_config("quick")
    c.data.path, c.data.crop_size, c.data.condition_on = str(path), 16, "a,b"
    c.data.split_fractions = (0.5, 0.25, 0.25)
    c.model.width, c.model.depth, c.model.channel_mult = 4, 1, (1, 2)
    c.train.num_steps, c.train.warmup_steps, c.train.batch_size = 4, 1, 4
    c.train.eval_every = c.train.checkpoint_every = c.train.log_every = 2
    c.train.progress = False
    return c


@pytest.mark.slow
def test_a_conditioned_run_trains_evaluates_and_predicts(param_file, tmp_path):
    from experiments.studies import density_to_temp as study
    from fieldnet import rundir
    from fieldnet.inference import predict_file

    report = study.train_and_evaluate(tiny_conditioned_config(param_file), tmp_path / "run")
    assert report["train_steps"] == 4 and np.isfinite(report["test"]["mse"])
    io = rundir.read_json(rundir.model_io(tmp_path / "run"))
    assert io["condition_on"] == ["a", "b"]

    predict_file(tmp_path / "run", param_file, tmp_path / "from_file.h5", progress=False)
    predict_file(tmp_path / "run", param_file, tmp_path / "given.h5", progress=False,
                 params={"a": 1.0, "b": 10.0})
    with h5format.open_file(tmp_path / "from_file.h5") as f, \
            h5format.open_file(tmp_path / "given.h5") as g:
        # sample 0 is simulation 0, whose parameters are (1, 10): the same prediction
        np.testing.assert_allclose(f["fields/temperature"][0], g["fields/temperature"][0],
                                   rtol=1e-6)
    with pytest.raises(FieldnetError, match=r"conditioned on \['a', 'b'\] only"):
        predict_file(tmp_path / "run", param_file, tmp_path / "x.h5", progress=False,
                     params={"c": 1.0})
    rho = np.ones((1, 16, 16), np.float32)
    bare = h5format.write_arrays(tmp_path / "bare.h5", {"density": rho}, ndim=2,
                                 box_size=10.0, source="test", sim_index=[0],
                                 units={"density": "mean"})
    with pytest.raises(FieldnetError, match=r"\['b'\] missing: pass params b=VALUE"):
        predict_file(tmp_path / "run", bare, tmp_path / "y.h5", progress=False,
                     params={"a": 2.0})
