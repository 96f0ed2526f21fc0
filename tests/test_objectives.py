"""The objective is one registered extension: `model.objective` alone selects it, it owns its
checks, network channels, loss, prediction and evaluation, a third is one class, and no other
module asks which one a run trains. Models are registered by name the same way."""

import re
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from experiments.configs import density_to_temp, density_to_temp_flow
from fieldnet import models, objectives, train
from fieldnet.errors import FieldnetError
from fieldnet.inference import predict_file
from fieldnet.nn import flow

ROOT = Path(__file__).resolve().parents[1]


def tiny_unet(in_channels=1, cond_dim=0):
    return models.UNet(in_channels, 1, ndim=2, width=4, depth=1, cond_dim=cond_dim,
                       rngs=nnx.Rngs(0))


def test_the_objective_is_the_one_model_objective_names():
    assert objectives.of(ml_collections.ConfigDict()).name == "regression"
    chosen = objectives.of(ml_collections.ConfigDict({"objective": "flow"}))
    assert isinstance(chosen, objectives.Flow) and chosen.generative
    with pytest.raises(FieldnetError, match=r"^model.objective must be one of \('regression', "
                                            r"'flow'\), got 'diffusion'$"):
        objectives.of(ml_collections.ConfigDict({"objective": "diffusion"}))


@pytest.mark.parametrize("config,key,value,message", [
    (density_to_temp, "train.loss", "flow_matching",
     r"^train.loss='flow_matching' trains a generative model; set model.objective='flow'$"),
    (density_to_temp, "eval.statistics", "pdf,samples",
     r"^eval.statistics: 'samples' is computed for generative runs \(model.objective='flow'\) "
     r"only$"),
    (density_to_temp_flow, "train.loss", "mse",
     r"^model.objective='flow' trains with train.loss='flow_matching', got 'mse'$"),
    (density_to_temp_flow, "eval.n_samples", 1,
     r"^eval.n_samples must be an integer ≥ 2 for model.objective='flow', got 1$"),
    (density_to_temp_flow, "model.name", "resnet", r"needs model.name='unet'"),
])
def test_keys_the_objective_needs_are_checked_in_one_line(config, key, value, message):
    c = config.get_config("quick")
    objectives.check_config(c)
    section, name = key.split(".")
    c[section][name] = value
    with pytest.raises(FieldnetError, match=message):
        objectives.check_config(c)


def test_the_objective_sizes_the_network_and_models_build_reads_no_objective():
    config = ml_collections.ConfigDict({"width": 4, "depth": 1, "objective": "flow"})
    velocity = objectives.build(config, rngs=nnx.Rngs(0), in_channels=2, out_channels=1,
                                ndim=2, cond_dim=3)
    assert (velocity.in_channels, velocity.out_channels, velocity.cond_dim) == \
        (3, 1, 3 + flow.TIME_FEATURES)
    plain = models.build(config, rngs=nnx.Rngs(0), in_channels=2, out_channels=1, ndim=2,
                         cond_dim=3)
    assert (plain.in_channels, plain.cond_dim) == (2, 3)


def test_the_loss_is_the_objectives():
    c = density_to_temp_flow.get_config("quick")
    assert objectives.of(c.model).loss(c.train) is train.get_loss("flow_matching")
    c = density_to_temp.get_config("quick")
    assert objectives.of(c.model).loss(c.train) is train.get_loss("mse")


def test_regression_predicts_each_test_map_and_refuses_samples():
    model = tiny_unet()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype(np.float32)
    config = density_to_temp.get_config("quick")
    config.eval.batch_size = 2
    objective = objectives.of(config.model)
    pred, samples = objective.predict_test(model, {"x": x, "cond": None}, config)
    assert samples is None
    whole = np.asarray(model(jnp.asarray(x)))
    np.testing.assert_allclose(pred, whole, atol=1e-5 * np.abs(whole).max())
    with pytest.raises(FieldnetError, match=r"^samples given, but the run is a regression run "
                                            r"\(model.objective='regression'\)$"):
        objective.predict_test(model, {"x": x, "cond": None}, config, np.zeros((3, 2, 8, 8, 1)))


