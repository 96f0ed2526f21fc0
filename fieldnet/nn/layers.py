"""Layers for channels-last fields in 1, 2 or 3 dimensions, built on Flax NNX.

Every layer that mixes pixels exposes `input_interval(lo, hi)`: the span of input pixels
(along one axis) that the output pixels lo..hi depend on. `fieldnet.receptive_field`
composes these spans, so the halo of a model is computed from its architecture.
Pointwise layers (activations, the per-pixel layer norm, dropout, channel mixers) do not
widen the span.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fieldnet.nn.kernels import orbit_index
from fieldnet.nn.ops import conv_nd
from fieldnet.nn.padding import check_padding, pad_spatial, same_padding

ACTIVATIONS = {
    "gelu": jax.nn.gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "leaky_relu": functools.partial(jax.nn.leaky_relu, negative_slope=0.2),
    "tanh": jnp.tanh,
}
NORMS = ("none", "layer", "group")

_orbit_index = functools.lru_cache(maxsize=None)(orbit_index)


def check_ndim(ndim: int) -> int:
    """Checks a number of spatial axes.

    Args:
        ndim: Number of spatial axes.

    Returns:
        `ndim` itself.

    Raises:
        ValueError: If `ndim` is not 1, 2 or 3.
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    return ndim


def _is_integer(value, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def check_positive(name: str, value) -> int:
    """Checks that a value is an integer ≥ 1.

    Args:
        name: Name of the value, for the error message.
        value: The value to check (a bool is not an integer here).

    Returns:
        `value` as an int.

    Raises:
        ValueError: Naming `name`, unless `value` is an integer ≥ 1.
    """
    if not _is_integer(value, 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_non_negative(name: str, value, meaning: str = "") -> int:
    """Checks that a value is an integer ≥ 0.

    Args:
        name: Name of the value, for the error message.
        value: The value to check (a bool is not an integer here).
        meaning: What the value counts, added to the error message when not empty.

    Returns:
        `value` as an int.

    Raises:
        ValueError: Naming `name` (and `meaning`), unless `value` is an integer ≥ 0.
    """
    if not _is_integer(value, 0):
        raise ValueError(f"{name} must be an integer ≥ 0{f' ({meaning})' if meaning else ''}, "
                         f"got {value!r}")
    return int(value)


def activation(name: str):
    """The activation function named `name`.

    Args:
        name: One of `ACTIVATIONS`.

    Returns:
        The elementwise function, array to array of the same shape.

    Raises:
        ValueError: If `name` is not one of `ACTIVATIONS`.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


_DRAW_SIZES = 4096, 8  # flat draws of 4096 * 8**k values


def _truncated_normal(key, shape: tuple[int, ...]) -> np.ndarray:
    """`jax.random.truncated_normal(key, -2, 2, shape)`, the same numbers, compiled for a few
    sizes only. Drawn eagerly, every new shape compiles its own program (~0.3 s on a CPU),
    which made building a U-Net take many seconds. With partitionable threefry (JAX's
    default) value i of a draw depends only on the key and i, so the first values of a
    longer flat draw are the draw of `shape`."""
    if not jax.config.jax_threefry_partitionable:
        return np.asarray(jax.random.truncated_normal(key, -2, 2, shape))
    n, (size, factor) = math.prod(shape), _DRAW_SIZES
    while size < n:
        size *= factor
    return np.asarray(jax.random.truncated_normal(key, -2, 2, (size,)))[:n].reshape(shape)


def _weight_and_bias(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int, use_bias: bool):
    """Truncated-normal weights of variance 1/fan_in (shape ends with out_channels), zero bias."""
    draw = _truncated_normal(rngs.params(), shape)
    weight = nnx.Param(jnp.asarray(draw.dtype.type(1.0 / math.sqrt(fan_in)) * draw))
    return weight, nnx.Param(jnp.zeros((shape[-1],))) if use_bias else None


def _cast(dtype, *arrays):
    return arrays if dtype is None else tuple(a.astype(dtype) for a in arrays)


class Conv(nnx.Module):
    """Convolution of a channels-last field with a kernel size, stride, dilation and a
    boundary condition.

    With `symmetric=True` the kernel is invariant under the grid's rotations and
    reflections (one parameter per orbit of kernel offsets), so a stride-1 layer is exactly
    equivariant under them. A strided one keeps that only where its windows tile the grid,
    as the kernel-2, stride-2 blocks of `downsample` do on even grids.

    Args:
        in_channels: Channels of the input (its last axis).
        out_channels: Channels of the output.
        kernel_size: Pixels of the kernel along every spatial axis. With `symmetric=True`
            and a padding that keeps the size, it must be odd: an even kernel is padded
            lopsidedly, so its centre sits half a pixel off the grid and a reflection
            moves the output by a pixel.
        ndim: Number of spatial axes, 1, 2 or 3.
        stride: Step between output pixels, in input pixels.
        dilation: Spacing between kernel taps, in input pixels.
        padding: Boundary condition: `"periodic"` (wrap around, as in a simulation box),
            `"zero"` (both keep the size at stride 1) or `"valid"` (no padding).
        symmetric: Tie the kernel to be invariant under the grid's symmetry group.
        use_bias: Add a learned bias per output channel.
        dtype: Compute dtype (e.g. `jnp.bfloat16`); None computes in the input's dtype.
            Parameters stay float32 either way.
        rngs: Random streams; the weights are drawn from `rngs.params()`.

    Raises:
        ValueError: On a channel count, kernel size, stride or dilation that is not a
            positive integer, an unknown `ndim` or `padding`, or an even `kernel_size`
            with `symmetric=True` and `padding` `"periodic"` or `"zero"`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from fieldnet.nn import Conv
        >>> conv = Conv(1, 4, 3, ndim=2, padding="periodic", rngs=nnx.Rngs(0))
        >>> conv(jnp.ones((2, 8, 8, 1))).shape
        (2, 8, 8, 4)
        >>> conv.input_interval(0, 0)   # output pixel 0 sees inputs -1..1, wrapped around
        (-1, 1)
        >>> tied = Conv(1, 4, 3, ndim=2, symmetric=True, rngs=nnx.Rngs(0))
        >>> tied.weight.shape           # one weight per orbit: centre, edges, corners
        (3, 1, 4)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, ndim: int,
                 stride: int = 1, dilation: int = 1, padding: str = "periodic",
                 symmetric: bool = False, use_bias: bool = True, dtype=None, rngs: nnx.Rngs):
        self.ndim = check_ndim(ndim)
        self.in_channels = check_positive("in_channels", in_channels)
        self.out_channels = check_positive("out_channels", out_channels)
        self.kernel_size = check_positive("kernel_size", kernel_size)
        self.stride = check_positive("stride", stride)
        self.dilation = check_positive("dilation", dilation)
        self.padding = check_padding(padding)
        before, after = self.pads
        if symmetric and before != after:
            raise ValueError(f"symmetric (dihedral) kernels need an odd kernel_size with "
                             f"padding={padding!r}, got kernel_size={kernel_size}: an even "
                             "kernel is padded lopsidedly, so its centre sits half a pixel off "
                             "the grid and rotations and reflections move the output")
        self.symmetric = symmetric
        self.dtype = dtype
        fan_in = in_channels * kernel_size**ndim
        if symmetric:
            _, n_orbits = _orbit_index(kernel_size, ndim)
            shape = (n_orbits, in_channels, out_channels)
        else:
            shape = (kernel_size,) * ndim + (in_channels, out_channels)
        self.weight, self.bias = _weight_and_bias(rngs, shape, fan_in, use_bias)

    @property
    def kernel(self):
        """The full (*spatial, in, out) kernel."""
        w = self.weight[...]
        if self.symmetric:
            index, _ = _orbit_index(self.kernel_size, self.ndim)
            return w[jnp.asarray(index)]
        return w

    @property
    def pads(self) -> tuple[int, int]:
        """(before, after) pixels padded along every spatial axis: (0, 0) for `"valid"`."""
        return (0, 0) if self.padding == "valid" else same_padding(self.kernel_size, self.dilation)

    def __call__(self, x):
        x, k = _cast(self.dtype, x, self.kernel)
        y = conv_nd(pad_spatial(x, self.pads, self.padding), k, self.stride, self.dilation)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """The span of input pixels that output pixels lo..hi see along one axis.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (first, last) input pixel, inclusive, in the unpadded input's indices: outside
            0..n-1 where the padding supplies them.
        """
        before = self.pads[0]
        return (self.stride * lo - before,
                self.stride * hi - before + self.dilation * (self.kernel_size - 1))


class ConvTranspose(nnx.Module):
    """×2 upsampling by a transposed convolution with kernel 2 and stride 2.

    Each coarse pixel writes its own 2^d block of fine pixels, so no padding is involved
    and a periodic shift by s coarse pixels becomes an exact shift by 2s fine pixels.

    Args:
        in_channels: Channels of the coarse input (its last axis).
        out_channels: Channels of the fine output.
        ndim: Number of spatial axes, 1, 2 or 3.
        symmetric: Give every pixel of a block the same channel mix, the only 2^d kernel
            invariant under the grid's reflections, so the layer is exactly equivariant.
        use_bias: Add a learned bias per output channel.
        dtype: Compute dtype (e.g. `jnp.bfloat16`); None computes in the input's dtype.
        rngs: Random streams; the weights are drawn from `rngs.params()`.

    Raises:
        ValueError: On a channel count that is not a positive integer or an unknown `ndim`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from fieldnet.nn import ConvTranspose
        >>> up = ConvTranspose(4, 2, ndim=2, rngs=nnx.Rngs(0))
        >>> up(jnp.ones((1, 4, 4, 4))).shape
        (1, 8, 8, 2)
        >>> up.input_interval(6, 7)     # fine pixels 6 and 7 come from coarse pixel 3
        (3, 3)
    """

    def __init__(self, in_channels: int, out_channels: int, *, ndim: int,
                 symmetric: bool = False, use_bias: bool = True, dtype=None, rngs: nnx.Rngs):
        self.ndim = check_ndim(ndim)
        self.in_channels = check_positive("in_channels", in_channels)
        self.out_channels = check_positive("out_channels", out_channels)
        self.symmetric = symmetric
        self.dtype = dtype
        # A 2^d kernel invariant under all reflections has one value: every block pixel gets
        # the same channel mix.
        shape = (in_channels, out_channels) if symmetric else (2,) * ndim + (in_channels,
                                                                              out_channels)
        self.weight, self.bias = _weight_and_bias(rngs, shape, in_channels, use_bias)

    @property
    def kernel(self):
        """The full (2, ..., 2, in, out) kernel (a symmetric one broadcast over its block)."""
        w = self.weight[...]
        if self.symmetric:
            return jnp.broadcast_to(w, (2,) * self.ndim + w.shape)
        return w

    def __call__(self, x):
        x, k = _cast(self.dtype, x, self.kernel)
        d = self.ndim
        space, block = "xyz"[:d], "ijk"[:d]
        interleaved = "".join(s + b for s, b in zip(space, block, strict=True))
        y = jnp.einsum(f"n{space}c,{block}co->n{interleaved}o", x, k)
        y = y.reshape((x.shape[0],) + tuple(2 * s for s in x.shape[1:-1]) + (self.out_channels,))
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """The span of coarse input pixels that fine output pixels lo..hi come from along one axis.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (lo // 2, hi // 2), inclusive.
        """
        return lo // 2, hi // 2


class ChannelMixer(nnx.Module):
    """1×1 convolution: a per-pixel linear map of the channels.

    Args:
        in_channels: Channels of the input (its last axis).
        out_channels: Channels of the output.
        use_bias: Add a learned bias per output channel.
        dtype: Compute dtype (e.g. `jnp.bfloat16`); None computes in the input's dtype.
        rngs: Random streams; the weights are drawn from `rngs.params()`.

    Raises:
        ValueError: On a channel count that is not a positive integer.
    """

    def __init__(self, in_channels: int, out_channels: int, *, use_bias: bool = True, dtype=None,
                 rngs: nnx.Rngs):
        self.in_channels = check_positive("in_channels", in_channels)
        self.out_channels = check_positive("out_channels", out_channels)
        self.dtype = dtype
        self.weight, self.bias = _weight_and_bias(rngs, (in_channels, out_channels), in_channels,
                                                  use_bias)

    def __call__(self, x):
        x, w = _cast(self.dtype, x, self.weight[...])
        y = x @ w
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class Pool(nnx.Module):
    """Non-overlapping max or mean pooling by a factor of 2 along every spatial axis.

    Args:
        kind: `"max"` or `"mean"`.

    Raises:
        ValueError: On another `kind`.
    """

    def __init__(self, kind: str = "mean"):
        if kind not in ("max", "mean"):
            raise ValueError(f"pool kind must be 'max' or 'mean', got {kind!r}")
        self.kind = kind

    def __call__(self, x):
        d = x.ndim - 2
        shape = [x.shape[0]]
        for s in x.shape[1:-1]:
            shape += [s // 2, 2]
        blocks = x.reshape(shape + [x.shape[-1]])
        axes = tuple(2 + 2 * i for i in range(d))
        return blocks.max(axis=axes) if self.kind == "max" else blocks.mean(axis=axes)

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """The span of input pixels that output pixels lo..hi pool along one axis.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (2 lo, 2 hi + 1), inclusive.
        """
        return 2 * lo, 2 * hi + 1


def downsample(in_channels: int, out_channels: int, *, ndim: int, symmetric: bool = False,
               dtype=None, rngs: nnx.Rngs) -> Conv:
    """Strided ×2 downsampling: a kernel-2, stride-2 convolution over disjoint 2^d blocks.

    The blocks tile the grid, so the layer needs no padding, commutes with periodic shifts
    by even amounts, and (with a symmetric kernel) with reflections of an even-sized grid.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        ndim: Number of spatial axes, 1, 2 or 3.
        symmetric: Tie the kernel to be invariant under the grid's symmetry group.
        dtype: Compute dtype; None computes in the input's dtype.
        rngs: Random streams for the weights.

    Returns:
        A `Conv` mapping `(batch, *spatial, in_channels)` to
        `(batch, *(s // 2 for s in spatial), out_channels)`.

    Raises:
        ValueError: On a channel count that is not a positive integer or an unknown `ndim`.
    """
    return Conv(in_channels, out_channels, 2, ndim=ndim, stride=2, padding="valid",
                symmetric=symmetric, dtype=dtype, rngs=rngs)


class LayerNorm(nnx.Module):
    """Normalizes the channels of each pixel of each sample on its own.

    It mixes neither samples nor pixels, so it keeps the receptive field and exact tiled
    inference.

    Args:
        num_channels: Channels of the input (its last axis).
        eps: Added to the variance before the square root.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((num_channels,)))
        self.shift = nnx.Param(jnp.zeros((num_channels,)))

    def __call__(self, x):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        return y * self.scale[...].astype(y.dtype) + self.shift[...].astype(y.dtype)


class GroupNorm(nnx.Module):
    """Group normalization over each sample's pixels and channel groups.

    It does not mix samples, but its statistics see the whole field, so a model using it
    has no finite halo.

    Args:
        num_channels: Channels of the input (its last axis).
        groups: Channel groups; the greatest common divisor of it and `num_channels` is
            used.
        eps: Added to the variance before the square root.
    """

    def __init__(self, num_channels: int, groups: int = 8, eps: float = 1e-5):
        self.groups = math.gcd(groups, num_channels)
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((num_channels,)))
        self.shift = nnx.Param(jnp.zeros((num_channels,)))

    def __call__(self, x):
        shape = x.shape
        g = x.reshape(shape[0], -1, self.groups, shape[-1] // self.groups)
        mean = g.mean((1, 3), keepdims=True)
        var = ((g - mean) ** 2).mean((1, 3), keepdims=True)
        y = ((g - mean) * jax.lax.rsqrt(var + self.eps)).reshape(shape)
        return y * self.scale[...].astype(y.dtype) + self.shift[...].astype(y.dtype)

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """Refuses: the statistics of a group norm see the whole input.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Raises:
            ValueError: Always: the receptive field is the whole input.
        """
        raise ValueError("group normalization uses whole-field statistics: the receptive field "
                         "is the whole input; use norm='layer' or 'none' for a finite halo")


def make_norm(kind: str, num_channels: int):
    """A normalization layer of `kind` over `num_channels` channels.

    Args:
        kind: One of `NORMS`: `"layer"`, `"group"` or `"none"`.
        num_channels: Channels of the input it normalizes.

    Returns:
        A `LayerNorm`, a `GroupNorm`, or None for `"none"`.

    Raises:
        ValueError: If `kind` is not one of `NORMS`.
    """
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
    if kind == "none":
        return None
    return LayerNorm(num_channels) if kind == "layer" else GroupNorm(num_channels)


class FiLM(nnx.Module):
    """Feature-wise linear modulation: `h * (1 + scale) + shift`, per channel, with scale and
    shift from a small MLP of a conditioning vector (simulation parameters, a flow's time).

    The modulation is the same at every pixel, so it commutes with every translation,
    rotation and reflection of the field: a periodic or dihedral model stays exactly so.
    The MLP's last layer starts at zero, so a new FiLM is the identity.

    Args:
        cond_dim: Length of the conditioning vector.
        channels: Channels of the modulated field.
        hidden: Width of the MLP's hidden layer (default max(32, 2 * channels)).
        act: Activation of the hidden layer, one of `ACTIVATIONS`.
        dtype: Compute dtype (None: the inputs').
        rngs: Random streams for the weights.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> film = FiLM(cond_dim=3, channels=8, rngs=nnx.Rngs(0))
        >>> h = jnp.ones((2, 16, 16, 8))
        >>> bool(jnp.all(film(h, jnp.zeros((2, 3))) == h))   # the identity when new
        True
    """

    def __init__(self, cond_dim: int, channels: int, *, hidden: int | None = None,
                 act: str = "gelu", dtype=None, rngs: nnx.Rngs):
        self.cond_dim = check_positive("cond_dim", cond_dim)
        self.channels = check_positive("channels", channels)
        hidden = check_positive("hidden", hidden or max(32, 2 * channels))
        self.act = act
        activation(act)
        self.hidden = ChannelMixer(cond_dim, hidden, dtype=dtype, rngs=rngs)
        self.out = ChannelMixer(hidden, 2 * channels, dtype=dtype, rngs=rngs)
        self.out.weight[...] = jnp.zeros_like(self.out.weight[...])
        self.out.bias[...] = jnp.zeros_like(self.out.bias[...])

    def __call__(self, h, cond):
        if cond.ndim != 2 or cond.shape != (h.shape[0], self.cond_dim):
            raise ValueError(f"expected cond of shape ({h.shape[0]}, {self.cond_dim}) for a "
                             f"batch of {h.shape[0]}, got {tuple(cond.shape)}")
        gamma_beta = self.out(ACTIVATIONS[self.act](self.hidden(cond)))
        view = (h.shape[0],) + (1,) * (h.ndim - 2) + (self.channels,)
        scale = gamma_beta[:, :self.channels].reshape(view).astype(h.dtype)
        shift = gamma_beta[:, self.channels:].reshape(view).astype(h.dtype)
        return h * (1 + scale) + shift


class ResBlock(nnx.Module):
    """Pre-activation residual block: norm, act, conv, norm, (FiLM,) act, dropout, conv, plus skip.

    With `cond_dim > 0` the block takes a conditioning vector and modulates its hidden
    features with `FiLM`.

    Args:
        in_channels: Channels of the input (its last axis).
        out_channels: Channels of the output; a `ChannelMixer` maps the skip path when they
            differ from the input's.
        ndim: Number of spatial axes, 1, 2 or 3.
        kernel_size: Pixels of each convolution's kernel along every spatial axis.
        padding: Boundary condition of the convolutions: `"periodic"` or `"zero"` (or
            `"valid"`).
        symmetric: Tie the convolution kernels to be invariant under the grid's symmetry
            group.
        norm: One of `NORMS`.
        act: One of `ACTIVATIONS`.
        dropout: Dropout rate before the second convolution, in [0, 1).
        cond_dim: Length of the conditioning vector; 0: unconditioned.
        dtype: Compute dtype (e.g. `jnp.bfloat16`); None computes in the input's dtype.
        rngs: Random streams for the weights and dropout.

    Raises:
        ValueError: On an unknown activation, norm, `ndim` or padding, a dropout rate
            outside [0, 1), or a bad channel count or kernel size.
    """

    def __init__(self, in_channels: int, out_channels: int, *, ndim: int, kernel_size: int = 3,
                 padding: str = "periodic", symmetric: bool = False, norm: str = "layer",
                 act: str = "gelu", dropout: float = 0.0, cond_dim: int = 0, dtype=None,
                 rngs: nnx.Rngs):
        conv = functools.partial(Conv, kernel_size=kernel_size, ndim=ndim, padding=padding,
                                 symmetric=symmetric, dtype=dtype, rngs=rngs)
        self.act = act
        activation(act)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a rate in [0, 1), got {dropout!r}")
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = conv(in_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.conv2 = conv(out_channels, out_channels)
        self.skip = (ChannelMixer(in_channels, out_channels, dtype=dtype, rngs=rngs)
                     if in_channels != out_channels else None)
        self.film = (FiLM(cond_dim, out_channels, act=act, dtype=dtype, rngs=rngs)
                     if cond_dim else None)

    def __call__(self, x, cond=None):
        act = ACTIVATIONS[self.act]
        h = self.norm1(x) if self.norm1 is not None else x
        h = self.conv1(act(h))
        h = self.norm2(h) if self.norm2 is not None else h
        if self.film is not None:
            if cond is None:
                raise ValueError(f"this block is conditioned (cond_dim={self.film.cond_dim}); "
                                 "pass cond")
            h = self.film(h, cond)
        h = act(h)
        if self.dropout is not None:
            h = self.dropout(h)
        h = self.conv2(h)
        return (self.skip(x) if self.skip is not None else x).astype(h.dtype) + h

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        # The skip path is pointwise, so the residual path's span contains it.
        """The span of input pixels that output pixels lo..hi see along one axis.

        The skip path is pointwise, so the residual path's span contains it.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (first, last) input pixel, inclusive.

        Raises:
            ValueError: With group normalization (no finite span).
        """
        for layer in (self.conv2, self.norm2, self.conv1, self.norm1):
            lo, hi = input_interval(layer, lo, hi)
        return lo, hi


def input_interval(layer, lo: int, hi: int) -> tuple[int, int]:
    """The span of inputs that outputs lo..hi of `layer` see.

    Layers without `input_interval` (activations, dropout, channel mixers, layer norm) are
    pointwise.

    Args:
        layer: A layer, or None.
        lo: First output pixel along one axis.
        hi: Last output pixel along that axis (inclusive).

    Returns:
        (first, last) input pixel along that axis, inclusive; may lie outside the grid
        (a periodic layer wraps them around).
    """
    if layer is None or not hasattr(layer, "input_interval"):
        return lo, hi
    return layer.input_interval(lo, hi)


def param_count(module: nnx.Module) -> int:
    """Number of trainable scalars in a module.

    Args:
        module: Any NNX module.

    Returns:
        The total size of its `nnx.Param` leaves.
    """
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
