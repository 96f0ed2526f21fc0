"""Data: the HDF5 format, sources, the training dataset, transforms and the batch loaders.

- `h5format`: the fieldnet HDF5 file format (version 1): writing and reading its layout.
- `source`: `FieldSource`, fields of a fieldnet file or of any HDF5 file, read by sample,
  slab or periodic crop.
- `dataset`: `FieldDataset`, splits by simulation, random periodic crops, augmentation and
  batches that are a pure function of (seed, split, step, process).
- `transforms`: the per-field transforms (log10 with its floor, none, asinh) and the
  train-split `Normalizer`.
- `loader`: the training batch stream, from grain (in this process or in worker
  processes) or from `prefetch`, batches computed ahead in a background thread.
- `ising`: the reader of the Ising study's files (format "fieldnet-ising").
"""

from fieldnet.data.dataset import (
    SPLITS,
    FieldDataset,
    Region,
    check_config,
    default_config,
    split_box,
    split_simulations,
)
from fieldnet.data.source import Field, FieldSource, parse_names

__all__ = ["SPLITS", "Field", "FieldDataset", "FieldSource", "Region", "check_config",
           "default_config", "parse_names", "split_box", "split_simulations"]
