"""The grid a field lives on: cells per axis, the box's physical lengths, periodicity.

    grid = Grid.box((64, 64), 25.0)      # a periodic 25 Mpc/h square box of 64^2 cells
    grid.spacing, grid.k_fundamental, grid.k_nyquist   # (0.39, 0.39) Mpc/h, 0.251, 8.04 h/Mpc

The grid travels with the data: a `FieldSource` and a `FieldDataset` make it from the
file's `box_size` (one side, or one per axis) and the fields' shape, their whole-sample
reads carry the grid of the arrays read, and spectra, metrics, the held-out evaluation and
the figures take that `Grid`, never a loose `box_size` float. `Grid.box` is the one place
a box size becomes a grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fieldnet.errors import FieldnetError


@dataclass(frozen=True)
class Grid:
    """A regular grid of cells.

    Attributes:
      shape: cells per spatial axis (1 to 3 axes).
      lengths: physical side of the box per axis [Mpc/h].
      periodic: whether each axis wraps around (a simulation box does; a slab cut from
        one does not along the cut axis).
    """

    shape: tuple[int, ...]
    lengths: tuple[float, ...]
    periodic: tuple[bool, ...]

    def __post_init__(self):
        shape = tuple(int(n) for n in self.shape)
        lengths = tuple(float(x) for x in self.lengths)
        periodic = tuple(bool(p) for p in self.periodic)
        if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
            raise ValueError(f"a grid has 1 to 3 axes of at least one cell, got shape {shape}")
        if len(lengths) != len(shape) or len(periodic) != len(shape):
            raise ValueError(f"grid of shape {shape} needs one length and one periodic flag "
                             f"per axis, got {lengths} and {periodic}")
        if not all(x > 0 and math.isfinite(x) for x in lengths):
            raise ValueError(f"box lengths must be positive, got {lengths}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "periodic", periodic)

    @classmethod
    def box(cls, shape: Sequence[int], box_size: float | Sequence[float],
            periodic: bool | Sequence[bool] = True) -> Grid:
        """A grid of `shape` cells in a box of side `box_size`.

        Periodic along every axis unless told otherwise.

        Args:
            shape: Cells along each spatial axis.
            box_size: Side of the box in Mpc/h, one for all axes or one per axis.
            periodic: Whether each axis wraps around, one for all axes or one per axis.

        Returns:
            The grid.
        """
        d = len(shape)
        lengths = tuple(box_size) if isinstance(box_size, Sequence) else (box_size,) * d
        flags = tuple(periodic) if isinstance(periodic, Sequence) else (periodic,) * d
        return cls(tuple(shape), lengths, flags)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell side per axis [Mpc/h]."""
        return tuple(x / n for x, n in zip(self.lengths, self.shape, strict=True))

    @property
    def volume(self) -> float:
        """[(Mpc/h)^d]."""
        return math.prod(self.lengths)

    @property
    def k_fundamental(self) -> float:
        """2 pi / L of the longest side, the finest mode spacing over axes [h/Mpc]: the
        width of the spectra's default k bins."""
        return min(2 * math.pi / x for x in self.lengths)

    @property
    def k_nyquist(self) -> float:
        """pi N / L, the smallest over axes [h/Mpc]."""
        return min(math.pi * n / x for n, x in zip(self.shape, self.lengths, strict=True))

    def check_shape(self, shape: Sequence[int], what: str = "field") -> Grid:
        """This grid, after checking that a field of spatial `shape` lies on it.

        Args:
            shape: Cells per spatial axis of the field.
            what: Names the field in the message.

        Returns:
            The grid itself.

        Raises:
            ValueError: If the shapes differ.
        """
        if tuple(int(n) for n in shape) != self.shape:
            raise ValueError(f"{what} of spatial shape {tuple(shape)} is not on the grid of "
                             f"shape {self.shape}")
        return self


def require_grid(grid, shape: Sequence[int] | None = None, what: str = "field") -> Grid:
    """`grid`, checked to be a `Grid` on which a field of spatial `shape` lies.

    What the spectra and metrics call on their `grid` argument.

    Args:
        grid: The grid to check.
        shape: The field's spatial shape, in pixels; None: any shape.
        what: Names the field in the message.

    Returns:
        `grid` itself.

    Raises:
        TypeError: If `grid` is not a `Grid` (a bare box size says nothing of the cells;
            make one with `Grid.box(shape, box_size)`).
        ValueError: If the field's shape is not the grid's.
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"expected a fieldnet.grid.Grid, got {type(grid).__name__} {grid!r}; "
                        "make one with Grid.box(shape, box_size)")
    return grid if shape is None else grid.check_shape(shape, what)


def check_divisible(sizes: Sequence[int], stride: int, what: str,
                    formula: str | None = None) -> None:
    """Raises `FieldnetError` unless every size is a multiple of a model's total stride,
    which its down- and upsampling need.

    Args:
        sizes: Spatial sizes in pixels.
        stride: The model's total stride.
        what: Names the sizes in the message, e.g. "data.crop_size" or "the field".
        formula: How the stride follows from the config, shown in the message
            (`fieldnet.models.stride_formula`, e.g. "2**model.depth" for the U-Net); None
            shows the number only.

    Raises:
        FieldnetError: If a size is not a multiple of `stride`.
    """
    bad = [int(s) for s in sizes if int(s) % stride]
    if bad:
        shown = tuple(int(s) for s in sizes)
        how = "" if formula is None else f" ({formula})"
        raise FieldnetError(f"{what} {shown[0] if len(shown) == 1 else shown} is not divisible by "
                            f"the model's total stride {stride}{how}; use sizes "
                            f"that are multiples of {stride}, or a smaller model.depth")
