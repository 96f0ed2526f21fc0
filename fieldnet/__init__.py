"""fieldnet: symmetry-aware CNNs in JAX/Flax for physics field-to-field translation."""

__version__ = "0.1.0"

from fieldnet import models, nn, symmetry  # noqa: E402
from fieldnet.receptive import receptive_field  # noqa: E402

__all__ = ["models", "nn", "receptive_field", "symmetry", "__version__"]
