"""Plain JSON records: numpy values made JSON-safe, and nested dicts made flat.

    to_json_value({"r": np.array([0.5, np.nan])})   # {"r": [0.5, None]}
    flatten({"train": {"num_steps": 10}})            # {"train.num_steps": 10}
"""

from __future__ import annotations

import math

import numpy as np


def to_json_value(value):
    """numpy scalars and arrays -> Python floats, ints and lists, NaN and inf -> None.

    Strings and None pass through; dict keys become strings; tuples become lists.

    Args:
        value: Any nesting of dicts, lists, tuples, numpy arrays and scalars.

    Returns:
        The same structure in plain JSON values.

    Examples:
        >>> import numpy as np
        >>> from fieldnet.records import to_json_value
        >>> to_json_value({"r": np.array([0.5, np.nan]), 1: np.int64(3)})
        {'r': [0.5, None], '1': 3}
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested dict as one level of dotted keys ("a.b.c"); lists become tuples, so that
    values compare and hash as they do in a config.

    Args:
        tree: A nested dict.
        prefix: Prepended to every key.

    Returns:
        The flat dict.

    Examples:
        >>> from fieldnet.records import flatten
        >>> flatten({"train": {"num_steps": 10, "mult": [1, 2]}})
        {'train.num_steps': 10, 'train.mult': (1, 2)}
    """
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out
