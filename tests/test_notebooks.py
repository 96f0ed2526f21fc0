"""Every notebook executes top to bottom (nbclient, the `python3` kernel) on small runs, and
its figures carry the numbers of the runs' eval.json."""

import csv
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.configs import density_to_temp, density_to_temp_flow
from experiments.studies import density_to_temp as experiment
from experiments.studies import ising_phases as phase_study
from experiments.studies import sweep
from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import statistics
from notebooks import make_figures
from notebooks.lib import output, recompute
from tests.shared import with_shared_data
from tests.test_experiment import TINY_SWEEP, tiny_config
from tests.test_phases import tiny_study_config

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 600
FIGURES = {"data_overview": ("data_maps", "data_phase_diagram", "data_pdfs"),
           "predictions": ("predictions_maps", "predictions_samples", "predictions_samples_std"),
           "statistics": ("statistics_power", "statistics_cross_corr", "statistics_samples_power",
                          "statistics_calibration"),
           "variations": ("variations_metrics",),
           "symmetry": ("symmetry_maps", "symmetry_errors"),
           "ising": ("ising_p_ordered", "ising_tc_extrapolation")}


def test_every_notebook_is_run_and_its_figures_listed():
    assert set(FIGURES) == set(make_figures.NOTEBOOKS)
    assert {p.stem for p in make_figures.NOTEBOOK_DIR.glob("*.py")} - {"__init__",
                                                                       "make_figures"} \
        == set(FIGURES)


def tiny_field_runs(tiny_run, tmp: Path) -> dict:
    """The tiny density runs of `TINY_SWEEP`, periodic and zero padding, as one sweep, and a
    tiny flow run of the same data: {kind: workdir}. The periodic row is a copy of the
    session's tiny run, which the sweep takes as finished and evaluates again; it is also
    the density run the other notebooks show. One test makes and checks them all, since
    pytest-xdist would make a module fixture once per worker."""
    shutil.copytree(tiny_run[1], tmp / "sweep" / "periodic")
    sweep.run_sweep(tiny_config(), TINY_SWEEP, tmp / "sweep", experiment.train_and_evaluate)
    flow = density_to_temp_flow.get_config("quick")
    flow.simulate.n_sims, flow.simulate.grid = 6, 32
    flow.train.num_steps = 20
    flow.train.eval_every = flow.train.checkpoint_every = 10
    flow.train.progress = False
    flow.eval.n_samples, flow.eval.sample_steps = 3, 2
    assert with_shared_data(flow).data.path == tiny_config().data.path
    experiment.train_and_evaluate(flow, tmp / "flow")
    return {"density": tmp / "sweep" / "periodic", "sweep": tmp / "sweep", "flow": tmp / "flow"}


def run_notebooks(names, workdirs: dict, tmp: Path) -> Path:
    figdir = tmp / "figures"
    make_figures.make_figures(workdirs, figdir, names=names, timeout=CELL_TIMEOUT,
                              jax_cache=tmp / "jax_cache")
    for name in names:
        for figure in FIGURES[name]:
            for ext in ("png", "pdf"):
                assert (figdir / f"{figure}.{ext}").stat().st_size > 1000, (figure, ext)
    return figdir


