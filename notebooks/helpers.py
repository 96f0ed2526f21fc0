"""What the notebooks in `notebooks/` need beyond `fieldnet.report` and `phase_figures`.

- Runs: each notebook shows a given run's workdir, or makes a small run itself through
  the library API (`density_run`, `sweep_run`, `ising_run`) under `runs/notebooks/`.
- Recomputation: `held_out` rebuilds a density run's held-out predictions from its best
  checkpoint, and `check_against_eval` compares them with its `eval.json`.
- Figures the report does not draw: the training set's maps, T-rho diagram and PDFs, the
  metrics of a hyperparameter sweep against each varied setting, and equivariance errors.
- Output: `drawn` takes the Figure that a `report` / `phase_figures` function draws;
  `save` writes every figure as PNG and PDF with the numbers it shows (read from the
  run's eval.json) in its title and in the files' metadata, where tests can read them.

Figures are `matplotlib.figure.Figure` objects (no pyplot), as in `fieldnet.report`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import ml_collections
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, phases
from fieldnet.figures import report
from fieldnet.records import flatten, to_json_value

RUNS = Path("runs") / "notebooks"
FIGURE_FORMATS = ("png", "pdf")
# Recomputed test metrics that differ from eval.json by more than this (relative) mean
# the checkpoint or the data changed since the run was evaluated.
RECOMPUTE_RTOL = 1e-2


# --- where notebooks run ---------------------------------------------------------------------

def repository_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout holding `experiments/configs` at or above `start` (default: the cwd)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "experiments" / "configs").is_dir() and (folder / "fieldnet").is_dir():
            return folder
    raise FieldnetError(f"no fieldnet checkout at or above {start}: run the notebooks from "
                        "the repository (they read experiments/configs and write runs/)")


def use_repository_root() -> Path:
    """Makes the repository root the working directory, so the relative paths of configs
    (runs/data/...) and of FIGDIR mean the same from Jupyter (started in notebooks/) and
    from `python -m notebooks.make_figures`."""
    root = repository_root()
    os.chdir(root)
    return root


# --- runs ------------------------------------------------------------------------------------

load_config = rundir.read_config
load_eval = rundir.read_eval
existing_run = rundir.require


def _size(quick: bool) -> str:
    return "quick" if quick else "default"


def own_workdir(kind: str, quick: bool, config: ml_collections.ConfigDict) -> Path:
    """Where a notebook keeps the run it makes: named by the config's hash, so that a
    changed config makes a new run instead of meeting a workdir that refuses it."""
    text = json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True)
    return RUNS / f"{kind}_{_size(quick)}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _run_once(config, workdir: Path, study: Callable) -> Path:
    """Runs `study` unless the workdir already holds this config's finished run."""
    rundir.prepare(config, workdir)
    if not rundir.evaluation(workdir).exists():
        study(config, workdir)
    return workdir


def density_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given, else a density -> temperature run of `get_config("quick")` (or of
    the CPU default) made here, in runs/notebooks/, and reused once finished."""
    if workdir is not None:
        return existing_run(workdir, rundir.CONFIG, rundir.EVAL, rundir.NORMALIZER,
                            rundir.MODEL_IO)
    from experiments.configs import density_to_temp
    from experiments.studies import density_to_temp as study

    config = density_to_temp.get_config("quick" if quick else None)
    config.train.progress = False
    return _run_once(config, own_workdir("density_to_temp", quick, config),
                     study.train_and_evaluate)


def ising_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given, else an Ising phase study of `ising.get_config("quick")` (or of
    the default) made here, in runs/notebooks/, and reused once finished."""
    if workdir is not None:
        return existing_run(workdir, rundir.CONFIG, rundir.EVAL)
    from experiments.configs import ising
    from experiments.studies import ising_phases as phase_study

    config = ising.get_config("quick" if quick else None)
    config.train.progress = False
    return _run_once(config, own_workdir("ising", quick, config), phase_study.train_and_evaluate)


