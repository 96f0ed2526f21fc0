"""fieldnet: symmetry-aware CNNs in JAX/Flax for physics field-to-field translation."""

__version__ = "0.1.0"
