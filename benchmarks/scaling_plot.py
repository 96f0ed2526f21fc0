r"""Plots how the training-step time grows with pixels per sample and with the batch size.

    python -m benchmarks.compare_torch --cases 2d64,2d128,2d256 --batch-sweep 2,4,8,16 \
        --out runs/bench/scaling.jsonl
    python -m benchmarks.scaling_plot runs/bench/scaling.jsonl --out runs/bench/scaling.png

Reads the `--batch-sweep` JSON lines (case, batch, pixels, s_per_step; rows of one dtype
and width) and draws, on log-log axes, seconds per step against pixels per step
(pixels × batch), one line per case, with a dashed line of slope 1 (linear scaling)
through the median point. Prints the fitted exponent of time against pixels × batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fieldnet import cli


def read_rows(path) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if "s_per_step" in r]


def scaling_exponent(rows: list[dict]) -> float:
    """Least-squares slope of log(seconds per step) against log(pixels × batch)."""
    work = np.log([r["pixels"] * r["batch"] for r in rows])
    seconds = np.log([r["s_per_step"] for r in rows])
    return float(np.polyfit(work, seconds, 1)[0])


def figure(rows: list[dict], title: str = "") -> Figure:
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = sorted((r for r in rows if r["case"] == case), key=lambda r: r["batch"])
        work = [r["pixels"] * r["batch"] for r in mine]
        ax.loglog(work, [r["s_per_step"] for r in mine], "o-", label=case)
        for w, r in zip(work, mine, strict=True):
            ax.annotate(str(r["batch"]), (w, r["s_per_step"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
    work = np.array([r["pixels"] * r["batch"] for r in rows], float)
    seconds = np.array([r["s_per_step"] for r in rows], float)
    mid = np.argsort(work)[len(work) // 2]
    line = np.geomspace(work.min(), work.max(), 10)
    ax.loglog(line, seconds[mid] * line / work[mid], "k--", lw=0.8, label="linear")
    ax.set_xlabel("pixels per step (pixels per sample × batch; labels: batch)")
    ax.set_ylabel("seconds per training step")
    ax.set_title(title or f"time ∝ (pixels × batch)^{scaling_exponent(rows):.2f}", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    return fig


def main():
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON lines from compare_torch --batch-sweep")
    parser.add_argument("--out", required=True, help="figure path (.png or .pdf)")
    args = parser.parse_args()
    if not Path(args.input).is_file():
        parser.error(f"{args.input}: no such file")
    try:
        rows = read_rows(args.input)
    except json.JSONDecodeError as err:
        parser.error(f"{args.input}: not JSON lines ({err})")
    if len(rows) < 2:
        parser.error(f"{args.input}: fewer than two --batch-sweep rows")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure(rows).savefig(args.out, dpi=150)
    print(json.dumps({"rows": len(rows), "exponent": round(scaling_exponent(rows), 3),
                      "figure": args.out}))


if __name__ == "__main__":
    main()
