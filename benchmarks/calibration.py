r"""How well a trained flow run's samples are calibrated on its test boxes, raw and after a
spread calibration fitted on its validation maps (`fieldnet.eval.calibration`).

    python -m benchmarks.calibration --workdir runs/density_to_temp_flow_few \
        [--max-val-maps 48 --val-samples val.npz --out calibration.json --figure cal.png]
        [--method offset]

Draws `--samples` (default the run's eval.n_samples) samples of each validation map with
the run's best checkpoint (`--steps` Heun steps, default its eval.sample_steps; noise from
seed config.seed + 1, so it is not the test maps'), fits the calibration on them (the
method `--method`, default the spread), and scores
the test maps' samples, read from the run's test_samples.h5 (drawn again, as evaluation
drew them, where the file is absent or holds another number of samples). A relative
data.path is taken in the working directory (run this from the repository root, as the
run's command ran), or in `--data-root`.

Prints one JSON object (and writes it to `--out`), on the first target field:

- `calibration`: the fit (`calibration.to_dict`: the spread, validation coverage raw and
  calibrated);
- `test.raw`, `test.calibrated`: `coverage_68`, `coverage_95` (means over the test maps)
  with `*_err`, bootstrap standard errors over the test simulations (as eval.json's
  `mse_err`), `per_box` coverages, `pit_ks` (KS distance of the PIT from uniform),
  `mse_of_mean` (normalized space; the calibration keeps the mean, so the two agree),
  `power_ratio` P_samples(k) / P_true(k) of log10 T per k bin and `power_ratio_range`, its
  smallest and largest value for k ≤ k_Nyq / 2, and `max_log_power_error`, the largest
  |ln P_samples / P_true| there (smaller is better);
- `k` [h/Mpc], the counts of maps and boxes, and `seconds` spent drawing and fitting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fieldnet import cli, rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import calibration, held_out, metrics, spectra, statistics
from fieldnet.figures import calibration as calibration_figures
from fieldnet.files import atomic_output, write_json
from fieldnet.inference import open_run
from fieldnet.records import to_json_value


def draw(run, split: dict, n_samples: int, steps: int, seed: int, batch: int) -> np.ndarray:
    """`n_samples` samples (N, S, *spatial, C) of each map of `split` (`ds.read`), map i's
    noise `sampling.sample_noise(seed, i, ...)` as in evaluation (`Flow.sample_test`)."""
    config = run.config.copy_and_resolve_references()
    config.eval.n_samples, config.eval.sample_steps = n_samples, steps
    config.eval.batch_size, config.train.progress = batch, True
    return run.objective.sample_test(run.model, split, config, seed=seed)


def kept_validation_samples(path, sample_index: np.ndarray, n_samples: int, steps: int,
                            seed: int) -> np.ndarray | None:
    """The validation samples `keep_validation_samples` wrote to `path`, or None where the
    file is absent or holds other maps, counts, steps or seed."""
    if path is None or not Path(path).exists():
        return None
    with np.load(path) as kept:
        same = (np.array_equal(kept["sample_index"], sample_index)
                and kept["samples"].shape[1] == n_samples
                and int(kept["steps"]) == steps and int(kept["seed"]) == seed)
        return kept["samples"] if same else None


def keep_validation_samples(path, samples: np.ndarray, sample_index: np.ndarray, steps: int,
                            seed: int) -> None:
    """Writes the validation samples (normalized) and how they were drawn to `path` (an
    .npz, atomically), so that a second measurement does not draw them again."""
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as f:
        np.savez(f, samples=samples, sample_index=sample_index, steps=steps, seed=seed)


def scores(samples_norm: np.ndarray, true_norm: np.ndarray, samples_log: np.ndarray,
           true_log: np.ndarray, sim_index: np.ndarray, grid) -> dict:
    """The test block of one set of samples (N, S, *spatial) against the truth (N, *spatial),
    normalized and in log10 T."""
    per_map = np.stack([metrics.interval_coverage(s[None], t[None], calibration.REPORT_LEVELS)
                        for s, t in zip(samples_norm, true_norm, strict=True)])
    block = {}
    for j, level in enumerate(calibration.REPORT_LEVELS):
        key = f"coverage_{round(100 * level)}"
        block[key] = float(per_map[:, j].mean())
        block[f"{key}_err"] = metrics.group_bootstrap_error(
            per_map[:, j], sim_index, n_resamples=statistics.BOOTSTRAP_RESAMPLES,
            seed=statistics.BOOTSTRAP_SEED)
    block["per_box"] = [{"sim": int(s), **{
        f"coverage_{round(100 * p)}": float(per_map[sim_index == s, j].mean())
        for j, p in enumerate(calibration.REPORT_LEVELS)}} for s in np.unique(sim_index)]
    block["pit_ks"] = calibration.pit_ks(samples_norm, true_norm)
    block["mse_of_mean"] = metrics.mse(samples_norm.mean(axis=1), true_norm)
    p_true = spectra.average_power_spectrum(true_log, grid)
    p_samples = spectra.average_power_spectrum(
        samples_log.reshape(-1, *samples_log.shape[2:]), grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = p_samples.power / p_true.power
    low_k = (p_true.k <= grid.k_nyquist / 2) & np.isfinite(ratio)
    block["power_ratio"] = ratio
    block["power_ratio_range"] = [float(ratio[low_k].min()), float(ratio[low_k].max())]
    block["max_log_power_error"] = float(np.abs(np.log(ratio[low_k])).max())
    return block


def measure(workdir, *, max_val_maps: int | None = None, n_samples: int | None = None,
            steps: int | None = None, batch: int | None = None, data_root=None,
            figure=None, val_samples_path=None,
            levels: tuple[float, ...] = calibration.FIT_LEVELS,
            method: str = calibration.METHOD) -> dict:
    """Fits the calibration on the run's validation maps and scores its test maps (see the
    module's docstring); `figure`: a PNG path for the test maps' calibration figure;
    `val_samples_path`: an .npz that keeps the validation samples between calls; `levels`:
    the nominal levels the fit calibrates; `method`: one of `calibration.METHODS`."""
    run = open_run(workdir)
    if not run.objective.generative:
        raise FieldnetError(f"{workdir}: a {run.objective.name} run; calibration needs a "
                            "generative (model.objective='flow') run")
    config = run.config
    n_samples = n_samples or config.eval.n_samples
    steps = steps or config.eval.sample_steps
    batch = batch or config.eval.batch_size
    seconds = {}
    with run.dataset(data_root) as ds:
        target = ds.target_names[0]
        to_log = ds.normalizer[target].unstandardize
        val_regions = ds.splits["val"]
        val_sims = ds.sim_indices("val")
        chosen = calibration.spread_maps(val_sims, max_val_maps)
        val_index = np.asarray([val_regions[i].sample for i in chosen])
        val = ds.read(val_index)
        test = ds.read("test")
        seed = config.seed + calibration.VALIDATION_SEED_OFFSET
        val_samples = kept_validation_samples(val_samples_path, val_index, n_samples, steps,
                                              seed)
        if val_samples is None:
            start = time.perf_counter()
            val_samples = draw(run, val, n_samples, steps, seed, batch)
            seconds["validation_samples"] = time.perf_counter() - start
            if val_samples_path is not None:
                keep_validation_samples(val_samples_path, val_samples, val_index, steps, seed)
        test_samples = None
        kept = rundir.test_samples(workdir)
        if Path(kept).exists():
            test_samples = held_out.read_test_samples(kept, ds)
            if test_samples.shape[1] != n_samples:
                test_samples = None
        start = time.perf_counter()
        if test_samples is None:
            test_samples = draw(run, test, n_samples, steps, config.seed, batch)
            seconds["test_samples"] = time.perf_counter() - start
    start = time.perf_counter()
    cal = calibration.fit(val_samples[..., 0], val["y"][..., 0], levels, method=method)
    seconds["fit"] = time.perf_counter() - start
    raw, true = test_samples[..., 0], test["y"][..., 0]
    calibrated = calibration.apply(cal, raw)
    grid, sims = test["grid"], test["sim_index"]
    out = {"workdir": str(workdir), "calibration": calibration.to_dict(cal),
           "test": {name: scores(s, true, to_log(s), to_log(true), sims, grid)
                    for name, s in (("raw", raw), ("calibrated", calibrated))},
           "k": spectra.average_power_spectrum(to_log(true), grid).k,
           "n_val_maps": len(chosen), "n_val_boxes": len(np.unique(val_sims[chosen])),
           "n_test_maps": len(true), "n_test_boxes": len(np.unique(sims)),
           "n_samples": n_samples, "steps": steps, "seconds": seconds}
    if figure:
        calibration_figures.calibration_figure(raw, true, cal, figure)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog="python -m benchmarks.calibration",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a trained flow run's folder")
    parser.add_argument("--max-val-maps", type=cli.positive_int, default=None,
                        help="fit on at most this many validation maps (all by default)")
    parser.add_argument("--samples", type=cli.positive_int, default=None,
                        help="samples per map (default: the run's eval.n_samples)")
    parser.add_argument("--steps", type=cli.positive_int, default=None,
                        help="Heun steps per sample (default: the run's eval.sample_steps)")
    parser.add_argument("--batch", type=cli.positive_int, default=None,
                        help="trajectories per compiled call (default: eval.batch_size)")
    parser.add_argument("--data-root", default=None,
                        help="folder a relative data.path is taken in (default: here)")
    parser.add_argument("--val-samples", default=None,
                        help="an .npz that keeps the validation samples: read where it holds "
                             "the same maps, samples, steps and seed, else drawn and written")
    parser.add_argument("--levels", default=None,
                        help="comma-separated nominal levels to calibrate (default: 0.05, "
                             "0.10, ..., 0.95)")
    parser.add_argument("--method", default=calibration.METHOD, choices=calibration.METHODS,
                        help="the calibration fitted (default: %(default)s)")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    parser.add_argument("--figure", default=None,
                        help="write the test maps' calibration figure to this PNG")
    args = parser.parse_args(argv)
    if args.samples is not None and args.samples < 2:
        cli.fail("--samples must be at least 2")
    try:
        levels = (calibration.FIT_LEVELS if args.levels is None
                  else tuple(float(p) for p in args.levels.split(",")))
    except ValueError:
        cli.fail(f"--levels must be comma-separated numbers, got {args.levels!r}")
    if not levels or not all(0 < p < 1 for p in levels):
        cli.fail(f"--levels must be nominal levels in (0, 1), got {args.levels!r}")
    result = measure(args.workdir, max_val_maps=args.max_val_maps, n_samples=args.samples,
                     steps=args.steps, batch=args.batch, data_root=args.data_root,
                     figure=args.figure, val_samples_path=args.val_samples, levels=levels,
                     method=args.method)
    if args.out:
        write_json(args.out, result)
    print(json.dumps(to_json_value(result), indent=1, allow_nan=False))


if __name__ == "__main__":
    cli.run(main)
