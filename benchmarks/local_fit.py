"""How much of the temperature each input carries, pixel by pixel: a cheap ablation.

    python -m benchmarks.local_fit --path runs/data/sim2d_25mpc_g64_n80_ps2.h5

For each set of inputs (density only, + dispersion, + divergence, + the in-plane speed,
all) a cubic polynomial of local features predicts standardized log10 T per pixel. The
features are each input (log10 for the positive ones, as the phase-space config
transforms them) and its Gaussian smoothing over 1 and 4 pixels, so the fit sees a little
in-plane context, as a network's first layers do; `--conditioned` adds the simulation's
parameters. It is fitted on the train simulations' pixels and scored on each test
simulation as the studies split them (`data.split_fractions`, `data.split_seed`
defaults), and reported as MSE over the local baseline T(density) of `fieldnet.eval`:
mean ± standard error over the test boxes. A network with the same inputs should do at
least as well; the gap between rows says what an input adds, without training one.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
from scipy.ndimage import gaussian_filter

from data_tools.phase_space import DISPERSION_LOG_FLOOR
from data_tools.simulate import PARAM_NAMES
from fieldnet import cli
from fieldnet.data.dataset import default_config, split_simulations
from fieldnet.data.h5format import open_file
from fieldnet.data.transforms import log10_floored
from fieldnet.errors import FieldnetError
from fieldnet.eval.baseline import LocalBaseline

INPUT_SETS = {
    "density": (),
    "+ dispersion": ("velocity_dispersion",),
    "+ divergence": ("velocity_divergence",),
    "+ speed": ("speed",),
    "all": ("velocity_dispersion", "velocity_divergence", "speed"),
}
CONDITIONS = ("t0", "gamma", "heating_efficiency")
SMOOTHING = (1.0, 4.0)  # pixels
FIT_PIXELS = 400_000    # train pixels the polynomial is fitted on


def local_inputs(f, index: np.ndarray) -> dict[str, np.ndarray]:
    """The maps `index` of each input, as the phase-space config transforms them: log10
    above the file's log floor for the positive fields, the divergence as it is."""
    fields = f["fields"]

    def read(name):
        return np.asarray(fields[name][np.sort(index)], np.float64)

    def log(name):
        floor = fields[name].attrs.get("log_floor")
        return log10_floored(read(name), floor, field=name).astype(np.float64)

    speed = np.hypot(read("velocity_x"), read("velocity_y"))
    return {"density": log("density"), "velocity_dispersion": log("velocity_dispersion"),
            "velocity_divergence": read("velocity_divergence"),
            "speed": log10_floored(speed, DISPERSION_LOG_FLOOR, field="speed").astype(np.float64)}


def features(maps: dict[str, np.ndarray], names, params: np.ndarray | None) -> np.ndarray:
    """(pixels, n) per-pixel features: each map and its smoothings (periodic), and the
    maps' parameters broadcast over their pixels."""
    columns = []
    for name in ("density", *names):
        columns.append(maps[name])
        columns += [np.stack([gaussian_filter(m, s, mode="wrap") for m in maps[name]])
                    for s in SMOOTHING]
    if params is not None:
        columns += [np.broadcast_to(p[:, None, None], maps["density"].shape) for p in params.T]
    return np.stack([c.ravel() for c in columns], 1)


def cubic(x: np.ndarray) -> np.ndarray:
    """1, x_i, x_i x_j (i <= j) and x_i^3."""
    pairs = itertools.combinations_with_replacement(range(x.shape[1]), 2)
    return np.concatenate([np.ones((len(x), 1)), x, np.stack([x[:, i] * x[:, j] for i, j in
                                                             pairs], 1), x**3], 1)


def ablation(path: str, conditioned: bool, seed: int = 0) -> dict[str, dict]:
    """{input set: {"ratio": mean over test boxes, "err": its standard error, "mse": ...}}."""
    c = default_config()
    with open_file(path) as f:
        missing = {"velocity_dispersion", "velocity_divergence", "velocity_x",
                   "velocity_y"} - set(f["fields"])
        if missing:
            raise FieldnetError(f"{path} lacks the phase-space fields {sorted(missing)} "
                                "(python -m data_tools.simulate writes them)")
        sim_index = np.asarray(f["sim_index"])
        splits = split_simulations(sim_index, c.split_fractions, c.split_seed)
        train, test = np.sort(splits["train"]), np.sort(splits["test"])
        params = np.asarray(f["params"], np.float64)
        keep = [PARAM_NAMES.index(n) for n in CONDITIONS]
        params = params[:, keep]
        params = (params - params[train].mean(0)) / params[train].std(0)
        maps = {"train": local_inputs(f, train), "test": local_inputs(f, test)}
        log_t = {s: np.log10(np.asarray(f["fields/temperature"][i], np.float64))
                 for s, i in (("train", train), ("test", test))}
    mean, std = log_t["train"].mean(), log_t["train"].std()
    y = {s: (v - mean) / std for s, v in log_t.items()}
    baseline = LocalBaseline().fit([(maps["train"]["density"], y["train"])])
    test_sims = sim_index[test]
    per_box = {s: test_sims == s for s in np.unique(test_sims)}
    base_mse = {s: np.mean((baseline.predict(maps["test"]["density"][m]) - y["test"][m]) ** 2)
                for s, m in per_box.items()}
    rows = np.random.default_rng(seed).choice(y["train"].size, min(FIT_PIXELS, y["train"].size),
                                             replace=False)
    results = {}
    for label, names in INPUT_SETS.items():
        p = {s: params[i] if conditioned else None for s, i in (("train", train), ("test", test))}
        x_train = features(maps["train"], names, p["train"])
        centre, scale = x_train.mean(0), x_train.std(0)
        design = cubic((x_train[rows] - centre) / scale)
        coef = np.linalg.lstsq(design, y["train"].ravel()[rows], rcond=None)[0]
        pred = (cubic((features(maps["test"], names, p["test"]) - centre) / scale) @ coef
                ).reshape(y["test"].shape)
        ratios = np.array([np.mean((pred[m] - y["test"][m]) ** 2) / base_mse[s]
                           for s, m in per_box.items()])
        results[label] = {"ratio": float(ratios.mean()),
                          "err": float(ratios.std(ddof=1) / np.sqrt(len(ratios))),
                          "n_test_boxes": len(ratios)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_fit",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True,
                        help="a simulator file with phase-space fields")
    parser.add_argument("--conditioned", action="store_true",
                        help=f"add the simulation's {', '.join(CONDITIONS)} as features")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    results = ablation(args.path, args.conditioned)
    kind = "conditioned" if args.conditioned else "unconditioned"
    print(f"{'inputs':<14} MSE / local baseline ({kind}, cubic fit)")
    for label, r in results.items():
        print(f"{label:<14} {r['ratio']:.3f} ± {r['err']:.3f}  ({r['n_test_boxes']} test boxes)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    cli.run(main)
