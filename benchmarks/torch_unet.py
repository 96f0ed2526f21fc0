"""A PyTorch U-Net with exactly the architecture of `fieldnet.models.UNet`, for speed comparisons.

Same layers in the same order: periodic (circular) 3^d stem, pre-activation residual blocks
(per-pixel layer norm over channels, tanh-approximated GELU, two convolutions, a 1×1 skip
when the width changes), kernel-2 stride-2 downsampling, kernel-2 stride-2 transposed
upsampling, skip concatenation [encoder, upsampled], and a norm, GELU, 1×1 head. Only the
default options are mirrored (symmetry "none", norm "layer", act "gelu", no dropout).

Written as one would write it for speed: the norm is one fused `F.layer_norm` over the
channels of a channels-last view, `channels_last(model_or_tensor)` puts the model and its
inputs in the channels-last memory format (NHWC / NDHWC strides), where that view is free
and oneDNN / cuDNN pick their channels-last convolutions, and the periodic padding keeps
that layout in the forward and the backward pass (`wrap_pad`).

`load_from_jax(torch_model, jax_model)` copies the parameters, so the two compute the same
function; `benchmarks.compare_torch` checks that before it times anything.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


_MEMORY_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def channels_last(value):
    """A `UNet` or an (N, C, *spatial) tensor in the channels-last memory format (2D and 3D;
    1D has no such format and is returned as it is)."""
    if isinstance(value, UNet):
        fmt = _MEMORY_FORMATS.get(value.ndim + 2)
        return value if fmt is None else value.to(memory_format=fmt)
    fmt = _MEMORY_FORMATS.get(value.dim())
    return value if fmt is None else value.contiguous(memory_format=fmt)


class PixelLayerNorm(nn.Module):
    """Normalizes the channels (axis 1) of every pixel on its own, like fieldnet's LayerNorm:
    one fused layer norm over the last axis of the channels-last view."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        y = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.scale, self.shift, self.eps)
        return y.movedim(-1, 1)


