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
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    return ndim


def activation(name: str):
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
    """Convolution with kernel size, stride, dilation and a boundary condition.

    With `symmetric=True` the kernel is invariant under the grid's rotations and
    reflections (one parameter per offset orbit), so the layer is exactly equivariant.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, ndim: int,
                 stride: int = 1, dilation: int = 1, padding: str = "periodic",
                 symmetric: bool = False, use_bias: bool = True, dtype=None, rngs: nnx.Rngs):
        self.ndim = check_ndim(ndim)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = check_padding(padding)
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
        return (0, 0) if self.padding == "valid" else same_padding(self.kernel_size, self.dilation)

    def __call__(self, x):
        x, k = _cast(self.dtype, x, self.kernel)
        y = conv_nd(pad_spatial(x, self.pads, self.padding), k, self.stride, self.dilation)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        before = self.pads[0]
        return (self.stride * lo - before,
                self.stride * hi - before + self.dilation * (self.kernel_size - 1))


class ConvTranspose(nnx.Module):
    """×2 upsampling by a transposed convolution with kernel 2 and stride 2.

    Each coarse pixel writes its own 2^d block of fine pixels, so no padding is involved
    and a periodic shift by s coarse pixels becomes an exact shift by 2s fine pixels.
    """

    def __init__(self, in_channels: int, out_channels: int, *, ndim: int,
                 symmetric: bool = False, use_bias: bool = True, dtype=None, rngs: nnx.Rngs):
        self.ndim = check_ndim(ndim)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.symmetric = symmetric
        self.dtype = dtype
        # A 2^d kernel invariant under all reflections has one value: every block pixel gets
        # the same channel mix.
        shape = (in_channels, out_channels) if symmetric else (2,) * ndim + (in_channels,
                                                                              out_channels)
        self.weight, self.bias = _weight_and_bias(rngs, shape, in_channels, use_bias)

    @property
    def kernel(self):
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
        return lo // 2, hi // 2


class ChannelMixer(nnx.Module):
    """1×1 convolution: a per-pixel linear map of the channels."""

    def __init__(self, in_channels: int, out_channels: int, *, use_bias: bool = True, dtype=None,
                 rngs: nnx.Rngs):
        self.in_channels, self.out_channels = in_channels, out_channels
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
    """Non-overlapping max or mean pooling by a factor of 2 along every spatial axis."""

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
        return 2 * lo, 2 * hi + 1


def downsample(in_channels: int, out_channels: int, *, ndim: int, symmetric: bool = False,
               dtype=None, rngs: nnx.Rngs) -> Conv:
    """Strided ×2 downsampling: a kernel-2, stride-2 convolution over disjoint 2^d blocks.

    The blocks tile the grid, so the layer needs no padding, commutes with periodic shifts
    by even amounts, and (with a symmetric kernel) with reflections of an even-sized grid.
    """
    return Conv(in_channels, out_channels, 2, ndim=ndim, stride=2, padding="valid",
                symmetric=symmetric, dtype=dtype, rngs=rngs)


class LayerNorm(nnx.Module):
    """Normalizes the channels of each pixel of each sample on its own: mixes neither samples
    nor pixels, so it keeps the receptive field and exact tiled inference."""

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
    """Group normalization over each sample's pixels and channel groups. It does not mix
    samples, but its statistics see the whole field, so a model using it has no finite halo."""

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
        raise ValueError("group normalization uses whole-field statistics: the receptive field "
                         "is the whole input; use norm='layer' or 'none' for a finite halo")


def make_norm(kind: str, num_channels: int):
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
    if kind == "none":
        return None
    return LayerNorm(num_channels) if kind == "layer" else GroupNorm(num_channels)


class ResBlock(nnx.Module):
    """Pre-activation residual block: norm, act, conv, norm, act, dropout, conv, plus skip."""

    def __init__(self, in_channels: int, out_channels: int, *, ndim: int, kernel_size: int = 3,
                 padding: str = "periodic", symmetric: bool = False, norm: str = "layer",
                 act: str = "gelu", dropout: float = 0.0, dtype=None, rngs: nnx.Rngs):
        conv = functools.partial(Conv, kernel_size=kernel_size, ndim=ndim, padding=padding,
                                 symmetric=symmetric, dtype=dtype, rngs=rngs)
        self.act = act
        activation(act)
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = conv(in_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.conv2 = conv(out_channels, out_channels)
        self.skip = (ChannelMixer(in_channels, out_channels, dtype=dtype, rngs=rngs)
                     if in_channels != out_channels else None)

    def __call__(self, x):
        act = ACTIVATIONS[self.act]
        h = self.norm1(x) if self.norm1 is not None else x
        h = self.conv1(act(h))
        h = self.norm2(h) if self.norm2 is not None else h
        h = act(h)
        if self.dropout is not None:
            h = self.dropout(h)
        h = self.conv2(h)
        return (self.skip(x) if self.skip is not None else x).astype(h.dtype) + h

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        # The skip path is pointwise, so the residual path's span contains it.
        for layer in (self.conv2, self.norm2, self.conv1, self.norm1):
            lo, hi = input_interval(layer, lo, hi)
        return lo, hi


def input_interval(layer, lo: int, hi: int) -> tuple[int, int]:
    """The span of inputs that outputs lo..hi of `layer` see; layers without
    `input_interval` (activations, dropout, channel mixers, layer norm) are pointwise."""
    if layer is None or not hasattr(layer, "input_interval"):
        return lo, hi
    return layer.input_interval(lo, hi)


def param_count(module: nnx.Module) -> int:
    """Number of trainable scalars in a module."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
