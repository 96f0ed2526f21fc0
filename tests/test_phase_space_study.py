"""The phase-space study (`density_to_temp_phase_space.py`): its config passes the study's
checks, and its inputs (density, dispersion, signed divergence, the velocity vector) train
end to end on the simulator's 2D maps and 3D boxes."""

import json

import pytest

from experiments.configs import (
    density_to_temp_3d,
    density_to_temp_flow,
    density_to_temp_phase_space,
    density_to_temp_phase_space_flow,
)
from experiments.studies import density_to_temp as study
from fieldnet import rundir
from tests.shared import with_shared_data


def test_config_reads_the_phase_space_fields_with_their_transforms():
    c = density_to_temp_phase_space.get_config()
    study.check_config(c)
    assert c.data.input_field.split(",") == ["density", "velocity_dispersion",
                                             "velocity_divergence", "velocity"]
    assert c.data.vector_fields == "velocity"
    assert c.data.transforms == "velocity_divergence:none"
    quick = density_to_temp_phase_space.get_config("quick")
    study.check_config(quick)
    assert quick.data.input_field == c.data.input_field


def test_the_flow_config_is_the_flow_run_on_the_phase_space_inputs():
    for arg in (None, "quick"):
        c = density_to_temp_phase_space_flow.get_config(arg)
        study.check_config(c)
        flow = density_to_temp_flow.get_config(arg)
        inputs = density_to_temp_phase_space.get_config(arg).data
        assert c.model == flow.model and c.train == flow.train
        assert c.eval.calibration_maps == 24 and flow.eval.calibration_maps == 0
        assert (c.eval.calibration_method, flow.eval.calibration_method) == ("offset", "spread")
        c.eval.calibration_maps, c.eval.calibration_method = 0, "spread"
        assert c.eval == flow.eval
        for key in ("input_field", "vector_fields", "transforms"):
            assert c.data[key] == inputs[key]
        assert c.name == "density_to_temp_phase_space_flow"


def _tiny(config, tmp_path, grid):
    config.data.path = str(tmp_path / "data" / "sim.h5")
    config.simulate.n_sims = 6
    config.simulate.grid = grid
    config.train.num_steps = 12
    config.train.warmup_steps = 2
    config.train.eval_every = config.train.checkpoint_every = 6
    config.train.progress = False
    return config


@pytest.mark.slow
@pytest.mark.parametrize("dim", [2, 3])
def test_phase_space_inputs_train_and_evaluate(tmp_path, dim):
    if dim == 2:
        config = with_shared_data(_tiny(density_to_temp_phase_space.get_config("quick"),
                                        tmp_path, 32))
    else:
        config = _tiny(density_to_temp_3d.get_config("quick"), tmp_path, 16)
        config.data.crop_size = 16
        base = density_to_temp_phase_space.get_config()
        for key in ("input_field", "vector_fields", "transforms"):
            config.data[key] = base.data[key]
    report = study.train_and_evaluate(config, tmp_path / "run")
    io = json.loads(rundir.model_io(tmp_path / "run").read_text())
    # density, dispersion, divergence and the velocity's components (2 in a map, 3 in a box)
    assert io["in_channels"] == 3 + dim
    normalizer = json.loads(rundir.normalizer(tmp_path / "run").read_text())
    transforms = {f["name"]: f["transform"] for f in normalizer["fields"]}
    assert transforms == {"density": "log10", "velocity_dispersion": "log10",
                          "velocity_divergence": "none", "velocity": "none",
                          "temperature": "log10"}
    assert report["test"]["mse"] > 0 and report["test"]["fields"]["temperature"]