def sweep_run(workdir=None, quick: bool = True) -> Path:
    """`workdir` if given (an `experiments.sweep` output), else the paper's variations
    (experiments/configs/density_to_temp_variations.py) on the quick (or default) config,
    run here in runs/notebooks/. Variations that change nothing on that base config (the
    quick model already has depth 2 and width 8) are left out."""
    if workdir is not None:
        return existing_run(workdir, rundir.TABLE_CSV, rundir.TABLE_MD)
    from experiments.configs import density_to_temp, density_to_temp_variations
    from experiments.studies import density_to_temp as study
    from experiments.studies import sweep

    base = density_to_temp.get_config("quick" if quick else None)
    base.train.progress = False
    variations = {name: overrides for name, overrides
                  in density_to_temp_variations.get_variations().items()
                  if not overrides
                  or sweep.apply_overrides(base, overrides).to_dict() != base.to_dict()}
    out = own_workdir("sweep", quick, base)
    done = [out / rundir.TABLE_CSV, out / rundir.TABLE_MD] + [rundir.evaluation(out / name)
                                                            for name in variations]
    if not all(path.exists() for path in done):
        sweep.run_sweep(base, variations, out, study.train_and_evaluate)
    return out


# --- a density run's held-out set, recomputed from its checkpoint -------------------------------

def open_run_dataset(workdir):
    """The run's dataset, with the normalizer the run saved (never refitted)."""
    from fieldnet import data
    from fieldnet.data.transforms import Normalizer

    workdir = Path(workdir)
    config = load_config(workdir)
    return data.FieldDataset(config.data, normalizer=Normalizer.load(rundir.normalizer(workdir)))


def held_out(workdir):
    """`fieldnet.eval.held_out.held_out` of the run's best checkpoint on its test split: the same
    predictions, baseline fit and metrics as its eval.json."""
    from fieldnet.eval import held_out as evaluate
    from fieldnet.eval.inference import load_run

    model, _, _ = load_run(workdir)
    with open_run_dataset(workdir) as ds:
        return evaluate.held_out(model, ds, load_config(workdir))


def check_against_eval(summary: dict, evaluation: dict,
                       keys: Sequence[str] = ("mse", "baseline_mse", "pixel_corr")) -> dict:
    """{key: (eval.json, recomputed, relative difference)}; raises when they disagree by
    more than `RECOMPUTE_RTOL` (a run evaluated on another device may differ by rounding)."""
    rows = {}
    for key in keys:
        saved, again = evaluation["test"][key], summary[key]
        rows[key] = (saved, again, abs(again - saved) / max(abs(saved), 1e-12))
    bad = {k: v for k, v in rows.items() if not v[2] <= RECOMPUTE_RTOL}
    if bad:
        raise FieldnetError("the checkpoint's test metrics differ from eval.json "
                            f"(key: saved, recomputed, relative difference) {bad}; the run "
                            "or its data changed after evaluation")
    return rows


def pick_by_simulation(sim_index: np.ndarray, n: int) -> np.ndarray:
    """Up to n sample positions, one per simulation first (then the rest, in order)."""
    sim_index = np.asarray(sim_index)
    _, first = np.unique(sim_index, return_index=True)
    first = np.sort(first)
    rest = np.setdiff1d(np.arange(len(sim_index)), first)
    return np.concatenate([first, rest])[:n]


# --- figure output -------------------------------------------------------------------------

def drawn(figure_function: Callable, *args, **kwargs) -> Figure:
    """The Figure that a `fieldnet.report` / `fieldnet.phase_figures` function draws when
    its path is None (pass None where it takes the path), checked to be one."""
    fig = figure_function(*args, **kwargs)
    if not isinstance(fig, Figure):
        raise RuntimeError(f"{figure_function.__name__} returned {type(fig).__name__}, not a "
                           "Figure: pass None as its path")
    return fig


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def title(fig: Figure, text: str) -> Figure:
    fig.suptitle(text, fontsize=9)
    return fig


