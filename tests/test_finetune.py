"""Fine-tuning (`train.init_from`): a run starts from another run's best parameters, with a
fresh optimizer, and refuses in one line a source that is not a trained run or whose model
differs."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.studies import density_to_temp as study
from fieldnet import rundir, train
from fieldnet.data.transforms import Normalizer
from fieldnet.errors import FieldnetError
from tests.test_experiment import tiny_config

# the tests that need a trained source run share conftest's tiny_run, and are slow for it
slow = pytest.mark.slow


@pytest.fixture
def pretrained(tiny_run):
    config, workdir, report = tiny_run
    return config.copy_and_resolve_references(), workdir, report


def _params(model):
    return [np.asarray(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param))]


@slow
def test_load_pretrained_gives_the_best_parameters(pretrained):
    config, workdir, _ = pretrained
    io = json.loads(rundir.model_io(workdir).read_text())
    fresh = study.build_model(config, _Channels(io))
    reference = study.build_model(config, _Channels(io))
    best = train.restore_params(reference, workdir, config.train, best=True)
    step = train.load_pretrained(fresh, workdir, config.model, io)
    assert step == best
    for got, want in zip(_params(fresh), _params(reference), strict=True):
        np.testing.assert_array_equal(got, want)


@slow
def test_a_run_at_zero_learning_rate_keeps_the_pretrained_scores(pretrained, tmp_path):
    """With the learning rate at 1e-12 the fine-tuned weights stay the pretrained ones to far
    below float32 resolution, so on the same data (and so the same statistics) the new run
    scores what the old one did, to the rounding of the evaluation."""
    config, workdir, report = pretrained
    config.train.init_from = str(workdir)
    config.train.learning_rate = 1e-12
    config.train.num_steps = 10
    config.train.warmup_steps = 2
    config.train.eval_every = config.train.checkpoint_every = 5
    tuned = study.train_and_evaluate(config, tmp_path / "tuned")
    assert tuned["test"]["mse"] == pytest.approx(report["test"]["mse"], rel=1e-5)


@slow
def test_pretrained_normalizer_is_the_source_runs(pretrained, tmp_path):
    config, workdir, _ = pretrained
    config.train.init_from = str(workdir)
    config.train.init_normalizer = "pretrained"
    config.data.max_train_sims = 1          # own statistics would differ from the source's
    with study.open_dataset(config, rundir.prepare(config, tmp_path / "p")) as ds:
        assert ds.normalizer == Normalizer.load(rundir.normalizer(workdir))
    config.train.init_normalizer = "data"
    with study.open_dataset(config, rundir.prepare(config, tmp_path / "d")) as ds:
        assert ds.normalizer != Normalizer.load(rundir.normalizer(workdir))


def _untrained_run(tmp):
    """A run folder whose start failed before any checkpoint was saved."""
    run = tmp / "untrained"
    for name in (rundir.CONFIG, rundir.MODEL_IO, rundir.NORMALIZER):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("{}")
    (run / rundir.CHECKPOINTS / "latest").mkdir(parents=True)
    return run


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nowhere", "no such run folder"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "not a trained run folder"),
    (_untrained_run, "has no checkpoint"),
])
def test_init_from_that_is_no_trained_run_is_one_line(tmp_path, make, message):
    config = tiny_config(tmp_path)
    config.train.init_from = str(make(tmp_path))
    with pytest.raises(FieldnetError, match=message) as err:
        study.check_config(config)
    assert "\n" not in str(err.value)


@slow
def test_init_from_a_run_of_another_model_names_the_keys(pretrained):
    config, workdir, _ = pretrained
    io = json.loads(rundir.model_io(workdir).read_text())
    other = config.copy_and_resolve_references()
    other.model.width = 2 * config.model.width
    model = study.build_model(other, _Channels(io))
    with pytest.raises(FieldnetError, match=r"model differs in model\.width") as err:
        train.load_pretrained(model, workdir, other.model, io)
    assert "\n" not in str(err.value)
    wider_input = dict(io, in_channels=io["in_channels"] + 1)
    with pytest.raises(FieldnetError, match=r"in_channels \(1 -> 2\)"):
        train.load_pretrained(model, workdir, config.model, wider_input)


def test_unknown_init_normalizer_is_refused(tmp_path):
    config = tiny_config(tmp_path)
    config.train.init_from = str(tmp_path)
    config.train.init_normalizer = "mine"
    with pytest.raises(FieldnetError, match="train.init_normalizer must be one of"):
        study.check_config(config)


class _Channels:
    """What `study.build_model` reads of a dataset, from a run's model_io.json."""

    def __init__(self, io):
        self.in_channels, self.out_channels = io["in_channels"], io["out_channels"]
        self.ndim, self.cond_dim = io["ndim"], len(io.get("condition_on") or [])
