"""The N-dimensional convolution primitive every layer goes through (channels-last).

On XLA:CPU (jax 0.10.2) the speed of a convolution depends on how it is written far more
than on its arithmetic (`python -m benchmarks.conv_forms`, one thread, the U-Net's shapes):
- a VALID 2D convolution with 32 or more channels goes to XLA's YNNPACK fusion, which runs
  some of the U-Net's shapes at 12-25 GFLOP/s; the same convolution padded by k - 1 on
  both sides of its first spatial axis (the padding of a transposed convolution, i.e. the
  forward in the form of an input gradient) and cropped back goes to XLA's own
  convolution, 1.5-6x faster (`transposed_conv`; 1.3x at 16 channels, which skip YNNPACK;
  equal at 18^2 x 128);
- the kernel gradient of that padded form is 1.2-4x faster than XLA's gradient of the
  VALID one;
- with one input channel (the stem on the data), a broadcast multiply-add per kernel tap
  (`tap_conv`) is 5x faster in 2D and 30x in 3D than XLA's convolution;
- XLA's input gradient of a 2D convolution is as fast as any form tried; that of a 3D
  convolution (4x), and its forward and kernel gradient (1.2-4x), are slower than the same
  sums done as 2D convolutions over depth slices (`depth_sliced_conv`); only the forward
  at 6^3 x 128 was 10% faster in 3D.
So on the CPU, stride-1 undilated 2D convolutions go through `conv2d_cpu`, a custom VJP
with those forms (forward: `tap_conv` for one input channel, else `transposed_conv`;
input gradient: XLA's; kernel gradient: `transposed_conv`'s), and 3D ones through
`conv3d_cpu`, depth slices of `conv2d_cpu` (`use_cpu_vjp` is the rule). Every form is the
same sum in another order, so values and gradients equal XLA's to float rounding (tested,
float32 and bfloat16; the timings are float32). Set `FIELDNET_CPU_CONV_VJP=0` to use XLA's
convolution and gradients. Strided (downsampling) convolutions stay XLA's.

XLA:CPU also aborts the process (`std::bad_alloc`, with most of the memory free) on single
very large 3D convolutions: with jax 0.10.2 on a 24 GiB machine, a 3x3x3 convolution of a
226^3 x 32-channel input did, while 224^3 did not. On the CPU, `xla_conv` (and
`conv3d_cpu`, with the same slabs) therefore splits
3D convolutions whose patch volume (outputs x kernel taps x input channels) exceeds
`CPU_CONV_CHUNK_ELEMENTS` into slabs along depth, each computing its own outputs from its
own inputs, which gives the same values.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

_SPATIAL = "DHW"
CPU_CONV_CHUNK_ELEMENTS = 2**31  # under a quarter of the smallest patch volume seen to abort


def dimension_numbers(ndim: int) -> tuple[str, str, str]:
    """lax layout strings for channels-last inputs and (*spatial, in, out) kernels.

    Args:
        ndim: Number of spatial axes, 1, 2 or 3.

    Returns:
        (input, kernel, output) layout strings, e.g. `("NHWC", "HWIO", "NHWC")` for 2D.
    """
    s = _SPATIAL[-ndim:]
    return f"N{s}C", f"{s}IO", f"N{s}C"


def _lax_conv(x, kernel, stride: int, dilation: int):
    ndim = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride,) * ndim, padding="VALID",
        rhs_dilation=(dilation,) * ndim, dimension_numbers=dimension_numbers(ndim))


def transposed_conv(x, kernel):
    """The stride-1 VALID convolution of x in the form of an input gradient.

    Padded by k - 1 on both sides of the first spatial axis (the padding of a transposed
    convolution), then cropped to the rows that the VALID convolution keeps. The same sum;
    XLA:CPU runs it through its own convolution rather than its YNNPACK fusion.

    Args:
        x: Input of shape `(batch, *spatial, in)`.
        kernel: Kernel of shape `(*k, in, out)`.

    Returns:
        Array of shape `(batch, *(s - k + 1), out)`, as a VALID convolution.
    """
    ndim = x.ndim - 2
    k = kernel.shape[0]
    pads = [(k - 1, k - 1)] + [(0, 0)] * (ndim - 1)
    y = jax.lax.conv_general_dilated(x, kernel, (1,) * ndim, pads,
                                     dimension_numbers=dimension_numbers(ndim))
    return y[:, k - 1:y.shape[1] - (k - 1)]


def depth_chunks(x_shape, kernel_shape, stride: int, dilation: int,
                 limit: int) -> list[tuple[int, int]]:
    """Output depth ranges [start, stop) of a 3D convolution with a bounded patch volume.

    Each range's patch volume (batch x outputs x kernel taps x input channels) is at most
    `limit`, unless a single depth plane exceeds it.

    Args:
        x_shape: Input shape `(batch, depth, height, width, in)`.
        kernel_shape: Kernel shape `(kd, kh, kw, in, out)`.
        stride: Step between output pixels, in input pixels.
        dilation: Spacing between kernel taps, in input pixels.
        limit: Largest patch volume of one range, in elements.

    Returns:
        Consecutive (start, stop) ranges of output depth covering the whole output.
    """
    depth, *plane = [(s - dilation * (k - 1) - 1) // stride + 1
                     for s, k in zip(x_shape[1:-1], kernel_shape[:-2], strict=True)]
    taps = math.prod(kernel_shape[:-1])  # kernel taps x input channels
    per_plane = x_shape[0] * math.prod(plane) * taps
    size = max(1, limit // max(per_plane, 1))
    return [(a, min(a + size, depth)) for a in range(0, depth, size)]


def xla_conv(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out).

    On the CPU, 3D convolutions with a patch volume above `CPU_CONV_CHUNK_ELEMENTS` run in
    depth slabs (`depth_chunks`).

    Args:
        x: Input of shape `(batch, *spatial, in)`.
        kernel: Kernel of shape `(*k, in, out)`.
        stride: Step between output pixels, in input pixels.
        dilation: Spacing between kernel taps, in input pixels.

    Returns:
        Array of shape `(batch, *((s - dilation * (k - 1) - 1) // stride + 1), out)`.
    """
    if x.ndim != 5 or jax.default_backend() != "cpu":
        return _lax_conv(x, kernel, stride, dilation)
    chunks = depth_chunks(x.shape, kernel.shape, stride, dilation, CPU_CONV_CHUNK_ELEMENTS)
    if len(chunks) < 2:  # one slab, or an empty output
        return _lax_conv(x, kernel, stride, dilation)
    span = dilation * (kernel.shape[0] - 1) + 1
    parts = [_lax_conv(x[:, a * stride:(b - 1) * stride + span], kernel, stride, dilation)
             for a, b in chunks]
    return jnp.concatenate(parts, axis=1)