def save(fig: Figure, figdir, name: str, numbers: dict | None = None) -> list[Path]:
    """Writes figdir/name.png and .pdf. `numbers` (what the title shows, from eval.json)
    go into the files' metadata as JSON: PNG text chunk "Description", PDF "Subject"."""
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json_value(numbers or {}), sort_keys=True)
    metadata = {"png": {"Title": name, "Description": text},
                # no CreationDate: the same run gives byte-identical files
                "pdf": {"Title": name, "Subject": text, "CreationDate": None}}
    paths = []
    for ext in FIGURE_FORMATS:
        path = figdir / f"{name}.{ext}"
        fig.savefig(path, dpi=report.DPI, bbox_inches="tight", metadata=metadata[ext])
        paths.append(path)
    return paths


def figure_numbers(png_path) -> dict:
    """The numbers `save` stored in a PNG."""
    from PIL import Image

    with Image.open(png_path) as image:
        return json.loads(image.text["Description"])


def print_numbers(numbers: dict) -> None:
    print(json.dumps(to_json_value(numbers), indent=1, sort_keys=True))


def show(paths: Sequence[Path]):
    """The PNG of `save`'s output, for display in the notebook."""
    from IPython.display import Image

    return Image(filename=str(next(p for p in paths if p.suffix == ".png")))


# --- data overview ----------------------------------------------------------------------------

def training_maps(ds, max_samples: int = 64) -> dict:
    """Up to `max_samples` training maps spread over the train split (`ds.read`), so that
    the overview of a large dataset fits in memory."""
    regions = ds.splits["train"]
    if ds.source.single_box or len(regions) <= max_samples:
        return ds.read("train")
    picks = np.linspace(0, len(regions) - 1, max_samples).round().astype(int)
    return ds.read([regions[i].sample for i in np.unique(picks)])


def log_fields(ds, samples: dict) -> tuple[np.ndarray, np.ndarray]:
    """log10 rho and log10 T stacks (first input / target channel) of `ds.read` samples,
    with the run's log floors."""
    log_rho = ds.normalizer[ds.input_names[0]].unstandardize(samples["x"][..., 0])
    log_t = ds.normalizer[ds.target_names[0]].unstandardize(samples["y"][..., 0])
    return log_rho, log_t


