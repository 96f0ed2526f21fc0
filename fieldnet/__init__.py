"""fieldnet: symmetry-aware CNNs in JAX/Flax for physics field-to-field translation.

The package face imports lazily, so `import fieldnet` (and the data tools that need only
`fieldnet.data`) does not pay for JAX:

    from fieldnet import models, receptive_field   # imports JAX and Flax here

Layers, from the bottom: `errors`, `records`, `registry`, `files`, `grid`, `symmetry`,
`rundir`, `cli`; `nn`; `models`, `receptive`; `data`; `train`; `eval`; `figures`,
`objectives` (each objective's loss, prediction and evaluation); `inference` (a trained
run's).
"""

import importlib

from fieldnet.version import __version__

_SUBPACKAGES = ("cli", "data", "errors", "eval", "figures", "files", "grid", "inference",
                "models", "nn", "objectives", "receptive", "records", "registry", "rundir",
                "symmetry", "train", "version")


def __getattr__(name: str):
    if name == "receptive_field":
        from fieldnet.receptive import receptive_field

        return receptive_field
    if name in _SUBPACKAGES:
        return importlib.import_module(f"fieldnet.{name}")
    raise AttributeError(f"module 'fieldnet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "receptive_field", *_SUBPACKAGES])


__all__ = ["models", "nn", "receptive_field", "symmetry", "__version__"]
