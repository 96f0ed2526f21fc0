"""The field-to-field U-Net, the ResNet classifier, and `FieldModel`, the interface of a
field-to-field model.

    m = UNet(in_channels=1, out_channels=1, ndim=2, width=16, depth=3,
             padding="periodic", symmetry="none", rngs=nnx.Rngs(0))

`padding="periodic"` makes the U-Net exactly equivariant to periodic translations by
multiples of its total stride 2**depth. `symmetry="dihedral"` ties every kernel to be
invariant under the grid's rotations and reflections (D4 in 2D, 48 elements in 3D), so the
U-Net is exactly equivariant and the ResNet exactly invariant under them, by construction.

Any model with the members of `FieldModel` works with `receptive_field` and tiled
inference (`predict_field`), which read nothing else off it (it is defined in
`fieldnet.nn.field_model`, a layer below this module and `fieldnet.receptive`).

Models are registered by the name that `config.model.name` gives, as losses are:

    @register_model("my_net")
    class MyNet(nnx.Module): ...

and `build` constructs the registered class from the config's keys, which must be
arguments of its constructor.
"""

from __future__ import annotations

import functools
import inspect
import numbers

import jax.numpy as jnp
import ml_collections
from flax import nnx

from fieldnet.errors import FieldnetError
from fieldnet.nn import layers
from fieldnet.nn.field_model import FieldModel as FieldModel
from fieldnet.nn.field_model import missing_members as missing_members
from fieldnet.nn.padding import BOUNDARY_CONDITIONS
from fieldnet.registry import Registry

MODELS: Registry[type[nnx.Module]] = Registry("model", "model.name")
register_model = MODELS.register

SYMMETRIES = ("none", "dihedral")
MODEL_PADDINGS = BOUNDARY_CONDITIONS
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _channels(width: int, levels: int, channel_mult) -> tuple[int, ...]:
    """Channels of each of `levels` + 1 resolutions."""
    width = layers.check_positive("width", width)
    mult = tuple(channel_mult) if channel_mult else tuple(2 ** min(l, 3) for l in range(levels + 1))
    if len(mult) != levels + 1:
        raise ValueError(f"channel_mult needs one entry per resolution, {levels + 1} in all, "
                         f"got {mult}")
    if any(isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1 for m in mult):
        raise ValueError(f"channel_mult entries must be positive integers, got {mult}")
    return tuple(width * m for m in mult)


def _compute_dtype(dtype):
    if isinstance(dtype, str):
        return DTYPES[_check_choice("dtype", dtype, tuple(DTYPES))]
    return dtype


def _spatial_names(ndim: int) -> str:
    return ", ".join(("D", "H", "W")[-ndim:]) if ndim > 1 else "L"


def check_input(x, *, ndim: int, channels: int, multiple: int) -> None:
    """Raises ValueError naming the expected shape when x does not fit the model.

    Args:
        x: The model's input, expected (batch, *spatial, channels).
        ndim: Number of spatial axes the model takes.
        channels: Channels the model takes (the last axis of x).
        multiple: What every spatial size must be divisible by (the model's stride).

    Raises:
        ValueError: If x has the wrong number of axes or channels, or a spatial size that
            is not a multiple of `multiple`; the message names the expected shape.
    """
    names = _spatial_names(ndim)
    expected = f"(batch, {names}, {channels}) with {names} divisible by {multiple}"
    if x.ndim != ndim + 2 or x.shape[-1] != channels or any(s % multiple for s in x.shape[1:-1]):
        raise ValueError(f"expected input of shape {expected}, got {tuple(x.shape)}")


def check_cond(cond, cond_dim: int, batch: int):
    """The conditioning vector of a batch, checked.

    Args:
        cond: The conditioning vectors, (batch, cond_dim), or None.
        cond_dim: Length of the model's conditioning vector (0: not conditioned).
        batch: Batch size of the input.

    Returns:
        `cond` unchanged, or None when the model is not conditioned.

    Raises:
        ValueError: If a cond is given to a model that is not conditioned, or is missing or
            of the wrong shape for one that is.
    """
    if cond_dim == 0:
        if cond is not None:
            raise ValueError("this model is not conditioned (cond_dim=0); got a cond")
        return None
    if cond is None or cond.shape != (batch, cond_dim):
        got = None if cond is None else tuple(cond.shape)
        raise ValueError(f"expected cond of shape ({batch}, {cond_dim}), got {got}")
    return cond


