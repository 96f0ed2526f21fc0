"""The local baseline: the best pixel-by-pixel mapping T(rho), fitted on the train split.

A CNN earns its keep only where it beats this. The baseline predicts, for every pixel,
the conditional mean E[log T | log rho] of the training data, which is the lowest-MSE
prediction any function of the local density alone can make (up to binning). Whatever the
network gains over it comes from the non-local environment (shocks, filaments, the
history a single density value cannot encode).

It works in whatever space it is fed: the evaluation driver feeds standardized log10
fields, so the baseline MSE is in the same normalized space as the model's.

Fitting streams: `partial_fit` accumulates counts and sums of x and y on a fine grid of
width `resolution` (sparse in x: the grid grows to cover whatever range the data span, so
no range has to be known in advance), and `finalize` merges the fine cells into `n_bins`
equal-count bins. Equal-count bins put resolution where the pixels are and keep the
statistical error of every bin mean alike; bins with fewer than `min_count` samples are
merged into a neighbour. Each bin is represented by its mean x and mean y, and `predict`
interpolates linearly between those points (constant beyond the outermost ones). Because
the point sits at the bin's mean x, data with a few discrete x values (one per bin) are
reproduced exactly: the prediction at each value is the mean of y there.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class LocalBaseline:
    """Conditional mean of y given x in equal-count bins of x, linearly interpolated.

    Args:
        n_bins: Equal-count bins of x that `finalize` makes (fewer where the data have
            fewer distinct cells).
        min_count: Fewest samples per bin; smaller bins are merged into a neighbour.
        resolution: Width of the fine grid of x the sums accumulate on, in x's units.

    Raises:
        ValueError: Unless `n_bins` ≥ 1, `min_count` ≥ 1 and `resolution` > 0.
    """

    def __init__(self, n_bins: int = 100, min_count: int = 100, resolution: float = 1e-3):
        if n_bins < 1 or min_count < 1 or not resolution > 0:
            raise ValueError(f"need n_bins >= 1, min_count >= 1, resolution > 0; got {n_bins}, "
                             f"{min_count}, {resolution}")
        self.n_bins, self.min_count, self.resolution = int(n_bins), int(min_count), resolution
        self._first_cell = 0                        # fine-grid index of the arrays' first cell
        self._count = np.zeros(0)
        self._sum_x = np.zeros(0)
        self._sum_y = np.zeros(0)
        self.centres: np.ndarray | None = None      # mean x of each bin
        self.means: np.ndarray | None = None        # mean y of each bin
        self.counts: np.ndarray | None = None       # samples in each bin

    @property
    def fitted(self) -> bool:
        """Whether the bins are made (`finalize`, `fit` or `from_json`), so `predict` works."""
        return self.means is not None

    def partial_fit(self, x, y) -> LocalBaseline:
        """Accumulates one chunk of paired values (arrays of the same, any, shape).

        Args:
            x: Values of the predictor (e.g. standardized log10 rho).
            y: Values of the predicted quantity at the same pixels.

        Returns:
            The baseline itself.

        Raises:
            ValueError: If x and y differ in size or hold non-finite values.
        """
        x = np.asarray(x, np.float64).ravel()
        y = np.asarray(y, np.float64).ravel()
        if np.shape(x) != np.shape(y):
            raise ValueError(f"x and y must have the same number of values, got {x.size} "
                             f"and {y.size}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("LocalBaseline.partial_fit: non-finite values in the input")
        if x.size == 0:
            return self
        cells = np.floor(x / self.resolution).astype(np.int64)
        self._grow(int(cells.min()), int(cells.max()))
        index = cells - self._first_cell
        size = len(self._count)
        self._count += np.bincount(index, minlength=size)
        self._sum_x += np.bincount(index, weights=x, minlength=size)
        self._sum_y += np.bincount(index, weights=y, minlength=size)
        return self

    def _grow(self, lo: int, hi: int) -> None:
        """Extends the fine-grid arrays so that cells lo..hi exist."""
        if len(self._count) == 0:
            self._first_cell = lo
        before = max(0, self._first_cell - lo)
        after = max(0, hi - (self._first_cell + len(self._count) - 1))
        if before or after:
            self._count, self._sum_x, self._sum_y = (np.pad(a, (before, after)) for a in
                                                     (self._count, self._sum_x, self._sum_y))
            self._first_cell -= before

    def finalize(self) -> LocalBaseline:
        """Merges the fine cells into equal-count bins; `predict` works after this."""
        occupied = np.flatnonzero(self._count)
        if len(occupied) == 0:
            raise ValueError("LocalBaseline.finalize: no data were fitted")
        count, sum_x, sum_y = (a[occupied] for a in (self._count, self._sum_x, self._sum_y))
        cumulative = np.cumsum(count)
        # Each bin ends at the first fine cell where the cumulative count reaches a quantile.
        targets = cumulative[-1] * np.arange(1, self.n_bins + 1) / self.n_bins
        ends = np.unique(np.searchsorted(cumulative, targets - 0.5))
        ends = _merge_small_bins(ends, cumulative, self.min_count)
        starts = np.concatenate([[0], ends[:-1] + 1])
        self.counts = np.add.reduceat(count, starts)
        self.centres = np.add.reduceat(sum_x, starts) / self.counts
        self.means = np.add.reduceat(sum_y, starts) / self.counts
        return self

    def fit(self, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> LocalBaseline:
        """Streams (x, y) chunks (e.g. one training sample at a time), then finalizes.

        Args:
            pairs: (x, y) chunks, as `partial_fit` takes them.

        Returns:
            The baseline itself, finalized.

        Raises:
            ValueError: On a chunk `partial_fit` refuses, or no data at all.
        """
        for x, y in pairs:
            self.partial_fit(x, y)
        return self.finalize()

    def predict(self, x) -> np.ndarray:
        """The baseline at every value of `x` (float64, same shape as `x`).

        Args:
            x: Values of the predictor, any shape.

        Returns:
            float64 array of the shape of `x`.

        Raises:
            ValueError: If the baseline is not finalized.
        """
        if not self.fitted:
            raise ValueError("LocalBaseline.predict: call finalize() or fit() first")
        x = np.asarray(x, np.float64)
        return np.interp(x, self.centres, self.means)

    def to_json(self) -> dict:
        """The fitted curve (not the fine accumulators): enough to predict again.

        Returns:
            {"n_bins", "min_count", "resolution", "centres", "means", "counts"} as JSON
            values; `from_json` reads it back.

        Raises:
            ValueError: If nothing is fitted yet.
        """
        if not self.fitted:
            raise ValueError("LocalBaseline.to_json: nothing fitted yet")
        return {"n_bins": self.n_bins, "min_count": self.min_count,
                "resolution": self.resolution, "centres": self.centres.tolist(),
                "means": self.means.tolist(), "counts": self.counts.astype(int).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> LocalBaseline:
        """The baseline of a `to_json` dict.

        Args:
            data: The dict (`n_bins`, `min_count`, `resolution`, `centres`, `means`,
                `counts`).

        Returns:
            The finalized baseline.

        Raises:
            ValueError: If it is not a baseline description, or its arrays differ in length or
                are empty.
        """
        try:
            baseline = cls(data["n_bins"], data["min_count"], data["resolution"])
            baseline.centres = np.asarray(data["centres"], np.float64)
            baseline.means = np.asarray(data["means"], np.float64)
            baseline.counts = np.asarray(data["counts"], np.int64)
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a LocalBaseline description: {err}") from None
        if not (len(baseline.centres) == len(baseline.means) == len(baseline.counts) > 0):
            raise ValueError("LocalBaseline description: centres, means and counts differ "
                             "in length or are empty")
        return baseline


def _merge_small_bins(ends: np.ndarray, cumulative: np.ndarray, min_count: int) -> np.ndarray:
    """Drops bin boundaries until every bin holds >= min_count samples (or only one is left).

    A bin that is too small is joined to the following bin; the last one, to the previous.
    """
    kept: list[int] = []
    start_total = 0
    for end in ends:
        if cumulative[end] - start_total >= min_count:
            kept.append(int(end))
            start_total = cumulative[end]
    if not kept:
        return ends[-1:]
    kept[-1] = int(ends[-1])        # a short tail joins the last full bin
    return np.asarray(kept)
