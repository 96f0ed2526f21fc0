"""The field-to-field U-Net and the ResNet classifier.

    m = UNet(in_channels=1, out_channels=1, ndim=2, width=16, depth=3,
             padding="periodic", symmetry="none", rngs=nnx.Rngs(0))

`padding="periodic"` makes the U-Net exactly equivariant to periodic translations by
multiples of its total stride 2**depth. `symmetry="dihedral"` ties every kernel to be
invariant under the grid's rotations and reflections (D4 in 2D, 48 elements in 3D), so the
U-Net is exactly equivariant and the ResNet exactly invariant under them, by construction.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import ml_collections
from flax import nnx

from fieldnet.nn import layers

SYMMETRIES = ("none", "dihedral")
MODEL_PADDINGS = ("periodic", "zero")
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _channels(width: int, depth: int, channel_mult) -> tuple[int, ...]:
    if width < 1 or depth < 0:
        raise ValueError(f"width must be ≥ 1 and depth ≥ 0, got width={width}, depth={depth}")
    mult = tuple(channel_mult) if channel_mult else tuple(2 ** min(l, 3) for l in range(depth + 1))
    if len(mult) != depth + 1:
        raise ValueError(f"channel_mult needs depth + 1 = {depth + 1} entries (one per level and "
                         f"the bottleneck), got {mult}")
    return tuple(width * m for m in mult)


def _compute_dtype(dtype):
    if isinstance(dtype, str):
        return DTYPES[_check_choice("dtype", dtype, tuple(DTYPES))]
    return dtype


def _spatial_names(ndim: int) -> str:
    return ", ".join(("D", "H", "W")[-ndim:]) if ndim > 1 else "L"


def check_input(x, *, ndim: int, channels: int, multiple: int) -> None:
    """Raises ValueError naming the expected shape when x does not fit the model."""
    names = _spatial_names(ndim)
    expected = f"(batch, {names}, {channels}) with {names} divisible by {multiple}"
    if x.ndim != ndim + 2 or x.shape[-1] != channels or any(s % multiple for s in x.shape[1:-1]):
        raise ValueError(f"expected input of shape {expected}, got {tuple(x.shape)}")


def _blocks(n, cin, cout, block):
    return nnx.List([block(cin if i == 0 else cout, cout) for i in range(n)])


def _span(modules, lo, hi):
    for m in reversed(list(modules)):
        lo, hi = layers.input_interval(m, lo, hi)
    return lo, hi


class UNet(nnx.Module):
    """U-Net on periodic fields: residual blocks, ×2 strided down, transposed ×2 up, skips."""

    def __init__(self, in_channels: int, out_channels: int, ndim: int, width: int = 16,
                 depth: int = 3, padding: str = "periodic", symmetry: str = "none", *,
                 channel_mult=None, blocks_per_level: int = 1, kernel_size: int = 3,
                 norm: str = "layer", act: str = "gelu", dropout: float = 0.0,
                 global_residual: bool = False, dtype=None, rngs: nnx.Rngs):
        self.ndim = layers.check_ndim(ndim)
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.padding = _check_choice("padding", padding, MODEL_PADDINGS)
        _check_choice("symmetry", symmetry, SYMMETRIES)
        if global_residual and in_channels != out_channels:
            raise ValueError("global_residual adds the input to the output, so it needs "
                             f"in_channels == out_channels, got {in_channels} and {out_channels}")
        self.global_residual = global_residual
        self.act = act
        dtype = _compute_dtype(dtype)
        sym = symmetry == "dihedral"
        chans = _channels(width, depth, channel_mult)
        block = functools.partial(layers.ResBlock, ndim=ndim, kernel_size=kernel_size,
                                  padding=padding, symmetric=sym, norm=norm, act=act,
                                  dropout=dropout, dtype=dtype, rngs=rngs)
        self.stem = layers.Conv(in_channels, chans[0], kernel_size, ndim=ndim, padding=padding,
                                symmetric=sym, dtype=dtype, rngs=rngs)
        self.encoders = nnx.List([_blocks(blocks_per_level, c, c, block) for c in chans[:-1]])
        self.downs = nnx.List([layers.downsample(chans[l], chans[l + 1], ndim=ndim, symmetric=sym,
                                                 dtype=dtype, rngs=rngs) for l in range(depth)])
        self.middle = _blocks(blocks_per_level, chans[-1], chans[-1], block)
        self.ups = nnx.List([layers.ConvTranspose(chans[l + 1], chans[l], ndim=ndim,
                                                  symmetric=sym, dtype=dtype, rngs=rngs)
                             for l in range(depth)])
        self.decoders = nnx.List([_blocks(blocks_per_level, 2 * c, c, block)
                                  for c in chans[:-1]])
        self.head_norm = layers.make_norm(norm, chans[0])
        self.head = layers.ChannelMixer(chans[0], out_channels, dtype=dtype, rngs=rngs)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, **overrides):
        return cls(**{**_model_kwargs(config), **overrides}, rngs=rngs)

    @property
    def stride(self) -> int:
        return 2**self.depth

    def __call__(self, x):
        check_input(x, ndim=self.ndim, channels=self.in_channels, multiple=self.stride)
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            for b in enc:
                h = b(h)
            skips.append(h)
            h = down(h)
        for b in self.middle:
            h = b(h)
        for level in reversed(range(self.depth)):
            h = self.ups[level](h)
            h = jnp.concatenate([skips[level].astype(h.dtype), h], axis=-1)
            for b in self.decoders[level]:
                h = b(h)
        if self.head_norm is not None:
            h = self.head_norm(h)
        y = self.head(layers.ACTIVATIONS[self.act](h)).astype(x.dtype)
        return y + x if self.global_residual else y

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        lo, hi = self._level_interval(0, lo, hi)
        return self.stem.input_interval(lo, hi)

    def _level_interval(self, level: int, lo: int, hi: int) -> tuple[int, int]:
        """Inputs of encoder `level` that its decoder's outputs lo..hi depend on."""
        if level == self.depth:
            return _span(self.middle, lo, hi)
        lo, hi = _span(self.decoders[level], lo, hi)
        inner = self._level_interval(level + 1, *self.ups[level].input_interval(lo, hi))
        down_lo, down_hi = self.downs[level].input_interval(*inner)
        return _span(self.encoders[level], min(lo, down_lo), max(hi, down_hi))