# How many fewer ×2 downsamplings than its depth a model makes (the ResNet's first stage
# keeps the resolution): its total stride is 2**(depth - offset). Models not named here
# downsample once per level, as the U-Net does.
DOWNSAMPLING_OFFSET = {"unet": 0, "resnet": 1}


def total_stride(name: str, depth: int) -> int:
    """The total stride of the model registered as `name` at `depth`: the one formula that
    `stride_of` and the models' `stride` use.

    Args:
        name: A registered model name ("unet", "resnet", ...).
        depth: Its depth, an integer ≥ 0.

    Returns:
        2**depth for the U-Net, 2**(depth - 1) for the ResNet (at least 1).

    Examples:
        >>> from fieldnet import models
        >>> models.total_stride("unet", 3), models.total_stride("resnet", 3)
        (8, 4)
    """
    return 2 ** max(depth - DOWNSAMPLING_OFFSET.get(name, 0), 0)


def stride_formula(name: str) -> str:
    """How the total stride of the model registered as `name` follows from its config.

    As messages show it ("2**model.depth", "2**(model.depth - 1)").

    Args:
        name: A registered model name (`model.name`).

    Returns:
        The formula, in terms of `model.depth`.
    """
    offset = DOWNSAMPLING_OFFSET.get(name, 0)
    return "2**model.depth" if offset == 0 else f"2**(model.depth - {offset})"


def stride_of(config: ml_collections.ConfigDict) -> int:
    """The total stride of the model a config builds, without building it: spatial sizes
    must be multiples of it (`total_stride`).

    Args:
        config: A model config (`config.model` of a study): `name` and `depth` are read.

    Returns:
        2**depth for the U-Net, 2**(depth - 1) for the ResNet.

    Raises:
        FieldnetError: If the depth is not an integer ≥ 0 (one line naming model.depth).

    Examples:
        >>> import ml_collections
        >>> from fieldnet import models
        >>> models.stride_of(ml_collections.ConfigDict({"name": "unet", "depth": 3}))
        8
    """
    try:
        depth = layers.check_non_negative("model.depth", config.depth)
    except ValueError as err:
        raise FieldnetError(str(err)) from None
    return total_stride(config.get("name", "unet"), depth)


def _blocks(n, cin, cout, block):
    return nnx.List([block(cin if i == 0 else cout, cout) for i in range(n)])


def _span(modules, lo, hi):
    for m in reversed(list(modules)):
        lo, hi = layers.input_interval(m, lo, hi)
    return lo, hi


