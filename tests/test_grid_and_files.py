"""The small base pieces: the Grid, the model stride, atomic writes, JSON records and the run
folder."""

import json
import math
import re

import ml_collections
import numpy as np
import pytest
from flax import nnx

from fieldnet import models, rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import spectra
from fieldnet.files import atomic_output, write_json
from fieldnet.grid import Grid, check_divisible, require_grid
from fieldnet.records import flatten


def test_grid_scales_of_a_periodic_box():
    grid = Grid.box((64, 32), (25.0, 12.5))
    assert grid.spacing == (25 / 64, 12.5 / 32)
    assert grid.k_fundamental == pytest.approx(2 * math.pi / 25.0)
    assert grid.k_nyquist == pytest.approx(math.pi * 64 / 25.0)
    assert grid.volume == pytest.approx(312.5) and grid.periodic == (True, True)


def test_grid_refuses_bad_shapes_and_mismatched_fields():
    with pytest.raises(ValueError, match="positive"):
        Grid.box((8, 8), -1.0)
    with pytest.raises(ValueError, match="1 to 3 axes"):
        Grid.box((2, 2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="not on the grid"):
        require_grid(Grid.box((8, 8), 1.0), (16, 16))


def test_spectra_take_a_grid_only():
    field = np.random.default_rng(0).normal(size=(32, 32))
    with pytest.raises(TypeError, match=r"Grid\.box\(shape, box_size\)"):
        spectra.power_spectrum(field, 10.0)
    square = spectra.power_spectrum(field, Grid.box((32, 32), 10.0))
    same = spectra.power_spectrum(field, Grid.box((32, 32), (10.0, 10.0)))
    np.testing.assert_array_equal(square.power, same.power)
    np.testing.assert_array_equal(square.k, same.k)


def test_atomic_output_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with pytest.raises(FileExistsError), atomic_output(target):
        pass


def test_write_json_makes_numpy_and_nan_plain(tmp_path):
    path = write_json(tmp_path / "x.json", {"r": np.array([0.5, np.nan]), "n": np.int64(2)})
    assert json.loads(path.read_text()) == {"n": 2, "r": [0.5, None]}


def test_flatten_makes_dotted_keys():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": (1, 2),
                                                                 "d": None}


def test_run_folder_refuses_another_config_but_not_a_newer_key(tmp_path):
    config = ml_collections.ConfigDict({"name": "x", "train": {"num_steps": 10,
                                                               "progress": True},
                                        "data": {"loader": "thread", "workers": 0}})
    workdir = rundir.prepare(config, tmp_path / "run")
    assert rundir.read_config(workdir).train.num_steps == 10
    config.train.progress = False                      # resumable difference
    rundir.prepare(config, workdir)
    newer = ml_collections.ConfigDict(config.to_dict())
    newer.train.loss = "mse"                           # a key that a newer fieldnet adds
    rundir.prepare(newer, workdir)
    other = ml_collections.ConfigDict(config.to_dict())
    other.train.num_steps = 20
    rundir.normalizer(workdir).write_text("{}")
    rundir.prepare(other, workdir)          # nothing trained yet: the new config takes over
    assert rundir.read_config(workdir).train.num_steps == 20
    assert not rundir.normalizer(workdir).exists()
    (rundir.checkpoints(workdir) / "latest" / "10").mkdir(parents=True)
    with pytest.raises(FieldnetError, match="differs in train.num_steps"):
        rundir.prepare(config, workdir)
    elsewhere = ml_collections.ConfigDict(other.to_dict())
    elsewhere.data.loader, elsewhere.data.workers = "grain", 8   # same batches, so resumable
    rundir.prepare(elsewhere, workdir)
    assert rundir.read_config(workdir).data.workers == 0     # the run's record stays


def test_config_differences_see_a_value_becoming_a_section():
    old = flatten({"data": {"split_sims": None}})
    new = flatten({"data": {"split_sims": {"train": [0], "test": [1]}}})
    assert rundir.config_differences(old, new) == ["data.split_sims", "data.split_sims.test",
                                                    "data.split_sims.train"]


def test_require_names_what_is_missing(tmp_path):
    with pytest.raises(FieldnetError, match="no such run folder"):
        rundir.require(tmp_path / "absent")
    with pytest.raises(FieldnetError, match=r"no config.json, eval.json"):
        rundir.require(tmp_path, rundir.CONFIG, rundir.EVAL)
    (tmp_path / rundir.EVAL).write_text("{broken")
    with pytest.raises(FieldnetError, match="not valid JSON"):
        rundir.read_eval(tmp_path)


@pytest.mark.parametrize("name, formula", [("unet", "2**model.depth"),
                                           ("resnet", "2**(model.depth - 1)")])
def test_stride_has_one_formula_for_config_model_and_message(name, formula):
    sizes = {"unet": {"out_channels": 1}, "resnet": {"num_classes": 2}}[name]
    for depth in (1, 2, 3):
        config = ml_collections.ConfigDict({"name": name, "depth": depth, "width": 2})
        model = models.build(config, rngs=nnx.Rngs(0), in_channels=1, ndim=2, **sizes)
        assert models.stride_of(config) == model.stride == models.total_stride(name, depth)
    assert models.total_stride(name, 3) == {"unet": 8, "resnet": 4}[name]
    assert models.stride_formula(name) == formula
    with pytest.raises(FieldnetError, match=rf"total stride 4 \({re.escape(formula)}\)"):
        check_divisible([6], 4, "data.crop_size", models.stride_formula(name))
    with pytest.raises(FieldnetError, match=r"total stride 4; use"):
        check_divisible([6, 8], 4, "the field")