class ResNet(nnx.Module):
    """Classifier: residual stages with ×2 downsampling between them, global mean pooling,
    then a linear head. With `flip_invariant`, features of x and -x are summed before the
    head, making the logits exactly invariant under a global sign flip (Ising Z2)."""

    def __init__(self, in_channels: int, num_classes: int, ndim: int, width: int = 16,
                 depth: int = 3, padding: str = "periodic", symmetry: str = "none", *,
                 channel_mult=None, blocks_per_level: int = 1, kernel_size: int = 3,
                 norm: str = "layer", act: str = "gelu", dropout: float = 0.0,
                 flip_invariant: bool = False, dtype=None, rngs: nnx.Rngs):
        self.ndim = layers.check_ndim(ndim)
        if depth < 1:
            raise ValueError(f"a ResNet needs depth ≥ 1, got {depth}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        _check_choice("padding", padding, MODEL_PADDINGS)
        _check_choice("symmetry", symmetry, SYMMETRIES)
        self.act, self.flip_invariant = act, flip_invariant
        dtype = _compute_dtype(dtype)
        sym = symmetry == "dihedral"
        chans = _channels(width, depth - 1, channel_mult)
        block = functools.partial(layers.ResBlock, ndim=ndim, kernel_size=kernel_size,
                                  padding=padding, symmetric=sym, norm=norm, act=act,
                                  dropout=dropout, dtype=dtype, rngs=rngs)
        self.stem = layers.Conv(in_channels, chans[0], kernel_size, ndim=ndim, padding=padding,
                                symmetric=sym, dtype=dtype, rngs=rngs)
        self.stages = nnx.List([_blocks(blocks_per_level, c, c, block) for c in chans])
        self.downs = nnx.List([layers.downsample(chans[l], chans[l + 1], ndim=ndim, symmetric=sym,
                                                 dtype=dtype, rngs=rngs)
                               for l in range(depth - 1)])
        self.head_norm = layers.make_norm(norm, chans[-1])
        self.head = nnx.Linear(chans[-1], num_classes, rngs=rngs)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, **overrides):
        return cls(**{**_model_kwargs(config), **overrides}, rngs=rngs)

    @property
    def stride(self) -> int:
        return 2 ** (self.depth - 1)

    def features(self, x):
        """Globally pooled features, (batch, channels)."""
        h = self.stem(x)
        for l, stage in enumerate(self.stages):
            for b in stage:
                h = b(h)
            if l < len(self.downs):
                h = self.downs[l](h)
        if self.head_norm is not None:
            h = self.head_norm(h)
        h = layers.ACTIVATIONS[self.act](h)
        return h.mean(axis=tuple(range(1, self.ndim + 1))).astype(jnp.float32)

    def __call__(self, x):
        check_input(x, ndim=self.ndim, channels=self.in_channels, multiple=self.stride)
        f = self.features(x)
        if self.flip_invariant:
            f = f + self.features(-x)
        return self.head(f)


_MODEL_KEYS = ("in_channels", "out_channels", "num_classes", "ndim", "width", "depth", "padding",
               "symmetry", "channel_mult", "blocks_per_level", "kernel_size", "norm", "act",
               "dropout", "global_residual", "flip_invariant", "dtype")


def _model_kwargs(config) -> dict:
    kwargs = {k: config[k] for k in _MODEL_KEYS if k in config and config[k] is not None}
    if "channel_mult" in kwargs:
        kwargs["channel_mult"] = tuple(kwargs["channel_mult"])
    return kwargs


def build(config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, **overrides) -> nnx.Module:
    """Builds the model named by config.name ('unet' or 'resnet') from a ConfigDict."""
    name = config.get("name", "unet")
    model_cls = {"unet": UNet, "resnet": ResNet}.get(name)
    if model_cls is None:
        raise ValueError(f"model.name must be 'unet' or 'resnet', got {name!r}")
    unknown = set(config.keys()) - set(_MODEL_KEYS) - {"name"}
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}; known: "
                         f"{sorted(_MODEL_KEYS)}")
    return model_cls.from_config(config, rngs=rngs, **overrides)