def wrap_pad(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Periodic padding of every spatial axis of (N, C, *spatial), by concatenation: unlike
    `F.pad(mode="circular")`, whose output and gradient come back in the standard layout,
    it keeps a channels-last layout both ways (so the element-wise backward ops next to it
    do not run on mixed layouts, 10x slower on the CPU)."""
    for axis in range(2, x.dim()):
        n = x.shape[axis]
        x = torch.cat([x.narrow(axis, n - before, before), x, x.narrow(axis, 0, after)], axis)
    return x


class PeriodicConv(nn.Module):
    def __init__(self, ndim: int, cin: int, cout: int, kernel_size: int = 3):
        super().__init__()
        self.before = (kernel_size - 1) // 2
        self.after = kernel_size - 1 - self.before
        self.conv = _CONV[ndim](cin, cout, kernel_size)

    def forward(self, x):
        return self.conv(wrap_pad(x, self.before, self.after))


def _gelu(x):
    return F.gelu(x, approximate="tanh")


class ResBlock(nn.Module):
    def __init__(self, ndim: int, cin: int, cout: int, kernel_size: int):
        super().__init__()
        self.norm1 = PixelLayerNorm(cin)
        self.conv1 = PeriodicConv(ndim, cin, cout, kernel_size)
        self.norm2 = PixelLayerNorm(cout)
        self.conv2 = PeriodicConv(ndim, cout, cout, kernel_size)
        self.skip = _CONV[ndim](cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(_gelu(self.norm1(x)))
        h = self.conv2(_gelu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class UNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ndim: int, width: int = 16,
                 depth: int = 3, kernel_size: int = 3, blocks_per_level: int = 1):
        super().__init__()
        self.ndim = ndim
        chans = [width * 2 ** min(level, 3) for level in range(depth + 1)]

        def blocks(cin, cout):
            return nn.ModuleList([ResBlock(ndim, cin if i == 0 else cout, cout, kernel_size)
                                  for i in range(blocks_per_level)])

        self.stem = PeriodicConv(ndim, in_channels, chans[0], kernel_size)
        self.encoders = nn.ModuleList([blocks(c, c) for c in chans[:-1]])
        self.downs = nn.ModuleList([_CONV[ndim](chans[i], chans[i + 1], 2, stride=2)
                                    for i in range(depth)])
        self.middle = blocks(chans[-1], chans[-1])
        self.ups = nn.ModuleList([_CONV_T[ndim](chans[i + 1], chans[i], 2, stride=2)
                                  for i in range(depth)])
        self.decoders = nn.ModuleList([blocks(2 * c, c) for c in chans[:-1]])
        self.head_norm = PixelLayerNorm(chans[0])
        self.head = _CONV[ndim](chans[0], out_channels, 1)

    def forward(self, x):
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            for b in enc:
                h = b(h)
            skips.append(h)
            h = down(h)
        for b in self.middle:
            h = b(h)
        for level in reversed(range(len(self.ups))):
            h = torch.cat([skips[level], self.ups[level](h)], dim=1)
            for b in self.decoders[level]:
                h = b(h)
        return self.head(_gelu(self.head_norm(h)))


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _copy_conv(dst: nn.Module, weight, bias) -> None:
    """fieldnet kernels are (*spatial, in, out); torch's are (out, in, *spatial)."""
    w = _t(weight)
    nd = w.dim() - 2
    if w.dim() == 2:  # a 1×1 channel mixer
        w = w.reshape((1,) * (dst.weight.dim() - 2) + tuple(w.shape))
        nd = dst.weight.dim() - 2
    dst.weight.copy_(w.permute(nd + 1, nd, *range(nd)))
    dst.bias.copy_(_t(bias))


def _copy_conv_transpose(dst: nn.Module, weight, bias) -> None:
    """(*block, in, out) to torch's transposed layout (in, out, *block)."""
    w = _t(weight)
    nd = w.dim() - 2
    dst.weight.copy_(w.permute(nd, nd + 1, *range(nd)))
    dst.bias.copy_(_t(bias))


def _copy_norm(dst: PixelLayerNorm, src) -> None:
    dst.scale.copy_(_t(src.scale[...]))
    dst.shift.copy_(_t(src.shift[...]))


def _copy_block(dst: ResBlock, src) -> None:
    _copy_norm(dst.norm1, src.norm1)
    _copy_conv(dst.conv1.conv, src.conv1.kernel, src.conv1.bias[...])
    _copy_norm(dst.norm2, src.norm2)
    _copy_conv(dst.conv2.conv, src.conv2.kernel, src.conv2.bias[...])
    if dst.skip is not None:
        _copy_conv(dst.skip, src.skip.weight[...], src.skip.bias[...])


@torch.no_grad()
def load_from_jax(model: UNet, src) -> UNet:
    """Copies the parameters of a default-option `fieldnet.models.UNet` into `model`."""
    _copy_conv(model.stem.conv, src.stem.kernel, src.stem.bias[...])
    for dst_level, src_level in zip(model.encoders, src.encoders, strict=True):
        for d, s in zip(dst_level, src_level, strict=True):
            _copy_block(d, s)
    for d, s in zip(model.downs, src.downs, strict=True):
        _copy_conv(d, s.kernel, s.bias[...])
    for d, s in zip(model.middle, src.middle, strict=True):
        _copy_block(d, s)
    for d, s in zip(model.ups, src.ups, strict=True):
        _copy_conv_transpose(d, s.kernel, s.bias[...])
    for dst_level, src_level in zip(model.decoders, src.decoders, strict=True):
        for d, s in zip(dst_level, src_level, strict=True):
            _copy_block(d, s)
    _copy_norm(model.head_norm, src.head_norm)
    _copy_conv(model.head, src.head.weight[...], src.head.bias[...])
    return model


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
