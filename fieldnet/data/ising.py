"""Reader of the Ising phase study's HDF5 files (written by `python -m data_tools.ising`).

The file holds one group per lattice size, each laid out like a fieldnet file, so it has
a format name of its own:

    /          attrs: format="fieldnet-ising", version=1, ndim=2, box_size (= the first L,
               in lattice spacings), source, created_by, lattice_sizes, seed,
               critical_temperature
    /L{L}      attrs: ndim=2, box_size=L, and per temperature: temperatures, algorithm,
               tau_abs_m, tau_energy, tau_units, burn_in, updates_between
    /L{L}/fields/spins   float32 (N, L, L), values ±1
    /L{L}/params         float32 (N, 2), names ["T", "L"]
    /L{L}/sim_index      int64 (N,), the chain (unique in the file); one chain's samples
                         are correlated, so split train/test by chain
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fieldnet.data.h5format import open_file
from fieldnet.errors import data_error

FORMAT = "fieldnet-ising"
VERSION = 1


def is_ising(f: h5py.File) -> bool:
    """Whether an open file is in the Ising layout above.

    Args:
        f: The open HDF5 file.

    Returns:
        True for an Ising file (its `format` attribute).
    """
    return f.attrs.get("format") == FORMAT


def lattice_sizes(f: h5py.File) -> list[int]:
    """The lattice sizes L that an open Ising file holds.

    Args:
        f: The open HDF5 file.

    Returns:
        The sizes L of its `L<size>` groups, ascending.
    """
    return sorted(int(name[1:]) for name in f if name.startswith("L") and name[1:].isdigit())


def read_ising(path, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The configurations of lattice size L of an Ising file.

    Args:
        path: The Ising HDF5 file.
        L: Lattice size, spins per side.

    Returns:
        (spins, T, chain): spins `(N, L, L)` float32 ±1, temperatures `(N,)` float32 in
        J/k_B, and the Markov chain of each configuration `(N,)` int64.

    Raises:
        FieldnetError: On a missing file, lattice size, spins, temperatures or chain
            indices, configurations of another shape or with values other than ±1, or
            lengths that disagree.
    """
    if not Path(path).exists():
        raise data_error(path, reason="no such file")
    with open_file(path) as f:
        group_name = f"L{int(L)}"
        if group_name not in f:
            available = [str(s) for s in f.attrs.get("lattice_sizes", [])]
            raise data_error(path, group_name, reason=f"no lattice size {L} in this file "
                             f"(has: {', '.join(available) or 'none'})")
        group = f[group_name]
        where = f"{group_name}/fields/spins"
        if "fields" not in group or "spins" not in group["fields"]:
            raise data_error(path, where, reason="missing")
        spins = group["fields/spins"][...].astype(np.float32)
        if spins.ndim != 3 or spins.shape[1:] != (L, L):
            raise data_error(path, where, reason=f"expected square configurations (N, {L}, "
                             f"{L}), got shape {spins.shape}")
        bad = np.flatnonzero(np.any(np.abs(spins) != 1, axis=(1, 2)))
        if bad.size:
            raise data_error(path, where, index=int(bad[0]), reason=f"values other than ±1 "
                             f"in {bad.size} configuration(s)")
        names = [str(n) for n in group["params"].attrs.get("names", [])] if "params" in group \
            else []
        if "T" not in names:
            raise data_error(path, f"{group_name}/params", reason="temperatures missing (no "
                             "'T' column)")
        temperature = group["params"][:, names.index("T")].astype(np.float32)
        if "sim_index" not in group:
            raise data_error(path, f"{group_name}/sim_index", reason="missing")
        chain = group["sim_index"][...].astype(np.int64)
    if not len(spins) == len(temperature) == len(chain):
        raise data_error(path, group_name, reason=f"{len(spins)} configurations, "
                         f"{len(temperature)} temperatures, {len(chain)} chain indices")
    return spins, temperature, chain
