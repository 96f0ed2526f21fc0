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
    """Orbit number of each kernel offset under the grid's symmetry group, and the orbit count.

    Offsets whose distances from the centre are the same up to order and sign lie on one
    orbit; a symmetric kernel has one weight per orbit.

    Args:
        kernel_size: Pixels of the kernel along every axis.
        ndim: Number of spatial axes.

    Returns:
        (index, count): the orbit of each offset, int32 of shape (kernel_size,) * ndim, and
        the number of orbits.

    Examples:
        >>> from fieldnet.nn.kernels import orbit_index
        >>> index, count = orbit_index(3, 2)
        >>> index.tolist(), count
        ([[0, 1, 0], [1, 2, 1], [0, 1, 0]], 3)
    """
    centre = (kernel_size - 1) / 2
    keys = {}
    index = np.empty((kernel_size,) * ndim, np.int32)
    for pos in itertools.product(range(kernel_size), repeat=ndim):
        key = tuple(sorted(abs(p - centre) for p in pos))
        index[pos] = keys.setdefault(key, len(keys))
    return index, len(keys)