@register_model("unet")
class UNet(nnx.Module):
    """U-Net on periodic fields: residual blocks, ×2 strided down, transposed ×2 up, skips.

    A `FieldModel`: it maps (batch, *spatial, in_channels) to (batch, *spatial,
    out_channels), with spatial sizes multiples of its stride 2**depth.

    Args:
        in_channels: Channels of the input field.
        out_channels: Channels of the output field.
        ndim: Number of spatial axes, 1, 2 or 3.
        width: Channels at full resolution; level l has `width * channel_mult[l]`.
        depth: Number of ×2 downsamplings (0 for a single full-resolution level).
        padding: `"periodic"` (exactly equivariant to periodic translations by multiples
            of the stride) or `"zero"`.
        symmetry: `"none"`, or `"dihedral"` for kernels tied to be invariant under the
            grid's rotations and reflections, which makes the U-Net exactly equivariant
            under them (D4 in 2D, the 48-element group in 3D; on even grids).
        channel_mult: Channel multipliers of the depth + 1 resolutions, full resolution
            first; None gives 1, 2, 4, 8, 8, ...
        blocks_per_level: Residual blocks at each resolution, in the encoder and again in
            the decoder.
        kernel_size: Kernel size of the residual blocks and the stem; odd when
            `symmetry="dihedral"`.
        norm: `"layer"` (per pixel; keeps the receptive field finite), `"group"` (whole
            field statistics) or `"none"`.
        act: Activation, one of `layers.ACTIVATIONS` (`"gelu"`, `"relu"`, ...).
        dropout: Dropout rate inside the residual blocks, in [0, 1).
        global_residual: Add the input to the output (needs in_channels == out_channels).
        cond_dim: Length of a conditioning vector (standardized simulation parameters):
            with cond_dim > 0 every residual block modulates its features by `FiLM`, the
            same at every pixel, so every symmetry above stays exact; the model is then
            called as `m(x, cond)` with cond of shape (batch, cond_dim).
        dtype: Compute dtype, `"float32"`, `"bfloat16"` or a JAX dtype; parameters stay
            float32 and the output has the input's dtype.
        rngs: Random streams for the weights (and dropout).

    Raises:
        ValueError: On a channel count, width, block count or kernel size that is not a
            positive integer, a negative depth, a `channel_mult` of the wrong length, an
            unknown `ndim`, `padding`, `symmetry`, `norm`, `act` or `dtype`, an even
            `kernel_size` with `symmetry="dihedral"`, or a `global_residual` whose channel
            counts differ.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from fieldnet import models, receptive_field
        >>> m = models.UNet(in_channels=1, out_channels=1, ndim=2, width=4, depth=1,
        ...                 padding="periodic", symmetry="none", rngs=nnx.Rngs(0))
        >>> m(jnp.ones((3, 16, 16, 1))).shape
        (3, 16, 16, 1)
        >>> m.stride, receptive_field(m), isinstance(m, models.FieldModel)
        (2, 10, True)
    """

    def __init__(self, in_channels: int, out_channels: int, ndim: int, width: int = 16,
                 depth: int = 3, padding: str = "periodic", symmetry: str = "none", *,
                 channel_mult=None, blocks_per_level: int = 1, kernel_size: int = 3,
                 norm: str = "layer", act: str = "gelu", dropout: float = 0.0,
                 global_residual: bool = False, cond_dim: int = 0, dtype=None,
                 rngs: nnx.Rngs):
        self.ndim = layers.check_ndim(ndim)
        in_channels = layers.check_positive("in_channels", in_channels)
        out_channels = layers.check_positive("out_channels", out_channels)
        blocks_per_level = layers.check_positive("blocks_per_level", blocks_per_level)
        depth = layers.check_non_negative("depth", depth, "the number of ×2 downsamplings")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.cond_dim = layers.check_non_negative("cond_dim", cond_dim)
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
                                  dropout=dropout, cond_dim=self.cond_dim, dtype=dtype,
                                  rngs=rngs)
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

    @property
    def stride(self) -> int:
        """Total downsampling factor, 2**depth: spatial sizes must be multiples of it."""
        return total_stride("unet", self.depth)

    def __call__(self, x, cond=None):
        check_input(x, ndim=self.ndim, channels=self.in_channels, multiple=self.stride)
        cond = check_cond(cond, self.cond_dim, len(x))
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            for b in enc:
                h = b(h, cond)
            skips.append(h)
            h = down(h)
        for b in self.middle:
            h = b(h, cond)
        for level in reversed(range(self.depth)):
            h = self.ups[level](h)
            h = jnp.concatenate([skips[level].astype(h.dtype), h], axis=-1)
            for b in self.decoders[level]:
                h = b(h, cond)
        if self.head_norm is not None:
            h = self.head_norm(h)
        y = self.head(layers.ACTIVATIONS[self.act](h)).astype(x.dtype)
        return y + x if self.global_residual else y

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """The span of input pixels that output pixels lo..hi see along one axis.

        Composed from the layers' spans (`fieldnet.receptive_field` gives the halo).

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (first, last) input pixel, inclusive; may reach below 0 or past the size, where the
            padding wraps.

        Raises:
            ValueError: With `norm="group"` (no finite span).
        """
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


