"""How far two float32 computations of the same numbers may differ, derived from the
computation rather than measured on one machine.

XLA picks the order of a sum by the shapes, the batch and the CPU (its vector width, its
blocking), so a tiled, rolled, rotated or re-batched evaluation of a network sums each
output in another order than the reference does. Each rounding of a float32 sum is within
half a unit in the last place (EPS / 2 relative to the running magnitude); n of them
add up like a random walk, to about sqrt(n) * EPS / 2 of the magnitude summed, with a
worst case of n * EPS / 2. The bounds here allow `ULPS` such standard deviations (so they
hold on any CPU, while a wrong result, off by a tile's seam or a misplaced pixel, is off by
orders of magnitude more), and add up what each layer and each evaluation contributes.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

EPS = float(np.finfo(np.float32).eps)  # 2**-23, the spacing of float32 numbers at 1
ULPS = 4.0  # standard deviations of the random walk of roundings allowed


def sum_tolerance(n_terms: int, magnitude: float = 1.0) -> float:
    """Absolute bound on the difference of two orders of a float32 sum of `n_terms` terms
    of about `magnitude` each (the random walk of roundings, `ULPS` deviations)."""
    return ULPS * EPS * math.sqrt(n_terms) * magnitude


def network_tolerance(model: nnx.Module, evaluations: int = 1) -> float:
    """Bound on the difference of two evaluations of `model` in different summation orders,
    relative to the largest output magnitude: every layer with a weight (a kernel of shape
    (*window, in, out) sums prod(window) * in products per output) adds its
    `sum_tolerance`, relative to the activations that normalisation keeps of order one;
    `evaluations` of the model in sequence (an ODE's steps) add theirs."""
    weights = [p for p in jax.tree.leaves(nnx.state(model, nnx.Param)) if np.ndim(p) >= 2]
    per_evaluation = sum(sum_tolerance(math.prod(np.shape(w)[:-1])) for w in weights)
    return evaluations * per_evaluation


def heun_evaluations(steps: int) -> int:
    """Evaluations of the velocity network in `steps` Heun steps (two per step)."""
    return 2 * steps
