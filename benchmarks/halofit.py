"""The simulator's z = 0 P(k) against CAMB halofit up to k = 1 h/Mpc, at chosen resolutions.

    python -m benchmarks.halofit --box 256 --particles 256 --mesh-factor 2 --steps 10
    python -m benchmarks.halofit --box 128 --particles 128 --mesh-factor 2,3 --steps 10,20

Every combination of the comma-separated settings is run as a paired-fixed pair
(`data_tools.halofit_check`) and printed as one JSON line per run: P_PM / P_halofit per k
bin, the largest deviation for k <= --kmax, and the wall time. --out appends the lines to
a file. The test suite checks large scales only; this is where k = 1 is measured.
"""

from __future__ import annotations

import argparse
import itertools
import json

import jax
import numpy as np

from data_tools import cosmology
from data_tools.halofit_check import halofit_ratio


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    cosmo = cosmology.Cosmology(omega_m=args.omega_m, sigma8=args.sigma8)
    edges = np.geomspace(args.kmin, args.kmax, args.bins + 1)
    for box, grid, factor, steps in itertools.product(
            [float(b) for b in args.box.split(",")], _ints(args.particles),
            _ints(args.mesh_factor), _ints(args.steps)):
        if args.kmin < 2 * np.pi / box:
            parser.error(f"--kmin {args.kmin} is below the fundamental 2 pi / {box}")
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
