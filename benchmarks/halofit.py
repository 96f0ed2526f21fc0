"""The simulator's z = 0 P(k) against CAMB halofit up to k = 1 h/Mpc, at chosen resolutions.

    python -m benchmarks.halofit --box 256 --particles 256 --mesh-factor 2 --steps 10
    python -m benchmarks.halofit --box 128 --particles 128 --mesh-factor 2,3 --steps 10,20

Every combination of the comma-separated settings is run as a paired-fixed pair
(`data_tools.halofit_check`) and printed as one JSON line per run: P_PM / P_halofit per k
bin, the largest deviation over the bins, and the wall time. --out appends the lines to
a file. The test suite checks one of these resolutions; this runs any others.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import jax
import numpy as np

from data_tools import cosmology
from data_tools.halofit_check import halofit_ratio
from fieldnet import cli


def _positive_list(parser: argparse.ArgumentParser, name: str, text: str, kind=int) -> list:
    """A comma-separated list of positive numbers, or a one-line usage error."""
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        parser.error(f"--{name} takes comma-separated {kind.__name__}s, got {text!r}")
    if not all(v > 0 for v in values):
        parser.error(f"--{name} values must be positive, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog="python -m benchmarks.halofit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--box", default="256", help="box sizes [Mpc/h], comma-separated")
    parser.add_argument("--particles", default="256", help="particles per side")
    parser.add_argument("--mesh-factor", default="2", help="PM cells per particle spacing")
    parser.add_argument("--steps", default="10", help="FastPM steps from a = 0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kmin", type=float, default=0.05)
    parser.add_argument("--kmax", type=float, default=1.0)
    parser.add_argument("--bins", type=int, default=12, help="log-spaced k bins")
    parser.add_argument("--omega-m", type=float, default=0.3)
    parser.add_argument("--sigma8", type=float, default=0.8)
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    settings = [_positive_list(parser, "box", args.box, float),
                _positive_list(parser, "particles", args.particles),
                _positive_list(parser, "mesh-factor", args.mesh_factor),
                _positive_list(parser, "steps", args.steps)]
    if not 0 < args.kmin < args.kmax or args.bins < 1:
        parser.error("need 0 < --kmin < --kmax and --bins >= 1")
    if args.kmin < 2 * np.pi / min(settings[0]):
        parser.error(f"--kmin {args.kmin} is below the fundamental 2 pi / {min(settings[0])}")
    if args.out and not Path(args.out).parent.is_dir():
        parser.error(f"--out {args.out}: folder {Path(args.out).parent} does not exist")
    cosmo = cosmology.Cosmology(omega_m=args.omega_m, sigma8=args.sigma8)
    edges = np.geomspace(args.kmin, args.kmax, args.bins + 1)
    for box, grid, factor, steps in itertools.product(*settings):
        result = halofit_ratio(cosmo, box_size=box, particle_grid=grid, edges=edges,
                               mesh_factor=factor, n_steps=steps, seed=args.seed,
                               progress=True)
        line = {"box": box, "particles": grid, "mesh_factor": factor, "steps": steps,
                "seed": args.seed, "spacing": box / grid,
                "k": np.round(result.k, 4).tolist(),
                "ratio": np.round(result.ratio, 4).tolist(),
                "max_abs_deviation": float(np.nanmax(np.abs(result.ratio - 1))),
                "seconds": round(result.seconds, 1), "device": jax.devices()[0].device_kind}
        print(json.dumps(line), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
