"""Isotropic power spectra of periodic fields in 1, 2 or 3 dimensions.

This is the one power-spectrum implementation of fieldnet: metrics, tests, data tools
and notebooks import it.

Convention (for a field `f` on a periodic grid of `N_cells` cells and volume `V`, with
lengths in Mpc/h):

    f_k  = FFT(f) / N_cells                      (dimensionless Fourier amplitude)
    P(k) = V < |f_k|^2 >                          [(Mpc/h)^d]
    P_ab(k) = V < Re(a_k conj(b_k)) >
    r(k) = P_ab / sqrt(P_aa P_bb)

where < > averages over the Fourier modes whose |k| (in h/Mpc) falls in a bin. With
this normalization white noise of per-cell variance s^2 has P = s^2 V / N_cells, and a
field with variance sum_k |f_k|^2 has P independent of resolution, as in the continuum
definition < f_k f_k'* > = (2 pi)^d delta_D(k - k') P(k).

The k = 0 mode is excluded, so the mean of the field never matters; pass a density
contrast (`overdensity`) when you want the usual matter power spectrum of rho.

Modes are counted as in the full complex FFT (k and -k both count), so the cosmic
variance of a bin of a Gaussian field is sigma_P / P = sqrt(2 / n_modes) (each
independent complex mode appears twice). Bins run linearly from the fundamental
k_f = 2 pi / L to the Nyquist frequency k_N = pi N / L by default, one bin per k_f;
the reported k of a bin is the mean |k| of its modes (NaN P for empty bins of explicit
edges). Modes with |k| beyond the last edge (the corners of the cube) are dropped.

Every function takes the fields' `fieldnet.grid.Grid` (cells and box lengths per axis, so
a rectangular box keeps its own k spacing along each axis); make one from a box size with
`Grid.box(shape, box_size)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from fieldnet.grid import Grid, require_grid


class PowerSpectrum(NamedTuple):
    """Binned spectrum: bin centres k [h/Mpc], power [(Mpc/h)^d], modes per bin."""

    k: np.ndarray
    power: np.ndarray
    n_modes: np.ndarray


class CrossCorrelation(NamedTuple):
    """Binned cross-correlation coefficient r(k) = P_ab / sqrt(P_aa P_bb)."""

    k: np.ndarray
    r: np.ndarray
    n_modes: np.ndarray


def wavevectors(grid: Grid, zero_nyquist: bool = False) -> list[np.ndarray]:
    """Wave-vector components [h/Mpc] on the `rfftn` grid, each broadcastable to it.

    The last axis holds the non-negative half (as `numpy.fft.rfftn` returns it); the
    other axes hold the full `fftfreq` range.

    Args:
        grid: The field's grid.
        zero_nyquist: Set the Nyquist entries to 0, as odd derivatives (ik) need: their
            sign is ambiguous, and without a partner mode they would put a spurious
            grid-scale oscillation into the real-space result.

    Returns:
        One array per axis of the grid, shaped to broadcast against the rfftn grid.
    """
    grid = require_grid(grid)
    d = grid.ndim
    ks = []
    for axis, (n, length) in enumerate(zip(grid.shape, grid.lengths, strict=True)):
        freq = np.fft.rfftfreq(n) if axis == d - 1 else np.fft.fftfreq(n)
        if zero_nyquist and n % 2 == 0:
            freq = np.where(np.abs(freq) == 0.5, 0.0, freq)
        view = [1] * d
        view[axis] = -1
        ks.append((2 * np.pi * n / length * freq).reshape(view))
    return ks


def wavenumber(grid: Grid) -> np.ndarray:
    """|k| [h/Mpc] on the `rfftn` grid of a field on `grid`.

    Args:
        grid: The field's grid.

    Returns:
        The wavenumber of every rfftn entry, the shape `numpy.fft.rfftn` returns.
    """
    ks = wavevectors(grid)
    return np.sqrt(sum(k**2 for k in ks))


def _rfft_mode_weights(shape: Sequence[int]) -> np.ndarray:
    """How many full-FFT modes each `rfftn` entry stands for (1 or 2), on the last axis."""
    n = shape[-1]
    weights = np.full(n // 2 + 1, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    return weights


def default_edges(grid: Grid, n_bins: int | None = None) -> np.ndarray:
    """Linear bin edges [h/Mpc] from the fundamental to the Nyquist frequency.

    For unequal sides k_f is that of the longest side and k_N the smallest over axes
    (`Grid.k_fundamental`, `Grid.k_nyquist`).

    Args:
        grid: The fields' grid.
        n_bins: Number of bins; None gives one bin per fundamental k_f, centred on k_f,
            2 k_f, ..., k_N: edges at (i + 1/2) k_f.

    Returns:
        The `n_bins + 1` increasing edges.
    """
    k_fund, k_nyq = grid.k_fundamental, grid.k_nyquist
    if n_bins is None:
        n_bins = max(1, int(round(k_nyq / k_fund)))
    return np.linspace(0.5 * k_fund, k_nyq + 0.5 * k_fund, n_bins + 1)


class _Binning:
    """Which bin every rfftn mode falls in, and its multiplicity; reused across fields."""

    def __init__(self, shape: tuple[int, ...], grid: Grid, edges: np.ndarray | None,
                 n_bins: int | None, what: str = "field"):
        grid = require_grid(grid, shape, what)
        self.shape = grid.shape
        self.volume = grid.volume
        self.edges = (default_edges(grid, n_bins) if edges is None
                      else np.asarray(edges, np.float64))
        if self.edges.ndim != 1 or len(self.edges) < 2 or np.any(np.diff(self.edges) <= 0):
            raise ValueError(f"bin edges must be an increasing 1D array, got {edges}")
        kmag = wavenumber(grid)
        weights = np.broadcast_to(_rfft_mode_weights(self.shape), kmag.shape)
        index = np.digitize(kmag, self.edges) - 1
        keep = (index >= 0) & (index < len(self.edges) - 1) & (kmag > 0)
        self.index = np.where(keep, index, len(self.edges) - 1).ravel()
        self.weights = np.where(keep, weights, 0.0).ravel()
        self.n_modes = self._sum(np.ones(kmag.shape))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_k = self._sum(kmag) / self.n_modes
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.k = np.where(self.n_modes > 0, mean_k, centres)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(self.index, weights=self.weights * np.ravel(values),
                           minlength=len(self.edges))
        return sums[:-1]

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mode-weighted mean of `values` (on the rfftn grid) in each bin; NaN if empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_modes > 0, self._sum(values) / self.n_modes, np.nan)

    def fourier(self, field) -> np.ndarray:
        field = np.asarray(field, np.float64)
        if field.shape != self.shape:
            raise ValueError(f"expected a field of shape {self.shape}, got {field.shape}")
        return np.fft.rfftn(field) / field.size

    def cross(self, a_k: np.ndarray, b_k: np.ndarray) -> np.ndarray:
        return self.volume * self.mean((a_k * np.conj(b_k)).real)


def _spatial_shape(field, what: str = "field") -> tuple[int, ...]:
    shape = np.shape(field)
    if len(shape) not in (1, 2, 3):
        raise ValueError(f"{what} must be 1D, 2D or 3D (*spatial), got shape {shape}")
    return tuple(shape)


def power_spectrum(field, grid: Grid, *, edges=None,
                   n_bins: int | None = None) -> PowerSpectrum:
    """Auto power spectrum P(k) [(Mpc/h)^d] of a periodic field (numpy or jax array).

    Args:
        field: One field, shape `(*spatial)` with 1 to 3 axes (no channel axis).
        grid: The fields' `Grid` (shape and box lengths in Mpc/h).
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        `PowerSpectrum(k, power, n_modes)`: the mean |k| of each bin's modes, P(k), and the
        number of modes per bin (NaN power for empty bins of explicit edges).

    Raises:
        ValueError: If the field is not 1D to 3D, the box is not positive or the edges do
            not increase.

    Examples:
        A cosine of two periods across a 25 Mpc/h line puts all its power in the bin of
        k = 2 k_f:

        >>> import numpy as np
        >>> from fieldnet.eval.spectra import power_spectrum
        >>> from fieldnet.grid import Grid
        >>> field = np.cos(2 * np.pi * 2 * np.arange(32) / 32)
        >>> ps = power_spectrum(field, Grid.box((32,), 25.0))
        >>> int(np.argmax(ps.power)), round(float(ps.k[1] / (2 * np.pi / 25.0)), 6)
        (1, 2.0)
    """
    binning = _Binning(_spatial_shape(field), grid, edges, n_bins)
    f_k = binning.fourier(field)
    return PowerSpectrum(binning.k, binning.cross(f_k, f_k), binning.n_modes)


def cross_power_spectrum(field_a, field_b, grid: Grid, *, edges=None,
                         n_bins: int | None = None) -> PowerSpectrum:
    """Cross power spectrum P_ab(k) = V <Re(a_k b_k*)> of two fields of the same shape.

    Args:
        field_a: The first field, shape `(*spatial)`.
        field_b: The second field, the same shape.
        grid: The fields' `Grid` (shape and box lengths in Mpc/h).
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        `PowerSpectrum(k, power, n_modes)` with the cross power in `power`.
    """
    binning = _Binning(_spatial_shape(field_a), grid, edges, n_bins)
    a_k, b_k = binning.fourier(field_a), binning.fourier(field_b)
    return PowerSpectrum(binning.k, binning.cross(a_k, b_k), binning.n_modes)


def cross_correlation(field_a, field_b, grid: Grid, *, edges=None,
                      n_bins: int | None = None) -> CrossCorrelation:
    """r(k) = P_ab / sqrt(P_aa P_bb): 1 for identical fields, 0 for independent ones.

    Args:
        field_a: The first field, shape `(*spatial)`.
        field_b: The second field, the same shape.
        grid: The fields' `Grid` (shape and box lengths in Mpc/h).
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        `CrossCorrelation(k, r, n_modes)`.

    Examples:
        >>> import numpy as np
        >>> from fieldnet.eval.spectra import cross_correlation
        >>> from fieldnet.grid import Grid
        >>> field = np.random.default_rng(0).normal(size=(16, 16))
        >>> grid = Grid.box(field.shape, 25.0)
        >>> bool(np.allclose(cross_correlation(field, field, grid).r, 1.0))
        True
        >>> bool(np.allclose(cross_correlation(field, -field, grid).r, -1.0))
        True
    """
    return average_cross_correlation(np.asarray(field_a)[None], np.asarray(field_b)[None],
                                     grid, edges=edges, n_bins=n_bins)


def _stack_sums(fields_a, fields_b, grid, edges, n_bins):
    """Sums over a stack of P_aa, P_bb, P_ab (the loop keeps one FFT in memory at a time)."""
    if np.shape(fields_a) != np.shape(fields_b):
        raise ValueError(f"the two stacks must have the same shape, got {np.shape(fields_a)} "
                         f"and {np.shape(fields_b)}")
    if np.ndim(fields_a) < 2 or len(fields_a) == 0:
        raise ValueError(f"expected a non-empty stack (N, *spatial), got {np.shape(fields_a)}")
    binning = _Binning(_spatial_shape(fields_a[0], "each field"), grid, edges, n_bins,
                       "each field")
    p_aa = p_bb = p_ab = 0.0
    for a, b in zip(fields_a, fields_b, strict=True):
        a_k, b_k = binning.fourier(a), binning.fourier(b)
        p_aa = p_aa + binning.cross(a_k, a_k)
        p_bb = p_bb + binning.cross(b_k, b_k)
        p_ab = p_ab + binning.cross(a_k, b_k)
    return binning, p_aa, p_bb, p_ab


def average_power_spectrum(fields, grid: Grid, *, fields_b=None,
                           edges=None, n_bins: int | None = None) -> PowerSpectrum:
    """Mean P(k) over a stack `(N, *spatial)` of fields; the cross spectrum with `fields_b`.

    Args:
        fields: A stack `(N, *spatial)`, N ≥ 1.
        grid: The fields' `Grid` (shape and box lengths in Mpc/h).
        fields_b: A second stack of the same shape for the mean cross spectrum; None for
            the auto spectrum.
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        `PowerSpectrum(k, power, n_modes)`; `n_modes` is the total over the stack, so
        sqrt(2 / n_modes) is the cosmic variance of the mean when the fields are
        independent.
    """
    fields_b = fields if fields_b is None else fields_b
    binning, _, _, p_ab = _stack_sums(fields, fields_b, grid, edges, n_bins)
    n = len(fields)
    return PowerSpectrum(binning.k, p_ab / n, binning.n_modes * n)


def average_cross_correlation(fields_a, fields_b, grid: Grid, *,
                              edges=None, n_bins: int | None = None) -> CrossCorrelation:
    """r(k) of two stacks `(N, *spatial)`: sum P_ab / sqrt(sum P_aa * sum P_bb).

    Args:
        fields_a: A stack `(N, *spatial)`, N ≥ 1.
        fields_b: A stack of the same shape.
        grid: The fields' `Grid` (shape and box lengths in Mpc/h).
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        `CrossCorrelation(k, r, n_modes)`, `n_modes` totalled over the stack.
    """
    binning, p_aa, p_bb, p_ab = _stack_sums(fields_a, fields_b, grid, edges, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = p_ab / np.sqrt(p_aa * p_bb)
    return CrossCorrelation(binning.k, r, binning.n_modes * len(fields_a))


def mode_average(function: Callable[[np.ndarray], np.ndarray], grid: Grid, *, edges=None,
                 n_bins: int | None = None) -> np.ndarray:
    """Average of `function(|k|)` over the modes of each bin: the theory curve to compare a
    measured spectrum with (better than evaluating at the bin centre where P curves).

    Args:
        function: Maps an array of |k| [h/Mpc] to values (e.g. a linear P(k)).
        grid: The measured fields' `Grid` (shape and box lengths in Mpc/h).
        edges: Bin edges in h/Mpc; None gives `default_edges`.
        n_bins: Number of default bins when `edges` is None.

    Returns:
        The mode-weighted mean of `function` in each bin (NaN for empty bins).
    """
    grid = require_grid(grid)
    binning = _Binning(grid.shape, grid, edges, n_bins)
    kmag = wavenumber(grid)
    values = np.zeros(kmag.shape)
    positive = kmag > 0
    values[positive] = function(kmag[positive])
    return binning.mean(values)


def overdensity(field) -> np.ndarray:
    """delta = rho / mean(rho) - 1 (float64), the field whose spectrum is the matter P(k).

    Args:
        field: A density field with a non-zero mean.

    Returns:
        The density contrast, float64, the shape of `field`.
    """
    field = np.asarray(field, np.float64)
    return field / field.mean() - 1.0