@pytest.mark.slow
def test_density_and_flow_notebooks_match_eval_json(tiny_run, tmp_path):
    field_runs = tiny_field_runs(tiny_run, tmp_path)
    run, sweep_dir = field_runs["density"], field_runs["sweep"]
    names = [n for n, kinds in make_figures.NOTEBOOKS.items()
             if set(kinds.values()) <= {"density", "sweep", "flow"}]
    figdir = run_notebooks(names, field_runs, tmp_path)

    evaluation = rundir.read_eval(run)
    test = evaluation["test"]
    # The checkpoint gives back eval.json's numbers, as the notebooks recompute them.
    again = recompute.held_out(run).summary
    for key in ("mse", "baseline_mse", "pixel_corr"):
        assert again[key] == pytest.approx(test[key], rel=1e-6), key

    shown = output.figure_numbers(figdir / "predictions_maps.png")
    for key in ("mse", "baseline_mse", "pixel_corr", "n_test", "train_steps"):
        assert shown[key] == (test | evaluation)[key], key
    row = sweep.table_row("periodic", {}, evaluation)
    for figure in ("statistics_power", "statistics_cross_corr"):
        shown = output.figure_numbers(figdir / f"{figure}.png")
        for key in ("mse", "baseline_mse", "mean_r_to_half_nyquist",
                    "baseline_mean_r_to_half_nyquist"):
            assert shown[key] == row[key], (figure, key)

    # the sweep ran each variation through the study and tabulated it
    lines = (sweep_dir / rundir.TABLE_MD).read_text().splitlines()
    assert len(lines) == 4 and "model.padding=zero" in lines[3]
    assert json.loads((sweep_dir / "zero" / "config.json").read_text())["model"]["padding"] \
        == "zero"
    with open(sweep_dir / rundir.TABLE_CSV, newline="") as f:
        table = {r["variation"]: r for r in csv.DictReader(f)}
    assert list(table) == ["periodic", "zero"]
    shown = output.figure_numbers(figdir / "variations_metrics.png")["variations"]
    assert set(shown) == {"periodic", "zero"}
    for name, values in shown.items():
        for key in ("mse", "baseline_mse", "pixel_corr", "mean_r_to_half_nyquist"):
            assert values[key] == pytest.approx(float(table[name][key]), rel=1e-12)
    assert (figdir / "variations_table.md").read_text() == (sweep_dir / rundir.TABLE_MD).read_text()

    errors = output.figure_numbers(figdir / "symmetry_errors.png")["rms_error_dex"]
    periodic = next(v for k, v in errors.items() if k.startswith("periodic padding, shift")
                    and "not a multiple" not in k)
    zero = next(v for k, v in errors.items() if k.startswith("zero padding"))
    dihedral = next(v for k, v in errors.items() if "symmetry=dihedral" in k)
    plain = next(v for k, v in errors.items() if "untrained, symmetry=none" in k)
    assert periodic < 1e-5 < zero and dihedral < 1e-5 < plain

    flow = rundir.read_eval(field_runs["flow"])
    drawn = flow["test"]["samples"]
    shown = output.figure_numbers(figdir / "predictions_samples.png")
    assert shown == output.figure_numbers(figdir / "predictions_samples_std.png")
    for key in ("n_samples", "mse_of_mean", "crps", "coverage_68", "coverage_95"):
        assert shown[key] == drawn[key], key
    assert shown["regression_mse"] == test["mse"] and shown["n_test"] == flow["n_test"]
    shown = output.figure_numbers(figdir / "statistics_samples_power.png")
    assert shown["samples_pdf_w1"] == drawn["pdf_w1"]
    assert shown["regression_pdf_w1"] == test["pdf_w1"]
    assert shown["samples_power_ratio"] == drawn["power_ratio"]
    assert shown["regression_power_ratio"] == test["power_ratio"]
    shown = output.figure_numbers(figdir / "statistics_calibration.png")
    for key in ("n_samples", "coverage_68", "coverage_95", "crps"):
        assert shown[key] == drawn[key], key
    check_flow_recomputation(field_runs["flow"], run)


def check_flow_recomputation(flow: Path, run: Path) -> None:
    """The flow run's held-out set, from its kept samples, gives back its eval.json; it shows
    the density run's test maps, and other maps are refused in one line."""
    again = recompute.held_out(flow)
    rows = recompute.check_against_eval(again.summary, rundir.read_eval(flow))
    assert set(statistics.summarize(rundir.read_eval(flow)["test"])) == set(rows)
    assert set(statistics.SAMPLE_COLUMNS) < set(rows)
    assert all(difference < 1e-5 for _, _, difference in rows.values()), rows
    assert again.samples.shape[1] == 3

    regression = recompute.held_out(run)
    recompute.check_same_test_maps(regression, again, (run, flow))
    others = [dataclasses.replace(again, sim_index=again.sim_index + 1),
              dataclasses.replace(again, true_log_t=again.true_log_t + 0.01)]
    message = (rf"^{re.escape(f'{run} and {flow}')} were evaluated on different test maps "
               r"\([^\n]*\); compare runs of the same data and split$")
    for other in others:
        with pytest.raises(FieldnetError, match=message):
            recompute.check_same_test_maps(regression, other, (run, flow))


