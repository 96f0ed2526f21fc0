"""Regenerate every figure by executing the notebooks, top to bottom, in fresh kernels.

    python -m notebooks.make_figures --density-workdir RUN --flow-workdir FLOW_RUN \
        --sweep-workdir SWEEP --ising-workdir RUN2 [--figdir notebooks/figures] \
        [--only predictions,ising]

Each notebook is a jupytext percent-format `.py` file in this folder. It is read into
memory, its parameters (the workdirs of the runs it shows, `NOTEBOOKS`, then FIGDIR and
QUICK) are injected in a cell right after its "parameters" cell, as papermill does, and it
is executed with nbclient in a `python3` kernel whose working directory is the repository
root, so that it imports this checkout's `notebooks` package (the notebooks take relative
paths in the root whatever the working directory: `notebooks.lib.runs`). A notebook whose
workdir is not given makes a small run itself in runs/notebooks/ (`--full`: the CPU default
config instead of the quick one), so with no arguments the command runs on a fresh
checkout. A cell that raises stops the command with a one-line error naming the notebook
and cell.

The kernels share a persistent JAX compilation cache (runs/notebooks/jax_cache unless
JAX_COMPILATION_CACHE_DIR is set): every notebook builds the same model, and on a 2-core
CPU compiling its initialization and forward pass again costs ~15 s per notebook.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from fieldnet import cli
from notebooks.lib.runs import ROOT, RUNS

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNEL = "python3"
# The kernel's own log: errors only (cells' output is unaffected). Its warning that
# localhost TCP is unencrypted would otherwise be printed once per notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
JAX_CACHE = RUNS / "jax_cache"
# notebook -> {its workdir parameter: the kind of run it shows}; predictions and statistics
# compare a density (regression) run with a flow (generative) run of the same test maps
NOTEBOOKS = {"data_overview": {"WORKDIR": "density"},
             "predictions": {"WORKDIR": "density", "FLOW_WORKDIR": "flow"},
             "statistics": {"WORKDIR": "density", "FLOW_WORKDIR": "flow"},
             "variations": {"WORKDIR": "sweep"}, "symmetry": {"WORKDIR": "density"},
             "ising": {"WORKDIR": "ising"}}
# kind of run -> its command-line option's help, before the notebooks that show it
RUN_KINDS = {"density": "a density_to_temp run", "flow": "a density_to_temp_flow run of the "
             "density run's data", "sweep": "an experiments.sweep folder",
             "ising": "an ising_phases run"}


def read_notebook(name: str):
    """The notebook of `NOTEBOOK_DIR/name.py`, in memory (no .ipynb is written)."""
    import jupytext

    return jupytext.read(NOTEBOOK_DIR / f"{name}.py")


def inject_parameters(notebook, parameters: dict) -> None:
    """Inserts `NAME = value` lines after the cell tagged "parameters" (papermill's
    convention: the injected cell is tagged "injected-parameters")."""
    import nbformat

    from fieldnet.errors import FieldnetError

    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise FieldnetError(f"a notebook needs exactly one cell tagged 'parameters', found "
                            f"{len(tagged)}")
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(tagged[0] + 1, cell)


def _failed_cell(notebook) -> tuple[int, str]:
    """(number among the .py file's code cells, its first line) of the cell whose output is
    an error; the injected parameters count as their own cell, with the number before."""
    number = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        injected = "injected-parameters" in cell.metadata.get("tags", [])
        number += 0 if injected else 1
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            if injected:
                return number, "injected parameters"
            return number, next((line.strip() for line in cell.source.splitlines()
                                 if line.strip()), "")
    return 0, ""


def kernel_environment(jax_cache: str | Path = JAX_CACHE) -> dict:
    """This process's environment, with a persistent JAX compilation cache for every
    compilation (unless the caller configured one)."""
    env = dict(os.environ)
    if "JAX_COMPILATION_CACHE_DIR" not in env:
        env.update(JAX_COMPILATION_CACHE_DIR=str(jax_cache),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def execute(name: str, parameters: dict, *, timeout: int | None = None,
            save_to: str | Path | None = None, env: dict | None = None):
    """Executes notebook `name` with `parameters`; returns the executed notebook.

    A cell that raises becomes a `FieldnetError` naming the notebook, the cell and the
    exception. `save_to` writes the executed .ipynb there (also when a cell failed);
    `env` is the kernel's environment (default `kernel_environment()`).
    """
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    from fieldnet.errors import FieldnetError

    notebook = read_notebook(name)
    inject_parameters(notebook, parameters)
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=timeout,
                            extra_arguments=KERNEL_ARGUMENTS,
                            resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=kernel_environment() if env is None else env)
    except NoSuchKernel:
        raise FieldnetError(f"no Jupyter kernel named {KERNEL!r}: pip install ipykernel") from None
    except CellTimeoutError:
        raise FieldnetError(f"{name}.py: a cell ran longer than {timeout} s") from None
    except CellExecutionError as err:
        number, first = _failed_cell(notebook)
        raise FieldnetError(f"{name}.py: code cell {number} ({first!r}) raised {err.ename}: "
                            f"{err.evalue}") from None
    finally:
        if save_to is not None:
            Path(save_to).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, str(save_to))
    return notebook


def shown_by(kind: str) -> list[str]:
    """The notebooks that show a run of `kind`."""
    return [name for name, shown in NOTEBOOKS.items() if kind in shown.values()]


def notebook_parameters(name: str, workdirs: dict, figdir: Path, quick: bool) -> dict:
    workdir_of = {parameter: workdirs.get(kind) for parameter, kind in NOTEBOOKS[name].items()}
    return {**{parameter: None if workdir is None else str(workdir)
               for parameter, workdir in workdir_of.items()},
            "FIGDIR": str(figdir), "QUICK": quick}


def make_figures(workdirs: dict, figdir: str | Path, *, names=None, quick: bool = True,
                 executed_dir: str | Path | None = None, timeout: int | None = None,
                 jax_cache: str | Path = JAX_CACHE) -> dict:
    """Executes the notebooks `names` (default: all) with the given workdirs
    {kind of `RUN_KINDS`: path or None}; returns {notebook: seconds}."""
    from notebooks.lib import runs

    check = {"density": runs.density_run, "flow": runs.flow_run, "sweep": runs.sweep_run,
             "ising": runs.ising_run}
    workdirs = {kind: None if path is None else check[kind](Path(path).resolve())
                for kind, path in workdirs.items()}
    figdir = Path(figdir).resolve()
    env = kernel_environment(jax_cache)
    seconds = {}
    for name in names or NOTEBOOKS:
        start = time.perf_counter()
        save_to = None if executed_dir is None else Path(executed_dir) / f"{name}.ipynb"
        execute(name, notebook_parameters(name, workdirs, figdir, quick), timeout=timeout,
                save_to=save_to, env=env)
        seconds[name] = time.perf_counter() - start
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="python -m notebooks.make_figures",
        description="Execute every notebook in notebooks/ and write its figures (PNG and "
                    "PDF). Notebooks whose workdir is not given make a small run themselves "
                    "in runs/notebooks/.")
    for kind, what in RUN_KINDS.items():
        parser.add_argument(f"--{kind}-workdir", help=f"{what} ({', '.join(shown_by(kind))})")
    parser.add_argument("--figdir", default=str(NOTEBOOK_DIR / "figures"),
                        help="where figures are written (default notebooks/figures)")
    parser.add_argument("--only", help=f"comma-separated notebooks, of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--full", action="store_true", help="runs made for a missing workdir "
                        "use the CPU default config, not the quick one")
    parser.add_argument("--executed", help="also write the executed notebooks (.ipynb) here")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from fieldnet.errors import FieldnetError

    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    unknown = sorted(set(names or ()) - set(NOTEBOOKS))
    if unknown:
        raise FieldnetError(f"unknown notebook(s) {unknown}; choose from {list(NOTEBOOKS)}")
    workdirs = {kind: getattr(args, f"{kind}_workdir") for kind in RUN_KINDS}
    seconds = make_figures(workdirs, args.figdir, names=names, quick=not args.full,
                           executed_dir=args.executed, timeout=args.timeout)
    for name, s in seconds.items():
        print(f"{name}: {s:.0f} s")
    print(f"figures in {Path(args.figdir).resolve()}")
    return 0


if __name__ == "__main__":
    from fieldnet.cli import run

    run(main)