@register_model("resnet")
class ResNet(nnx.Module):
    """Classifier: residual stages with ×2 downsampling between them, global mean pooling,
    then a linear head. With `flip_invariant`, features of x and -x are summed before the
    head, making the logits exactly invariant under a global sign flip (Ising Z2).

    It maps (batch, *spatial, in_channels) to logits (batch, num_classes). Pooling
    globally, it has no receptive field and is not a `FieldModel`.

    Args:
        in_channels: Channels of the input field.
        num_classes: Number of logits.
        ndim: Number of spatial axes, 1, 2 or 3.
        width: Channels of the first stage; stage l has `width * channel_mult[l]`.
        depth: Number of stages (≥ 1), with a ×2 downsampling between consecutive ones.
        padding: `"periodic"` or `"zero"`.
        symmetry: `"none"`, or `"dihedral"` for kernels tied to be invariant under the
            grid's rotations and reflections, which makes the logits exactly invariant
            under them (on grids that stay even down to the last stage).
        channel_mult: Channel multipliers of the `depth` stages; None gives 1, 2, 4, 8, 8, ...
        blocks_per_level: Residual blocks per stage.
        kernel_size: Kernel size of the residual blocks and the stem; odd when
            `symmetry="dihedral"`.
        norm: `"layer"`, `"group"` or `"none"`.
        act: Activation, one of `layers.ACTIVATIONS`.
        dropout: Dropout rate inside the residual blocks, in [0, 1).
        flip_invariant: Sum the pooled features of x and -x (logits invariant under x -> -x).
        cond_dim: Length of a conditioning vector; > 0 adds `FiLM` to every residual block
            (called as `r(x, cond)`), which keeps every invariance above exact.
        dtype: Compute dtype, `"float32"`, `"bfloat16"` or a JAX dtype; parameters stay
            float32.
        rngs: Random streams for the weights (and dropout).

    Raises:
        ValueError: On a channel or class count, width, depth, block count or kernel size
            that is not a positive integer, a `channel_mult` of the wrong length, an unknown
            `ndim`, `padding`, `symmetry`, `norm`, `act` or `dtype`, or an even
            `kernel_size` with `symmetry="dihedral"`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from fieldnet import models
        >>> r = models.ResNet(in_channels=1, num_classes=3, ndim=2, width=4, depth=2,
        ...                   symmetry="dihedral", rngs=nnx.Rngs(0))
        >>> r(jnp.ones((5, 8, 8, 1))).shape
        (5, 3)
        >>> isinstance(r, models.FieldModel)
        False
    """

    def __init__(self, in_channels: int, num_classes: int, ndim: int, width: int = 16,
                 depth: int = 3, padding: str = "periodic", symmetry: str = "none", *,
                 channel_mult=None, blocks_per_level: int = 1, kernel_size: int = 3,
                 norm: str = "layer", act: str = "gelu", dropout: float = 0.0,
                 flip_invariant: bool = False, cond_dim: int = 0, dtype=None,
                 rngs: nnx.Rngs):
        self.ndim = layers.check_ndim(ndim)
        in_channels = layers.check_positive("in_channels", in_channels)
        num_classes = layers.check_positive("num_classes", num_classes)
        depth = layers.check_positive("depth", depth)
        blocks_per_level = layers.check_positive("blocks_per_level", blocks_per_level)
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.cond_dim = layers.check_non_negative("cond_dim", cond_dim)
        _check_choice("padding", padding, MODEL_PADDINGS)
        _check_choice("symmetry", symmetry, SYMMETRIES)
        self.act, self.flip_invariant = act, flip_invariant
        dtype = _compute_dtype(dtype)
        sym = symmetry == "dihedral"
        chans = _channels(width, depth - 1, channel_mult)
        block = functools.partial(layers.ResBlock, ndim=ndim, kernel_size=kernel_size,
                                  padding=padding, symmetric=sym, norm=norm, act=act,
                                  dropout=dropout, cond_dim=self.cond_dim, dtype=dtype,
                                  rngs=rngs)
        self.stem = layers.Conv(in_channels, chans[0], kernel_size, ndim=ndim, padding=padding,
                                symmetric=sym, dtype=dtype, rngs=rngs)
        self.stages = nnx.List([_blocks(blocks_per_level, c, c, block) for c in chans])
        self.downs = nnx.List([layers.downsample(chans[l], chans[l + 1], ndim=ndim, symmetric=sym,
                                                 dtype=dtype, rngs=rngs)
                               for l in range(depth - 1)])
        self.head_norm = layers.make_norm(norm, chans[-1])
        self.head = nnx.Linear(chans[-1], num_classes, rngs=rngs)

    @property
    def stride(self) -> int:
        """Total downsampling factor of its stages, 2**(depth - 1) (at least 1)."""
        return total_stride("resnet", self.depth)

    def features(self, x, cond=None):
        """Globally pooled features, (batch, channels).

        Args:
            x: Input, shape `(batch, *spatial, in_channels)`.
            cond: Conditioning vectors `(batch, cond_dim)` of a conditioned model, else None.

        Returns:
            float32 array `(batch, channels)`: the last stage's features, normalized and
            activated, averaged over the grid.
        """
        h = self.stem(x)
        for l, stage in enumerate(self.stages):
            for b in stage:
                h = b(h, cond)
            if l < len(self.downs):
                h = self.downs[l](h)
        if self.head_norm is not None:
            h = self.head_norm(h)
        h = layers.ACTIVATIONS[self.act](h)
        return h.mean(axis=tuple(range(1, self.ndim + 1))).astype(jnp.float32)

    def __call__(self, x, cond=None):
        check_input(x, ndim=self.ndim, channels=self.in_channels, multiple=self.stride)
        cond = check_cond(cond, self.cond_dim, len(x))
        f = self.features(x, cond)
        if self.flip_invariant:
            f = f + self.features(-x, cond)
        return self.head(f)


