"""Equivariance errors of a network's forward pass: periodic shifts, and the rotations and
reflections of the grid (`fieldnet.symmetry`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fieldnet import symmetry


def translation_error(forward: Callable, x: np.ndarray, shift: int) -> np.ndarray:
    """|f(T x) - T f(x)| per pixel, T the periodic shift by `shift` pixels along every
    spatial axis of x `(1, *spatial, C)`; returns `(*spatial)` (first output channel)."""
    axes = tuple(range(1, x.ndim - 1))
    moved = np.asarray(forward(np.roll(x, shift, axis=axes)))
    back = np.roll(moved, -shift, axis=axes)
    return np.abs(back - np.asarray(forward(x)))[0, ..., 0]


def group_errors(forward: Callable, x: np.ndarray) -> dict[str, np.ndarray]:
    """|g^-1 f(g x) - f(x)| per pixel for every non-identity element g of the grid's
    symmetry group, keyed by `element_name`."""
    ndim = x.ndim - 2
    reference = np.asarray(forward(x))
    out = {}
    for g in symmetry.group_elements(ndim)[1:]:
        y = np.asarray(forward(np.ascontiguousarray(symmetry.apply(x, g))))
        out[element_name(g)] = np.abs(symmetry.apply(y, symmetry.inverse(g)) - reference)[0, ..., 0]
    return out


def element_name(g) -> str:
    """Each output axis as the input axis it takes, "-" where reversed: (-y,x) is a
    rotation by 90 degrees."""
    axes = "xyz"
    return ("(" + ",".join(("-" if f else "") + axes[p] for p, f in zip(g.perm, g.flips,
                                                                          strict=True)) + ")")


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(values, np.float64)))))
