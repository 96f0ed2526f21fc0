"""Figure output: every figure as PNG and PDF, with the numbers it shows (read from the run's
eval.json) in its title and in the files' metadata, where tests can read them back."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from fieldnet.figures import report
from fieldnet.records import to_json_value

FIGURE_FORMATS = ("png", "pdf")


def drawn(figure_function: Callable, *args, **kwargs) -> Figure:
    """The Figure that a `fieldnet.figures` function draws when its path is None (pass None
    where it takes the path), checked to be one."""
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
    text = json.dumps(to_json_value(numbers or {}), sort_keys=True)
    metadata = {"png": {"Title": name, "Description": text},
                # no CreationDate: the same run gives byte-identical files
                "pdf": {"Title": name, "Subject": text, "CreationDate": None}}
    return [report.save_figure(fig, Path(figdir) / f"{name}.{ext}", metadata=metadata[ext])
            for ext in FIGURE_FORMATS]


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