def example_maps(log_rho, log_t, sim_index, *, box_size: float, density_units: str) -> Figure:
    """One row per map: log10 rho and log10 T, in the box's Mpc/h (3D: middle slice)."""
    rows = [(report.central_slice(r), report.central_slice(t), s)
            for r, t, s in zip(log_rho, log_t, sim_index, strict=True)]
    fig = Figure(figsize=(6.4, 2.7 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False, sharex=True, sharey=True)
    extent = (0, box_size, 0, box_size)
    columns = [(report.log_rho_label(density_units), "cividis"),
               (report.LOG_T_LABEL, "inferno")]
    for i, (rho, t, sim) in enumerate(rows):
        for j, (image, (label, cmap)) in enumerate(zip((rho, t), columns, strict=True)):
            ax = axes[i, j]
            im = ax.imshow(image.T, origin="lower", cmap=cmap, extent=extent)
            fig.colorbar(im, ax=ax, label=label, shrink=0.9)
            ax.set_title(f"simulation {sim}", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[i, 0].set_ylabel("[Mpc/$h$]", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("[Mpc/$h$]", fontsize=8)
    return fig


def training_phase_diagram(log_rho, log_t, *, density_units: str, baseline=None,
                           n_bins: int = 100) -> Figure:
    """The T-rho phase diagram of the training set (`metrics.joint_histogram`); `baseline`
    (log rho, log T points) draws the local baseline, the conditional mean of log T."""
    edges_x = report.histogram_edges(log_rho, n_bins)
    edges_y = report.histogram_edges(log_t, n_bins)
    hist = metrics.joint_histogram(log_rho, log_t, edges_x, edges_y)
    fig = Figure(figsize=(5.8, 4.4), layout="constrained")
    ax = fig.subplots()
    positive = hist[hist > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    mesh = ax.pcolormesh(edges_x, edges_y, np.where(hist > 0, hist, np.nan).T, norm=norm,
                         cmap="viridis", rasterized=True)
    if baseline is not None:
        ax.plot(*baseline, color=report.COLORS["baseline"], lw=1.5,
                label=r"local baseline $\langle \log_{10} T | \rho \rangle$")
        ax.legend(frameon=False, loc="upper left", fontsize=8)
    ax.set_xlabel(report.log_rho_label(density_units))
    ax.set_ylabel(report.LOG_T_LABEL)
    fig.colorbar(mesh, ax=ax, label="pixel density [dex$^{-2}$]")
    return fig


def one_point_pdfs(splits: dict[str, tuple[np.ndarray, np.ndarray]], *, density_units: str,
                   n_bins: int = 80) -> Figure:
    """PDFs of log10 rho and log10 T (`metrics.one_point_pdf`) of each split given as
    {split: (log_rho, log_t)}; the bins follow the first split."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    labels = (report.log_rho_label(density_units), report.LOG_T_LABEL)
    first = next(iter(splits.values()))
    for j, (ax, label) in enumerate(zip(axes, labels, strict=True)):
        edges = report.histogram_edges(first[j], n_bins)
        centres = 0.5 * (edges[1:] + edges[:-1])
        for k, (split, fields) in enumerate(splits.items()):
            pdf = metrics.one_point_pdf(fields[j], edges)
            ax.semilogy(centres, np.where(pdf > 0, pdf, np.nan), ls=("-", "--", ":")[k % 3],
                        color=("black", "tab:blue", "tab:green")[k % 3],
                        label=f"{split} ({len(fields[j])} maps)")
        ax.set_xlabel(label)
        ax.set_ylabel(r"PDF [dex$^{-1}$]")
        ax.legend(frameon=False, fontsize=8)
    return fig


# --- hyperparameter variations ------------------------------------------------------------------

def sweep_rows(sweep_dir) -> list[dict]:
    """One row per variation of a sweep, in table.csv's order: `experiments.studies.sweep.table_row`
    of its eval.json (checked against table.csv), plus `settings`, {config key: value}
    where its config differs from the reference variation (the one without overrides,
    else the first), and `values`, its value of every key that some variation varies."""
    from experiments.studies import sweep

    sweep_dir = Path(sweep_dir)
    with open(sweep_dir / rundir.TABLE_CSV, newline="") as f:
        table = list(csv.DictReader(f))
    if not table:
        raise FieldnetError(f"{sweep_dir}/table.csv lists no variations")
    configs = {r["variation"]: flatten(rundir.read_json(rundir.config(sweep_dir / r["variation"])))
               for r in table}
    reference = next((r["variation"] for r in table if not r["overrides"]), table[0]["variation"])
    varied = sorted({k for config in configs.values() for k, v in config.items()
                     if k != "name" and configs[reference].get(k) != v})
    rows = []
    for r in table:
        name = r["variation"]
        row = sweep.table_row(name, {}, load_eval(existing_run(sweep_dir / name, rundir.EVAL)))
        row["overrides"] = r["overrides"]
        for column in sweep.COLUMNS[2:]:
            if not math.isclose(float(r[column]), row[column], rel_tol=1e-9, abs_tol=1e-12):
                raise FieldnetError(f"{sweep_dir}/table.csv: {name} {column} = {r[column]} "
                                    f"but its eval.json gives {row[column]}; rerun the sweep")
        config = configs[name]
        row["settings"] = {k: config.get(k) for k in varied
                           if configs[reference].get(k) != config.get(k)}
        row["values"] = {k: config.get(k) for k in varied}
        rows.append(row)
    return rows


def _setting_groups(rows: list[dict]) -> dict[tuple[str, ...], list[dict]]:
    """Variations grouped by which settings they change. A tuple-valued key that changes
    together with a scalar one (channel_mult with depth) is folded into it."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        keys = [k for k, v in sorted(row["settings"].items()) if not isinstance(v, tuple)]
        keys = tuple(keys or sorted(row["settings"]))
        if keys:
            groups.setdefault(keys, []).append(row)
    return groups


def _value_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


METRIC_PANELS = (  # (row column, its baseline column, y label)
    ("mse", "baseline_mse", "test MSE\n(standardized $\\log_{10} T$)"),
    ("pixel_corr", None, "pixel $r$ of $\\log_{10} T$"),
    ("mean_r_to_half_nyquist", "baseline_mean_r_to_half_nyquist",
     r"mean $r(k)$, $k \leq k_\mathrm{Nyq}/2$"),
)


def _numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def variations_figure(rows: list[dict]) -> Figure:
    """Test metrics against each varied setting (rows of `sweep_rows`): one column per
    setting, the reference variation among its values; dashed: the local baseline."""
    groups = _setting_groups(rows)
    reference = next(r for r in rows if not r["settings"])
    n_cols = max(len(groups), 1)
    fig = Figure(figsize=(2.8 * n_cols + 0.8, 7), layout="constrained")
    axes = fig.subplots(len(METRIC_PANELS), n_cols, squeeze=False, sharey="row")
    if not groups:
        axes[0, 0].text(0.5, 0.5, "one variation: nothing varied", ha="center",
                        transform=axes[0, 0].transAxes)
    for j, (keys, members) in enumerate(groups.items()):
        points = [reference, *members]
        if len(keys) == 1 and all(_numeric(p["values"][keys[0]]) for p in points):
            points.sort(key=lambda p: p["values"][keys[0]])
        labels = [", ".join(_value_label(p["values"][k]) for k in keys) for p in points]
        for i, (column, baseline_column, ylabel) in enumerate(METRIC_PANELS):
            ax = axes[i, j]
            ax.plot(range(len(points)), [p[column] for p in points], "o-",
                    color=report.COLORS["model"], label="model")
            if baseline_column is not None:
                ax.plot(range(len(points)), [p[baseline_column] for p in points], "s--",
                        color=report.COLORS["baseline"], ms=4, label="local baseline")
            ax.set_xticks(range(len(points)), labels, fontsize=8)
            ax.set_xlim(-0.5, len(points) - 0.5)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            if i == 0 and j == 0:
                ax.legend(frameon=False, fontsize=7)
        axes[-1, j].set_xlabel(", ".join(keys), fontsize=9)
    return fig


# --- equivariance ------------------------------------------------------------------------------

def translation_error(forward: Callable, x: np.ndarray, shift: int) -> np.ndarray:
    """|f(T x) - T f(x)| per pixel, T the periodic shift by `shift` pixels along every
    spatial axis of x `(1, *spatial, C)`; returns `(*spatial)` (first output channel)."""
    axes = tuple(range(1, x.ndim - 1))
    moved = np.asarray(forward(np.roll(x, shift, axis=axes)))
    back = np.roll(moved, -shift, axis=axes)
    return np.abs(back - np.asarray(forward(x)))[0, ..., 0]


def group_errors(forward: Callable, x: np.ndarray) -> dict[str, np.ndarray]:
    """|g^-1 f(g x) - f(x)| per pixel for every non-identity element g of the grid's
    symmetry group (`fieldnet.symmetry`), keyed by a readable name."""
    from fieldnet import symmetry

    ndim = x.ndim - 2
    reference = np.asarray(forward(x))
    out = {}
    for g in symmetry.group_elements(ndim)[1:]:
        y = np.asarray(forward(np.ascontiguousarray(symmetry.apply(x, g))))
        out[element_name(g)] = np.abs(symmetry.apply(y, symmetry.inverse(g)) - reference)[0, ..., 0]
    return out


def element_name(g) -> str:
    axes = "xyz"
    return ("(" + ",".join(("-" if f else "") + axes[p] for p, f in zip(g.perm, g.flips,
                                                                          strict=True)) + ")")


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(values, np.float64)))))


