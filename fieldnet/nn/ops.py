"""The N-dimensional convolution primitive every layer goes through (channels-last)."""

from __future__ import annotations

import jax

_SPATIAL = "DHW"


def dimension_numbers(ndim: int) -> tuple[str, str, str]:
    """lax layout strings for channels-last inputs and (*spatial, in, out) kernels."""
    s = _SPATIAL[-ndim:]
    return f"N{s}C", f"{s}IO", f"N{s}C"


def conv_nd(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out)."""
    ndim = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,) * ndim, padding="VALID",
        rhs_dilation=(dilation,) * ndim, dimension_numbers=dimension_numbers(ndim))
