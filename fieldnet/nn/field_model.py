"""`FieldModel`: the interface of a model that maps a field to a field on the same grid.

It is what `fieldnet.receptive_field`, tiled inference, sampling and training read off a
model, conditioning included: nothing else is read off it.
It lives here, below `fieldnet.models` and `fieldnet.receptive`, so that both can name it;
use it as `fieldnet.models.FieldModel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the interface itself needs no JAX
    import jax


@runtime_checkable
class FieldModel(Protocol):
    """A model that maps a field on a grid to a field on the same grid.

    `UNet` is one; `ResNet` is not (it pools globally). A model of one's own becomes one by
    having these members; `isinstance(model, FieldModel)` checks that they are present.
    Tiled inference also needs it to be an `nnx.Module`, since it splits the model into
    graph and state to compile its forward pass once.
    """

    @property
    def ndim(self) -> int:
        """Number of spatial axes of the fields, 1, 2 or 3."""

    @property
    def in_channels(self) -> int:
        """Channels of the input field (the last axis of x)."""

    @property
    def out_channels(self) -> int:
        """Channels of the output field (the last axis of the output)."""

    @property
    def cond_dim(self) -> int:
        """Length of the conditioning vector it takes (standardized simulation parameters,
        and a flow run's time features); 0 for a model that takes none, which is then
        called without one."""

    @property
    def stride(self) -> int:
        """Total downsampling factor (1 for a model that does not downsample): spatial sizes
        must be multiples of it, and with periodic padding the model commutes with periodic
        translations by multiples of it. Tiles of tiled inference start on multiples of it."""

    @property
    def padding(self) -> str:
        """Boundary condition of its convolutions, `"periodic"` or `"zero"`; tiled
        inference is exact only for `"periodic"`."""

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """The span of input pixels, along any one spatial axis, that output pixels lo..hi see.

        May reach below 0 or past the size, where the padding wraps. `receptive_field`
        composes the halo from it.

        Args:
            lo: First output pixel.
            hi: Last output pixel (inclusive).

        Returns:
            (first, last) input pixel, inclusive.
        """

    def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        """Maps x of shape (batch, *spatial, in_channels), with cond of shape (batch,
        cond_dim) when `cond_dim > 0` (else None), to (batch, *spatial, out_channels)."""


def missing_members(model) -> list[str]:
    """The `FieldModel` members that `model` lacks; empty exactly when it is one.

    Args:
        model: Any object, typically a model instance.

    Returns:
        Names of the members it lacks (`__call__` included).
    """
    members = [name for name in vars(FieldModel) if not name.startswith("_")] + ["__call__"]
    return [name for name in members if not hasattr(model, name)]
