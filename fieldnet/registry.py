"""Named extension points: functions registered under a name that a config key selects.

    LOSSES = Registry("loss", "train.loss")

    @LOSSES.register("mse")
    def mse(model, batch): ...

    LOSSES.get("mse")       # an unknown name is a FieldnetError naming the config key
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fieldnet.errors import FieldnetError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Functions by name, for the config key `config_key` to choose from.

    Args:
        kind: What the functions are, for messages ("loss", "statistic").
        config_key: The config key that names one ("train.loss"), for messages.

    Examples:
        >>> from fieldnet.registry import Registry
        >>> SCALES = Registry("scale", "model.scale")
        >>> @SCALES.register("double")
        ... def double(x):
        ...     return 2 * x
        >>> SCALES.get("double")(21)
        42
        >>> SCALES.get("triple")
        Traceback (most recent call last):
        ...
        fieldnet.errors.FieldnetError: model.scale: 'triple' is not a registered scale; ...
    """

    def __init__(self, kind: str, config_key: str):
        self.kind, self.config_key = kind, config_key
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that registers a function under `name` (once).

        Args:
            name: The name a config gives to choose the function.

        Returns:
            The decorator; it returns the function unchanged.

        Raises:
            ValueError: (when decorating) If `name` is already registered.
        """

        def register(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._items[name] = fn
            return fn

        return register

    def get(self, name: str) -> F:
        """The function registered as `name`.

        Args:
            name: A registered name.

        Returns:
            The function.

        Raises:
            FieldnetError: If nothing is registered as `name`; the one-line message names
                the config key and lists the registered names.
        """
        if name not in self._items:
            raise FieldnetError(f"{self.config_key}: {name!r} is not a registered "
                                f"{self.kind}; choose from {sorted(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        """The registered names, in the order they were registered."""
        return list(self._items)

    def unregister(self, name: str) -> None:
        """Removes the function registered as `name` (tests that register their own).

        Args:
            name: A registered name; a KeyError if it is not.
        """
        del self._items[name]
