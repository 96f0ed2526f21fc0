"""The N-dimensional convolution primitive every layer goes through (channels-last).

On XLA:CPU the input gradient of a 3D convolution runs 3-5x slower than the same
arithmetic done as 2D convolutions over depth slices, so for stride-1 3D convolutions on
the CPU `conv_nd` carries a custom VJP: the forward and the kernel gradient are XLA's own
3D convolutions, and the input gradient is the transpose of the depth-sliced form (the
same sum, so equal to float rounding). Set `FIELDNET_CPU_CONV_VJP=0` to use XLA's gradient.
"""

from __future__ import annotations

import os

import jax

_SPATIAL = "DHW"


def dimension_numbers(ndim: int) -> tuple[str, str, str]:
    """lax layout strings for channels-last inputs and (*spatial, in, out) kernels."""
    s = _SPATIAL[-ndim:]
    return f"N{s}C", f"{s}IO", f"N{s}C"


def xla_conv(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out)."""
    ndim = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,) * ndim, padding="VALID",
        rhs_dilation=(dilation,) * ndim, dimension_numbers=dimension_numbers(ndim))


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