def test_flow_predicts_the_mean_of_the_samples_it_is_given():
    config = density_to_temp_flow.get_config("quick")
    samples = np.random.default_rng(1).normal(size=(3, 4, 8, 8, 1)).astype(np.float32)
    test = {"x": np.zeros((3, 8, 8, 1), np.float32), "y": np.zeros((3, 8, 8, 1), np.float32),
            "cond": None}
    pred, kept = objectives.of(config.model).predict_test(None, test, config, samples)
    np.testing.assert_array_equal(kept, samples)
    np.testing.assert_allclose(pred, samples.mean(axis=1), rtol=1e-6)
    with pytest.raises(FieldnetError, match=r"^samples must be \(N, S, \*spatial, C\)"):
        objectives.of(config.model).predict_test(None, test, config, samples[..., 0])


@pytest.fixture
def third_objective():
    @objectives.register_objective("robust")
    class Robust(objectives.Objective):
        losses = ("huber_test",)

    yield Robust
    objectives.OBJECTIVES.unregister("robust")


def test_a_third_objective_is_one_registered_class(third_objective):
    c = density_to_temp.get_config("quick")
    c.model.objective = "robust"
    objective = objectives.of(c.model)
    assert isinstance(objective, third_objective) and objective.name == "robust"
    with pytest.raises(FieldnetError, match=r"^model.objective='robust' trains with "
                                            r"train.loss='huber_test', got 'mse'$"):
        objectives.check_config(c)
    c.train.loss = "huber_test"
    objectives.check_config(c)
    c.model.objective = "regression"
    with pytest.raises(FieldnetError, match=r"^train.loss='huber_test' trains a regression "
                                            r"model; set model.objective='robust'$"):
        objectives.check_config(c)
    assert objectives.of(ml_collections.ConfigDict({"objective": "flow"})).name == "flow"


def test_a_model_is_one_registered_class():
    @models.register_model("test_mixer")
    class Mixer(nnx.Module):
        def __init__(self, in_channels, out_channels, ndim, cond_dim=0, *, gain=1.0, rngs):
            self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
            self.cond_dim, self.gain = cond_dim, gain

    try:
        config = ml_collections.ConfigDict({"name": "test_mixer", "gain": 2.0,
                                            "objective": "regression"})
        built = objectives.build(config, rngs=nnx.Rngs(0), in_channels=2, out_channels=1,
                                 ndim=2)
        assert isinstance(built, Mixer) and (built.in_channels, built.gain) == (2, 2.0)
        config.width = 4
        with pytest.raises(ValueError, match=r"^unknown model config keys \['width'\]; known: "
                                             r"\['cond_dim', 'gain', 'in_channels', 'ndim', "
                                             r"'out_channels'\]$"):
            models.build(config, rngs=nnx.Rngs(0))
    finally:
        models.MODELS.unregister("test_mixer")
    with pytest.raises(FieldnetError, match=r"^model.name: 'test_mixer' is not a registered "
                                            r"model; choose from \['resnet', 'unet'\]$"):
        models.build(config, rngs=nnx.Rngs(0))


def test_field_models_state_their_conditioning():
    assert isinstance(tiny_unet(cond_dim=2), models.FieldModel)
    assert tiny_unet(cond_dim=2).cond_dim == 2

    class Unconditioned:
        ndim, in_channels, out_channels, stride, padding = 2, 1, 1, 1, "periodic"

        def input_interval(self, lo, hi):
            return lo, hi

        def __call__(self, x, cond=None):
            return x

    assert not isinstance(Unconditioned(), models.FieldModel)
    assert models.missing_members(Unconditioned()) == ["cond_dim"]


def test_predict_file_names_its_arguments_and_a_command_line_its_flags(tmp_path):
    path = tmp_path / "in.h5"
    with pytest.raises(FieldnetError, match=r"^output_path .*in.h5 is the input file"):
        predict_file(tmp_path, path, path)
    with pytest.raises(FieldnetError, match=r"^--output .*in.h5 is the input file"):
        predict_file(tmp_path, path, path, argument_names={"output_path": "--output"})


# Modules that once branched on the objective; only fieldnet/objectives.py may name one.
ASKERS = ["fieldnet", "experiments/studies/density_to_temp.py", "experiments/predict.py",
          "notebooks/lib", "benchmarks/error_budget.py"]


def test_no_module_but_objectives_branches_on_the_objective():
    branch = re.compile(r"""(==|!=|\bin)\s*\(?["'](flow|regression)["']|["'](flow|regression)["']"""
                        r"""\s*(==|!=)|objective_of|\["objective"\]""")
    files = [p for name in ASKERS for p in
             ((ROOT / name).rglob("*.py") if (ROOT / name).is_dir() else [ROOT / name])]
    found = [f"{p.relative_to(ROOT)}:{i}" for p in files if p.name != "objectives.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line)]
    assert not found, f"branches on the objective: {found}"
