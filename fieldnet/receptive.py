"""The receptive field of a model, computed from its architecture."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: importing fieldnet.nn at run time loads JAX
    from fieldnet.nn.field_model import FieldModel


def receptive_field(model: FieldModel) -> int:
    """Pixels on each side of an output pixel that it depends on (the halo for tiling).

    With strided layers the span depends on the pixel's position within a stride cell,
    so every phase 0..stride-1 is walked and the widest reach on either side is returned.

    Args:
        model: A field-to-field model; only its `input_interval` and `stride` are read (a
            single layer with `input_interval` and no `stride` counts as stride 1).

    Returns:
        The halo in pixels: the widest distance, along any axis, from an output pixel to
        an input pixel it depends on.

    Raises:
        ValueError: If the model has no `input_interval` (it pools globally, like
            `ResNet`), or a layer of it sees the whole field (group normalization).

    Examples:
        >>> from flax import nnx
        >>> from fieldnet import models, receptive_field
        >>> m = models.UNet(1, 1, ndim=2, width=4, depth=1, rngs=nnx.Rngs(0))
        >>> receptive_field(m) > 0
        True
    """
    if not hasattr(model, "input_interval"):
        raise ValueError(f"{type(model).__name__} pools globally or has no spatial output; "
                         "only field-to-field models have a finite receptive field")
    halo = 0
    for p in range(getattr(model, "stride", 1)):
        lo, hi = model.input_interval(p, p)
        halo = max(halo, p - lo, hi - p)
    return halo
