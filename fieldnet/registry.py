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
    """Functions by name, for the config key `config_key` to choose from."""

    def __init__(self, kind: str, config_key: str):
        self.kind, self.config_key = kind, config_key
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that registers a function under `name` (once)."""

        def register(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._items[name] = fn
            return fn

        return register

    def get(self, name: str) -> F:
        """The function registered as `name`; otherwise a one-line `FieldnetError`."""
        if name not in self._items:
            raise FieldnetError(f"{self.config_key}: {name!r} is not a registered "
                                f"{self.kind}; choose from {sorted(self._items)}")
        return self._items[name]

    def unregister(self, name: str) -> None:
        del self._items[name]
