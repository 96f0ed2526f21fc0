"""Padding of the spatial axes of channels-last arrays: the boundary condition of a layer.

`periodic` wraps the field around, as in a periodic simulation box: a convolution with
it is a circular convolution, so the network commutes with periodic translations.
`zero` pads with zeros (breaks that near the edges), `valid` does not pad at all.
"""

from __future__ import annotations

import jax.numpy as jnp

# The boundary conditions a model can have, and the paddings a single layer can have (a
# layer may also not pad at all).
BOUNDARY_CONDITIONS = ("periodic", "zero")
PADDING_MODES = (*BOUNDARY_CONDITIONS, "valid")


def check_padding(padding: str) -> str:
    """`padding`, checked to be one of `PADDING_MODES` (else a ValueError)."""
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    return padding


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) pixels so that a stride-1 convolution keeps the size; the centre of an
    even kernel sits before its midpoint."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def pad_spatial(x, pads: tuple[int, int], padding: str):
    """Pads every spatial axis of x (batch, *spatial, channels) by pads=(before, after)."""
    check_padding(padding)
    if padding == "valid" or pads == (0, 0):
        return x
    widths = [(0, 0)] + [pads] * (x.ndim - 2) + [(0, 0)]
    return jnp.pad(x, widths, mode="wrap" if padding == "periodic" else "constant")
