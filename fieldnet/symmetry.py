"""The symmetry group of a periodic cubic grid: axis permutations and reflections.

In d dimensions the group has d!·2^d elements (2 in 1D, the dihedral D4 with 8 in 2D,
the hyperoctahedral group with 48 in 3D). An element is a pair (perm, flips): output
spatial axis m is input axis perm[m], then reversed where flips[m]. The same
elements serve data augmentation and the exactly equivariant models, so both agree.

Reflections here reverse the index order, x -> n-1-x, which keeps a periodic field
periodic and maps the grid onto itself.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple


class Element(NamedTuple):
    """One element of the group: output spatial axis m is input axis perm[m], then
    reversed where flips[m].

    Attributes:
        perm: A permutation of the spatial axes 0..d-1.
        flips: Whether each output axis is reversed.
    """

    perm: tuple[int, ...]
    flips: tuple[bool, ...]

    @property
    def is_identity(self) -> bool:
        """Whether the element leaves every array unchanged."""
        return self.perm == tuple(range(len(self.perm))) and not any(self.flips)


def group_elements(ndim: int) -> list[Element]:
    """All d!·2^d elements, identity first.

    Args:
        ndim: Number of spatial axes, 1, 2 or 3.

    Returns:
        The 2, 8 or 48 elements.

    Raises:
        ValueError: If ndim is not 1, 2 or 3.

    Examples:
        >>> from fieldnet import symmetry
        >>> [len(symmetry.group_elements(d)) for d in (1, 2, 3)]
        [2, 8, 48]
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    return [Element(tuple(p), tuple(f))
            for p in itertools.permutations(range(ndim))
            for f in itertools.product((False, True), repeat=ndim)]


def inverse(g: Element) -> Element:
    """The element that undoes `g`: `apply(apply(x, g), inverse(g))` is x.

    Args:
        g: An element.

    Returns:
        Its inverse.

    Examples:
        >>> import numpy as np
        >>> from fieldnet import symmetry
        >>> x = np.arange(6.0).reshape(1, 2, 3, 1)
        >>> g = symmetry.group_elements(2)[5]
        >>> bool(np.array_equal(symmetry.apply(symmetry.apply(x, g), symmetry.inverse(g)), x))
        True
    """
    ndim = len(g.perm)
    perm = [0] * ndim
    flips = [False] * ndim
    for m, src in enumerate(g.perm):
        perm[src] = m
        flips[src] = g.flips[m]
    return Element(tuple(perm), tuple(flips))


def apply(x, g: Element, first_spatial_axis: int = 1):
    """Applies g to the spatial axes of x (numpy or jax array), which start at the given axis.

    Args:
        x: The array; its d spatial axes start at `first_spatial_axis`.
        g: A group element of d spatial axes.
        first_spatial_axis: 1 for channels-last batches (B, *spatial, C), the default; 0
            for kernels (*spatial, Cin, Cout).

    Returns:
        The transformed array, numpy or jax as x.
    """
    xp = _namespace(x)
    ndim = len(g.perm)
    lead = list(range(first_spatial_axis))
    spatial = [first_spatial_axis + p for p in g.perm]
    rest = list(range(first_spatial_axis + ndim, x.ndim))
    y = xp.transpose(x, lead + spatial + rest)
    flip_axes = tuple(first_spatial_axis + m for m, f in enumerate(g.flips) if f)
    return xp.flip(y, axis=flip_axes) if flip_axes else y


def apply_to_vector(v, g: Element, first_spatial_axis: int = 1):
    """Applies g to a vector field whose last axis holds its d Cartesian components: the
    field moves as a scalar field does and its components are permuted and reflected.

    Args:
        v: The vector field; its d spatial axes start at `first_spatial_axis`, and its last
            axis holds the d components.
        g: A group element of d spatial axes.
        first_spatial_axis: As in `apply`.

    Returns:
        The transformed vector field.

    Raises:
        ValueError: If the last axis does not hold d components.
    """
    ndim = len(g.perm)
    if v.shape[-1] != ndim:
        raise ValueError(f"a vector field in {ndim}D needs {ndim} components on the last axis, "
                         f"got shape {v.shape}")
    xp = _namespace(v)
    moved = apply(v, g, first_spatial_axis)
    comps = [moved[..., src] * (-1 if g.flips[m] else 1) for m, src in enumerate(g.perm)]
    return xp.stack(comps, axis=-1)


def _namespace(x):
    import numpy as np

    if isinstance(x, np.ndarray):
        return np
    import jax.numpy as jnp

    return jnp