# Keys of a model config that are not constructor arguments: the registered name, and the
# objective, which `fieldnet.objectives` reads to size the network it trains.
NOT_CONSTRUCTOR_KEYS = ("name", "objective")


def constructor_keys(model_cls: type) -> list[str]:
    """The constructor arguments of a registered model class that a config may set.

    Args:
        model_cls: The model class.

    Returns:
        Its positional-or-keyword and keyword-only constructor arguments but `rngs`,
        sorted.
    """
    params = inspect.signature(model_cls.__init__).parameters
    return sorted(name for name, p in params.items() if name not in ("self", "rngs")
                  and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def build(config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, **overrides) -> nnx.Module:
    """Builds the model registered under config.name ("unet", the default, or "resnet", or
    one's own `register_model`) from a ConfigDict.

    Every key of the config but `name` and `objective` is a constructor argument of that
    model; None values take the constructor's default. A run's network is built by
    `fieldnet.objectives.build`, which sizes it for the run's objective (a flow run's U-Net
    takes the state as extra channels) and then calls this.

    Args:
        config: The model config: `name` and any of the model's constructor arguments
            (`width`, `depth`, `padding`, `symmetry`, `channel_mult`, ...).
        rngs: Random streams for the weights.
        **overrides: Constructor arguments that take precedence over the config, typically
            what the data decides: `in_channels`, `out_channels`, `ndim`, `cond_dim`.

    Returns:
        The model, an instance of the registered class (`UNet`, `ResNet`, ...).

    Raises:
        FieldnetError: (a ValueError) On an unknown name; the one line lists the registered
            ones.
        ValueError: On a config key that is not an argument of the model's constructor; the
            constructor's own errors otherwise.

    Examples:
        >>> import ml_collections
        >>> from flax import nnx
        >>> from fieldnet import models
        >>> config = ml_collections.ConfigDict({"width": 4, "depth": 1})
        >>> m = models.build(config, rngs=nnx.Rngs(0), in_channels=1, out_channels=1, ndim=2)
        >>> type(m).__name__, m.stride
        ('UNet', 2)
    """
    model_cls = MODELS.get(config.get("name", "unet"))
    known = constructor_keys(model_cls)
    unknown = set(config.keys()) - set(known) - set(NOT_CONSTRUCTOR_KEYS)
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {known}")
    kwargs = {k: v for k, v in config.items() if k not in NOT_CONSTRUCTOR_KEYS and v is not None}
    if "channel_mult" in kwargs:
        kwargs["channel_mult"] = tuple(kwargs["channel_mult"])
    return model_cls(**{**kwargs, **overrides}, rngs=rngs)
