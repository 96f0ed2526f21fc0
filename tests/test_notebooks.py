"""Every notebook executes top to bottom (nbclient, the `python3` kernel) on small runs, and
its figures carry the numbers of the runs' eval.json."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.configs import density_to_temp
from experiments.studies import density_to_temp as experiment
from experiments.studies import ising_phases as phase_study
from experiments.studies import sweep
from fieldnet import rundir
from fieldnet.errors import FieldnetError
from notebooks import make_figures
from notebooks.lib import output, recompute
from tests.test_phases import tiny_study_config

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 600
FIGURES = {"data_overview": ("data_maps", "data_phase_diagram", "data_pdfs"),
           "predictions": ("predictions_maps",),
           "statistics": ("statistics_power", "statistics_cross_corr"),
           "variations": ("variations_metrics",),
           "symmetry": ("symmetry_maps", "symmetry_errors"),
           "ising": ("ising_p_ordered", "ising_tc_extrapolation")}


def test_every_notebook_is_run_and_its_figures_listed():
    assert set(FIGURES) == set(make_figures.NOTEBOOKS)
    assert {p.stem for p in make_figures.NOTEBOOK_DIR.glob("*.py")} - {"__init__",
                                                                       "make_figures"} \
        == set(FIGURES)


def tiny_sweep(tmp: Path) -> Path:
    """Two tiny density runs, periodic and zero padding, as one sweep; the periodic one
    is also the run the other notebooks show."""
    c = density_to_temp.get_config("quick")
    c.data.path = str(tmp / "data" / "sim.h5")
    c.simulate.n_sims = 4
    c.train.num_steps = 20
    c.train.eval_every = c.train.checkpoint_every = 10
    c.train.progress = False
    sweep.run_sweep(c, {"periodic": {}, "zero": {"model.padding": "zero"}}, tmp / "sweep",
                    experiment.train_and_evaluate)
    return tmp / "sweep"


def run_notebooks(names, workdirs: dict, tmp: Path) -> Path:
    figdir = tmp / "figures"
    make_figures.make_figures(workdirs, figdir, names=names, timeout=CELL_TIMEOUT,
                              jax_cache=tmp / "jax_cache")
    for name in names:
        for figure in FIGURES[name]:
            for ext in ("png", "pdf"):
                assert (figdir / f"{figure}.{ext}").stat().st_size > 1000, (figure, ext)
    return figdir


def test_density_notebooks_match_eval_json(tmp_path):
    sweep_dir = tiny_sweep(tmp_path)
    run = sweep_dir / "periodic"
    names = [n for n, kind in make_figures.NOTEBOOKS.items() if kind in ("density", "sweep")]
    figdir = run_notebooks(names, {"density": run, "sweep": sweep_dir}, tmp_path)

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

    with open(sweep_dir / rundir.TABLE_CSV, newline="") as f:
        table = {r["variation"]: r for r in csv.DictReader(f)}
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
               for key in ("WORKDIR", "FIGDIR", "QUICK"))
    make_figures.inject_parameters(notebook, {"WORKDIR": "/x", "QUICK": False})
    assert notebook.cells[at + 1].metadata["tags"] == ["injected-parameters"]
    assert notebook.cells[at + 1].source == "WORKDIR = '/x'\nQUICK = False"