def tap_conv(x, kernel):
    """The stride-1 VALID convolution as a sum over kernel taps.

    Each term is a shifted slice times that tap's (in, out) matrix: with one input channel,
    a broadcast multiply-add per tap.

    Args:
        x: Input of shape `(batch, *spatial, in)`.
        kernel: Kernel of shape `(*k, in, out)`.

    Returns:
        Array of shape `(batch, *(s - k + 1), out)`.
    """
    out = [n - k + 1 for n, k in zip(x.shape[1:-1], kernel.shape[:-2], strict=True)]
    taps = kernel.reshape((-1,) + kernel.shape[-2:])
    y = None
    for i, tap in enumerate(np.ndindex(*kernel.shape[:-2])):
        shifted = x[(slice(None),) + tuple(slice(t, t + o) for t, o in zip(tap, out, strict=True))]
        term = shifted @ taps[i]
        y = term if y is None else y + term
    return y


def _cpu_conv2d_forward(x, kernel):
    return tap_conv(x, kernel) if kernel.shape[-2] == 1 else transposed_conv(x, kernel)


@jax.custom_vjp
def conv2d_cpu(x, kernel):
    """Stride-1 2D convolution in the forms XLA:CPU runs fastest (`benchmarks.conv_forms`).

    Forward by `tap_conv` for one input channel, else by `transposed_conv`; input gradient
    XLA's own; kernel gradient that of `transposed_conv`.

    Args:
        x: Input of shape `(batch, height, width, in)`.
        kernel: Kernel of shape `(kh, kw, in, out)`.

    Returns:
        The VALID convolution, shape `(batch, height - kh + 1, width - kw + 1, out)`.
    """
    return _cpu_conv2d_forward(x, kernel)


def _conv2d_cpu_fwd(x, kernel):
    return _cpu_conv2d_forward(x, kernel), (x, kernel)


