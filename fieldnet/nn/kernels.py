"""Kernels tied to be invariant under the grid's symmetry group.

A scalar-to-scalar convolution commutes with every rotation and reflection of the grid
exactly when its kernel is invariant under them. Such a kernel has one free value per
orbit of kernel offsets, and the orbit of an offset vector (measured from the kernel
centre) under axis permutations and sign flips is the sorted tuple of its absolute
components. Building the kernel by indexing a per-orbit parameter table makes the
equivariance exact by construction, with an honest parameter count.
"""

from __future__ import annotations

import itertools

import numpy as np


def orbit_index(kernel_size: int, ndim: int) -> tuple[np.ndarray, int]:
    """Orbit number of each kernel offset, shape (kernel_size,)*ndim, and the orbit count."""
    centre = (kernel_size - 1) / 2
    keys = {}
    index = np.empty((kernel_size,) * ndim, np.int32)
    for pos in itertools.product(range(kernel_size), repeat=ndim):
        key = tuple(sorted(abs(p - centre) for p in pos))
        index[pos] = keys.setdefault(key, len(keys))
    return index, len(keys)
