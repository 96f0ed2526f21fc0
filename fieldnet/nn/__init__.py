"""Symmetry-aware layers for channels-last fields in 1, 2 or 3 dimensions."""

from fieldnet.nn.layers import (
    ACTIVATIONS,
    NORMS,
    ChannelMixer,
    Conv,
    ConvTranspose,
    FiLM,
    GroupNorm,
    LayerNorm,
    Pool,
    ResBlock,
    downsample,
    input_interval,
    param_count,
)
from fieldnet.nn.padding import PADDING_MODES, pad_spatial

__all__ = [
    "ACTIVATIONS", "NORMS", "PADDING_MODES", "ChannelMixer", "Conv", "ConvTranspose", "FiLM",
    "GroupNorm", "LayerNorm", "Pool", "ResBlock", "downsample", "input_interval", "pad_spatial",
    "param_count",
]