def evaluated_run_folder(config, workdir: Path) -> Path:
    """A folder with a run's config and its other files empty: what the notebooks check
    of a given workdir before they start."""
    rundir.prepare(config, workdir)
    for name in (rundir.EVAL, rundir.NORMALIZER, rundir.MODEL_IO):
        (workdir / name).write_text("{}")
    return workdir


def test_runs_of_the_wrong_kind_are_refused_in_one_line(tmp_path):
    regression = evaluated_run_folder(density_to_temp.get_config("quick"), tmp_path / "reg")
    with pytest.raises(FieldnetError, match=r"a regression run; the samples figures need a "
                                            r"generative run \(model.objective='flow'\)$"):
        make_figures.make_figures({"flow": regression}, tmp_path / "figures")
    unkept = evaluated_run_folder(density_to_temp_flow.get_config("quick"), tmp_path / "flow")
    with pytest.raises(FieldnetError, match=r"no test_samples.h5 \(evaluated before the test "
                                            r"samples were kept\); rerun its command"):
        make_figures.make_figures({"flow": unkept}, tmp_path / "figures")
    with pytest.raises(FieldnetError, match=r"a generative run \(model.objective='flow'\); "
                                            r"pass it as the flow run \(--flow-workdir\)"):
        make_figures.make_figures({"density": unkept}, tmp_path / "figures")
    assert not (tmp_path / "figures").exists()


@pytest.mark.slow
def test_ising_notebook_matches_eval_json(tmp_path):
    run = tmp_path / "run"
    phase_study.train_and_evaluate(tiny_study_config(tmp_path), run)
    figdir = run_notebooks(["ising"], {"ising": run}, tmp_path)

    evaluation = rundir.read_eval(run)
    for figure in FIGURES["ising"]:
        shown = output.figure_numbers(figdir / f"{figure}.png")
        for key in ("tc", "tc_err", "onsager_tc", "per_L"):
            assert shown[key] == evaluation[key], (figure, key)

    # A cell that raises fails the notebook with one line naming it.
    with pytest.raises(FieldnetError, match=r"^ising\.py: code cell \d+ .*raised FieldnetError: "
                                            r".*not a finished run folder"):
        make_figures.execute("ising", {"WORKDIR": str(tmp_path), "FIGDIR": str(figdir),
                                       "QUICK": True}, timeout=CELL_TIMEOUT,
                             env=make_figures.kernel_environment(tmp_path / "jax_cache"))


def test_command_rejects_a_missing_workdir_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "notebooks.make_figures", "--ising-workdir",
                           str(tmp_path / "nope"), "--figdir", str(tmp_path / "figures")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such run folder"]
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_parameters_are_injected_after_the_parameters_cell(name):
    notebook = make_figures.read_notebook(name)
    assert notebook.metadata["kernelspec"]["name"] == make_figures.KERNEL
    tags = [c.metadata.get("tags", []) for c in notebook.cells]
    at = tags.index(["parameters"])
    assert all(f"\n{key} = " in "\n" + notebook.cells[at].source
               for key in (*make_figures.NOTEBOOKS[name], "FIGDIR", "QUICK"))
    make_figures.inject_parameters(notebook, {"WORKDIR": "/x", "QUICK": False})
    assert notebook.cells[at + 1].metadata["tags"] == ["injected-parameters"]
    assert notebook.cells[at + 1].source == "WORKDIR = '/x'\nQUICK = False"