def _conv2d_cpu_bwd(residuals, g):
    x, kernel = residuals
    _, pull_x = jax.vjp(lambda a: _lax_conv(a, kernel, 1, 1), x)
    _, pull_k = jax.vjp(lambda w: transposed_conv(x, w), kernel)
    return pull_x(g)[0], pull_k(g)[0]


conv2d_cpu.defvjp(_conv2d_cpu_fwd, _conv2d_cpu_bwd)


def depth_sliced_conv(x, kernel, conv2d=None):
    """The stride-1 3D convolution as a sum over kernel depth of 2D convolutions.

    Each 2D convolution takes a depth-shifted slab, depth folded into the batch.

    Args:
        x: Input of shape `(batch, depth, height, width, in)`.
        kernel: Kernel of shape `(kd, kh, kw, in, out)`.
        conv2d: The 2D VALID convolution `(x, kernel) -> y` to use; None for `xla_conv`.

    Returns:
        The VALID convolution, shape `(batch, depth - kd + 1, height - kh + 1,
        width - kw + 1, out)`.
    """
    conv2d = xla_conv if conv2d is None else conv2d
    n, depth_in = x.shape[:2]
    k = kernel.shape[0]
    depth = depth_in - k + 1
    out = None
    for z in range(k):
        slab = x[:, z:z + depth].reshape((n * depth,) + x.shape[2:])
        term = conv2d(slab, kernel[z])
        out = term if out is None else out + term
    return out.reshape((n, depth) + out.shape[1:])


def conv3d_cpu(x, kernel):
    """Stride-1 3D convolution as depth slices of `conv2d_cpu`.

    Forward, input and kernel gradient all go through `conv2d_cpu`, in depth slabs where
    `xla_conv` would split the convolution.

    Args:
        x: Input of shape `(batch, depth, height, width, in)`.
        kernel: Kernel of shape `(kd, kh, kw, in, out)`.

    Returns:
        The VALID convolution, shape `(batch, depth - kd + 1, height - kh + 1,
        width - kw + 1, out)`.
    """
    chunks = depth_chunks(x.shape, kernel.shape, 1, 1, CPU_CONV_CHUNK_ELEMENTS)
    k = kernel.shape[0]
    parts = [depth_sliced_conv(x[:, a:b + k - 1], kernel, conv2d_cpu) for a, b in chunks]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)


def cpu_vjp_enabled() -> bool:
    """Whether convolutions traced now take the CPU forms (backend and switch)."""
    return (jax.default_backend() == "cpu"
            and os.environ.get("FIELDNET_CPU_CONV_VJP", "1") != "0")


def use_cpu_vjp(x, kernel, stride: int, dilation: int) -> bool:
    """Whether a convolution takes the CPU forms (`conv2d_cpu`, `conv3d_cpu`).

    The shape rule: stride-1, undilated 2D and 3D convolutions with more than one kernel
    tap along the first axis, on the CPU with the switch `FIELDNET_CPU_CONV_VJP` on.

    Args:
        x: Input of shape `(batch, *spatial, in)`.
        kernel: Kernel of shape `(*k, in, out)`.
        stride: Step between output pixels, in input pixels.
        dilation: Spacing between kernel taps, in input pixels.

    Returns:
        True to use the CPU forms, False for `xla_conv`.
    """
    return (x.ndim in (4, 5) and stride == 1 and dilation == 1 and kernel.shape[0] > 1
            and cpu_vjp_enabled())


def conv_nd(x, kernel, stride: int = 1, dilation: int = 1):
    """Unpadded convolution of x (batch, *spatial, in) with kernel (*spatial, in, out).

    Takes the CPU forms where `use_cpu_vjp` says so, else `xla_conv`.

    Args:
        x: Input of shape `(batch, *spatial, in)`.
        kernel: Kernel of shape `(*k, in, out)`.
        stride: Step between output pixels, in input pixels.
        dilation: Spacing between kernel taps, in input pixels.

    Returns:
        Array of shape `(batch, *((s - dilation * (k - 1) - 1) // stride + 1), out)`.
    """
    if use_cpu_vjp(x, kernel, stride, dilation):
        return conv2d_cpu(x, kernel) if x.ndim == 4 else conv3d_cpu(x, kernel)
    return xla_conv(x, kernel, stride, dilation)