def error_maps_figure(maps: dict[str, np.ndarray], *, box_size: float, units: str,
                      n_cols: int = 2) -> Figure:
    """|error| maps (3D: middle slice) on one logarithmic colour scale; the panel titles
    are the dict's keys."""
    slices = {name: report.central_slice(m) for name, m in maps.items()}
    top = max(float(m.max()) for m in slices.values())
    floor = max(top * 1e-9, np.finfo(np.float32).tiny)
    norm = LogNorm(vmin=floor, vmax=max(top, floor * 10))
    n_rows = math.ceil(len(slices) / n_cols)
    fig = Figure(figsize=(3.3 * n_cols + 0.8, 3.1 * n_rows + 0.3), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    extent = (0, box_size, 0, box_size)
    for ax, (name, image) in zip(axes.flat, slices.items(), strict=False):
        im = ax.imshow(np.maximum(image, floor).T, origin="lower", cmap="magma", norm=norm,
                       extent=extent)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(slices):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("[Mpc/$h$]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("[Mpc/$h$]", fontsize=8)
    fig.colorbar(im, ax=axes, label=f"|equivariance error| [{units}]")
    return fig


def error_bars_figure(errors: dict[str, float], *, units: str, rounding: float) -> Figure:
    """RMS equivariance error of each case on a log axis, against float32 rounding of the
    output (the floor an exactly equivariant network reaches); an error of exactly zero
    (bitwise equal outputs) is drawn at the axis floor and labelled so."""
    floor = min([rounding, *(v for v in errors.values() if v > 0)]) / 30
    fig = Figure(figsize=(6.5, 0.55 * len(errors) + 1.2), layout="constrained")
    ax = fig.subplots()
    names = list(errors)
    values = [max(errors[n], floor) for n in names]
    ax.barh(range(len(names)), values, left=floor / 3, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(floor / 3, max(values) * 30)
    for i, name in enumerate(names):
        label = f" {errors[name]:.2g}" if errors[name] > 0 else " 0 (bitwise equal)"
        ax.text(values[i], i, label, va="center", fontsize=8)
    ax.axvline(rounding, color="gray", ls=":", label="float32 rounding of the output")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xlabel(f"RMS equivariance error [{units}]")
    return fig


# --- Ising ----------------------------------------------------------------------------------------

def ising_curves(evaluation: dict) -> list[phases.Curve]:
    """P(ordered | T) of each L from eval.json's `curves`, smallest L first."""
    return [phases.Curve(int(L), np.asarray(c["T"], float), np.asarray(c["p_ordered"], float), [])
            for L, c in sorted(evaluation["curves"].items(), key=lambda item: int(item[0]))]


def ising_extrapolation(evaluation: dict, nu: float, corrections: int = 1):
    """The run's finite-size fit for `phase_figures.tc_extrapolation`, from eval.json's
    `fit` (T_c, its error and the correction coefficients); runs that stored no
    coefficients are refitted on their per-L crossings (`phases.finite_size_extrapolation`)."""
    fit = evaluation.get("fit") or {}
    if "coefficients" in fit:
        return phases.Extrapolation(evaluation["tc"], evaluation["tc_err"],
                                    list(fit["coefficients"]), fit["chi2"], fit["dof"])
    per_size = evaluation["per_L"]
    sizes = sorted(per_size, key=int)
    options = {"corrections": corrections} if corrections > 1 else {}
    refit = phases.finite_size_extrapolation([int(L) for L in sizes],
                                             [per_size[L]["tc"] for L in sizes],
                                             [per_size[L]["tc_err"] for L in sizes], nu=nu,
                                             **options)
    return dataclasses.replace(refit, tc=evaluation["tc"], tc_err=evaluation["tc_err"])
