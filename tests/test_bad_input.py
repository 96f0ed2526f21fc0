"""Bad input to the command lines and the studies: one line naming what is wrong, exit code
2, nothing created or damaged; and what should work does (None-default keys, a workdir
whose start failed). Cases that fail before JAX is imported run as subprocesses; the rest
share one tiny data file."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.configs import density_to_temp
from experiments.studies import density_to_temp as study
from fieldnet import rundir
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "experiments/configs/density_to_temp.py"
FLOW = "experiments/configs/density_to_temp_flow.py"


def command(module, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("module,own", [("experiments.density_to_temp", "--workdir"),
                                        ("experiments.ising_phases", "--workdir"),
                                        ("experiments.sweep", "--variations")])
def test_help_exits_zero_and_lists_the_commands_own_flags(module, own):
    proc = command(module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--config:" in proc.stdout and f"{own}:" in proc.stdout
    # the docstring comes as written, its example commands' line breaks included
    assert importlib.import_module(module).__doc__.strip() in proc.stdout


@pytest.mark.slow  # a process each; tests/test_cli.py checks the config's failures in-process
@pytest.mark.parametrize("args,message", [
    (["--config", "nope.py"], "--config nope.py: no such config file"),
    (["--config", f"{CONFIG}:quik"], "unknown config argument 'quik'"),
    ([], "--config FILE.py is required"),
    (["--config", CONFIG, "--config.train.num_stepz=3"], "no key 'num_stepz'"),
    (["--config", CONFIG, "--config.train.batch_size=0"], "train.batch_size must be positive"),
    (["--config", CONFIG, "--config.train.learning_rate=nan"],
     "train.learning_rate must be positive"),
    (["--config", CONFIG, "--config.eval.batch_size=0"], "eval.batch_size must be a positive"),
    (["--config", CONFIG, "--config.data.crop_size=60"],
     "data.crop_size 60 is not divisible by the model's total stride 8"),
    (["--config", CONFIG, "--config.eval.statistics=pdf,nope"], "'nope' is not a registered"),
    (["--config", CONFIG, "--config.data.max_train_sims=0"],
     "data.max_train_sims must be a positive integer"),
    (["--config", CONFIG, "--config.data.eval_maps_per_sim=0"],
     "data.eval_maps_per_sim must be a positive integer"),
    (["--config", CONFIG, "--config.data.condition_noise=-0.1"],
     "data.condition_noise must be a number ≥ 0"),
    (["--config", CONFIG, "--config.data.loader=threads"],
     "data.loader must be one of ('grain', 'thread'), got 'threads'"),
    (["--config", CONFIG, "--config.data.workers=-2"], "data.workers must be an integer ≥ 0"),
    (["--config", CONFIG, "--config.train.loss=nope"],
     "train.loss: 'nope' is not a registered loss; choose from ['cross_entropy', "
     "'flow_matching', 'mse']"),
    (["--config", FLOW, "--config.model.objective=diffusion"],
     "model.objective must be one of ('regression', 'flow'), got 'diffusion'"),
    (["--config", FLOW, "--config.eval.n_samples=1"],
     "eval.n_samples must be an integer ≥ 2 for model.objective='flow', got 1"),
    (["--config", CONFIG, "--config.train.loss=flow_matching"],
     "train.loss='flow_matching' trains a generative model; set model.objective='flow'"),
])
def test_bad_config_is_one_line_before_any_work(tmp_path, args, message):
    proc = command("experiments.density_to_temp", *args, f"--workdir={tmp_path}/run",
                   f"--config.data.path={tmp_path}/absent.h5" if args else "--workdir=x")
    assert message in one_error_line(proc)
    assert not (tmp_path / "run").exists() and not (tmp_path / "absent.h5").exists()


@pytest.mark.slow
def test_workdir_under_a_file_is_one_line_before_simulating(tmp_path):
    (tmp_path / "file").write_text("")
    proc = command("experiments.density_to_temp", "--config", CONFIG,
                   f"--config.data.path={tmp_path}/absent.h5", f"--workdir={tmp_path}/file/run")
    assert one_error_line(proc) == (f"error: --workdir {tmp_path}/file/run: {tmp_path}/file is "
                                    "a file, not a folder")
    assert not (tmp_path / "absent.h5").exists()


@pytest.mark.slow
def test_none_default_keys_can_be_set_on_the_command_line(tmp_path):
    # box_size and the log floors default to None; setting them parses, and the run then
    # stops at the (absent) data, with the data's own one-line error.
    proc = command("experiments.density_to_temp", "--config",
                   "experiments/configs/density_to_temp_camels.py",
                   "--config.data.box_size=25.0", "--config.data.target_log_floor=1.0",
                   f"--config.data.path={tmp_path}/absent.h5", f"--workdir={tmp_path}/run")
    assert one_error_line(proc) == f"error: {tmp_path}/absent.h5: no such data file (data.path)"


@pytest.fixture(scope="module")
def odd_file(tmp_path_factory):
    """Four simulations of 36^2 maps: crops of 32 fit a depth-3 U-Net, whole maps do not."""
    rng = np.random.default_rng(0)
    rho = np.exp(rng.normal(size=(8, 36, 36))).astype(np.float32)
    path = tmp_path_factory.mktemp("odd") / "odd.h5"
    return h5format.write_arrays(path, {"density": rho, "temperature": 1e4 * rho ** 0.5},
                                 ndim=2, box_size=10.0, source="test",
                                 sim_index=np.repeat(np.arange(4), 2),
                                 units={"density": "mean", "temperature": "K"})


def odd_config(path):
    c = density_to_temp.get_config("quick")
    c.data.path = str(path)
    c.data.crop_size = 32
    c.data.split_fractions = (0.5, 0.25, 0.25)
    c.model.depth, c.model.channel_mult = 3, (1, 2, 2, 2)
    c.train.progress = False
    return c


def test_field_size_not_divisible_is_refused_before_training(odd_file, tmp_path):
    with pytest.raises(FieldnetError, match=r"the val fields' size \(36, 36\) is not divisible"):
        study.train_and_evaluate(odd_config(odd_file), tmp_path / "run")
    assert not rundir.has_trained(tmp_path / "run")


@pytest.mark.slow
def test_a_failed_start_leaves_a_reusable_workdir(odd_file, tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(FieldnetError):
        study.train_and_evaluate(odd_config(odd_file), workdir)
    fixed = odd_config(odd_file)
    fixed.model.depth, fixed.model.channel_mult = 2, (1, 2, 2)
    fixed.train.num_steps, fixed.train.eval_every, fixed.train.checkpoint_every = 4, 2, 2
    fixed.train.warmup_steps = 1
    report = study.train_and_evaluate(fixed, workdir)
    assert report["train_steps"] == 4
    assert rundir.read_config(workdir).model.depth == 2


def test_predict_refuses_to_overwrite_its_input(odd_file, tmp_path):
    proc = command("experiments.predict", "--workdir", str(tmp_path), "--input", str(odd_file),
                   "--output", str(odd_file), "--overwrite", timeout=300)
    assert one_error_line(proc) == f"error: --output {odd_file} is the input file; write elsewhere"
    assert h5format.read_info(odd_file).num_samples == 8


def test_closing_lines_say_where_the_report_is_and_flag_a_smoke_test(tmp_path):
    from experiments import launch

    rundir.evaluation(tmp_path).write_text("{}")
    lines = launch.closing_lines({"test": {"mse": 0.5, "baseline_mse": 0.3}}, tmp_path)
    assert lines[0] == f"report: {tmp_path / 'eval.json'} and {tmp_path / 'figures'}/"
    assert "smoke test" in lines[1]
    assert launch.closing_lines({"test": {"mse": 0.1, "baseline_mse": 0.3}}, tmp_path) == \
        lines[:1]
