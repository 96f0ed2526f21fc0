"""The N-dimensional convolution primitive every layer goes through (channels-last).

On XLA:CPU the input gradient of a 3D convolution runs 3-5x slower than the same
arithmetic done as 2D convolutions over depth slices, so for stride-1 3D convolutions on
the CPU `conv_nd` carries a custom VJP: the forward and the kernel gradient are XLA's own
3D convolutions, and the input gradient is the transpose of the depth-sliced form (the
same sum, so equal to float rounding). Set `FIELDNET_CPU_CONV_VJP=0` to use XLA's gradient.

XLA:CPU also aborts the process (`std::bad_alloc`, with most of the memory free) on single
very large 3D convolutions: with jax 0.10.2 on a 24 GiB machine, a 3x3x3 convolution of a
226^3 x 32-channel input did, while 224^3 did not. On the CPU, `xla_conv` therefore splits
3D convolutions whose patch volume (outputs x kernel taps x input channels) exceeds
`CPU_CONV_CHUNK_ELEMENTS` into slabs along depth, each computing its own outputs from its
own inputs, which gives the same values.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp

_SPATIAL = "DHW"
CPU_CONV_CHUNK_ELEMENTS = 2**31  # under a quarter of the smallest patch volume seen to abort


def dimension_numbers(ndim: int) -> tuple[str, str, str]:
    """lax layout strings for channels-last inputs and (*spatial, in, out) kernels."""
    s = _SPATIAL[-ndim:]
    return f"N{s}C", f"{s}IO", f"N{s}C"


def _lax_conv(x, kernel, stride: int, dilation: int):
    ndim = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,) * ndim, padding="VALID",
        rhs_dilation=(dilation,) * ndim, dimension_numbers=dimension_numbers(ndim))


def depth_chunks(x_shape, kernel_shape, stride: int, dilation: int,
                 limit: int) -> list[tuple[int, int]]:
    """Output depth ranges [start, stop) of a 3D convolution such that each range's patch
    volume (batch x outputs x kernel taps x input channels) is at most `limit`."""
    depth, *plane = [(s - dilation * (k - 1) - 1) // stride + 1
                     for s, k in zip(x_shape[1:-1], kernel_shape[:-2], strict=True)]
    taps = math.prod(kernel_shape[:-1])  # kernel taps x input channels
    per_plane = x_shape[0] * math.prod(plane) * taps
    size = max(1, limit // max(per_plane, 1))
    return [(a, min(a + size, depth)) for a in range(0, depth, size)]


def xla_conv(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out)."""
    if x.ndim != 5 or jax.default_backend() != "cpu":
        return _lax_conv(x, kernel, stride, dilation)
    chunks = depth_chunks(x.shape, kernel.shape, stride, dilation, CPU_CONV_CHUNK_ELEMENTS)
    if len(chunks) < 2:  # one slab, or an empty output
        return _lax_conv(x, kernel, stride, dilation)
    span = dilation * (kernel.shape[0] - 1) + 1
    parts = [_lax_conv(x[:, a * stride:(b - 1) * stride + span], kernel, stride, dilation)
             for a, b in chunks]
    return jnp.concatenate(parts, axis=1)


def depth_sliced_conv(x, kernel):
    """The stride-1 3D convolution as a sum over kernel depth of 2D convolutions of
    depth-shifted slabs (depth folded into the batch)."""
    n, depth_in = x.shape[:2]
    k = kernel.shape[0]
    depth = depth_in - k + 1
    out = None
    for z in range(k):
        slab = x[:, z:z + depth].reshape((n * depth,) + x.shape[2:])
        term = xla_conv(slab, kernel[z])
        out = term if out is None else out + term
    return out.reshape((n, depth) + out.shape[1:])


@jax.custom_vjp
def conv3d_cpu(x, kernel):
    """Stride-1 3D convolution whose input gradient is computed through 2D slices."""
    return xla_conv(x, kernel)


def _conv3d_cpu_fwd(x, kernel):
    return xla_conv(x, kernel), (x, kernel)


def _conv3d_cpu_bwd(residuals, g):
    x, kernel = residuals
    _, pull_x = jax.vjp(lambda a: depth_sliced_conv(a, kernel), x)
    _, pull_k = jax.vjp(lambda w: xla_conv(x, w), kernel)
    return pull_x(g)[0], pull_k(g)[0]


conv3d_cpu.defvjp(_conv3d_cpu_fwd, _conv3d_cpu_bwd)


def cpu_vjp_enabled() -> bool:
    """Whether 3D convolutions traced now take the CPU custom VJP (backend and switch)."""
    return (jax.default_backend() == "cpu"
            and os.environ.get("FIELDNET_CPU_CONV_VJP", "1") != "0")


def use_cpu_vjp(x, kernel, stride: int, dilation: int) -> bool:
    return (x.ndim == 5 and stride == 1 and dilation == 1 and kernel.shape[0] > 1
            and cpu_vjp_enabled())


def conv_nd(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out)."""
    if use_cpu_vjp(x, kernel, stride, dilation):
        return conv3d_cpu(x, kernel)
    return xla_conv(x, kernel, stride, dilation)
