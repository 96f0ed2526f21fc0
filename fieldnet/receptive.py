"""The receptive field of a model, computed from its architecture."""

from __future__ import annotations


def receptive_field(model) -> int:
    """Pixels on each side of an output pixel that it depends on (the halo for tiling).

    With strided layers the span depends on the pixel's position within a stride cell,
    so every phase 0..stride-1 is walked and the widest reach on either side is returned.
    """
    if not hasattr(model, "input_interval"):
        raise ValueError(f"{type(model).__name__} pools globally or has no spatial output; "
                         "only field-to-field models have a finite receptive field")
    halo = 0
    for p in range(getattr(model, "stride", 1)):
        lo, hi = model.input_interval(p, p)
        halo = max(halo, p - lo, hi - p)
    return halo
