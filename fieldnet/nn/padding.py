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
    """Checks a padding mode.

    Args:
        padding: The padding of a layer, one of `PADDING_MODES`.

    Returns:
        `padding` itself.

    Raises:
        ValueError: If `padding` is not one of `PADDING_MODES`.
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    return padding


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) pixels so that a stride-1 convolution keeps the size.

    The centre of an even kernel sits before its midpoint.

    Args:
        kernel_size: Pixels of the kernel along one axis.
        dilation: Spacing between kernel taps, in pixels.

    Returns:
        The pixels to pad before and after along each spatial axis; they add up to
        `dilation * (kernel_size - 1)`.
    """
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def pad_spatial(x, pads: tuple[int, int], padding: str):
    """Pads every spatial axis of a channels-last array by pads=(before, after).

    Args:
        x: Array of shape `(batch, *spatial, channels)`.
        pads: Pixels to add before and after along every spatial axis.
        padding: One of `PADDING_MODES`: `"periodic"` wraps around, `"zero"` pads with
            zeros, `"valid"` returns `x` unpadded.

    Returns:
        Array of shape `(batch, *(s + before + after for s in spatial), channels)`, or `x`
        itself for `"valid"` or pads `(0, 0)`.

    Raises:
        ValueError: If `padding` is not one of `PADDING_MODES`.
    """
    check_padding(padding)
    if padding == "valid" or pads == (0, 0):
        return x
    widths = [(0, 0)] + [pads] * (x.ndim - 2) + [(0, 0)]
    return jnp.pad(x, widths, mode="wrap" if padding == "periodic" else "constant")
