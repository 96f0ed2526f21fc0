"""The roofline of a measured computation: the accelerator's published peaks, and XLA's
count of the bytes and FLOPs of a compiled computation.

    peaks = roofline.device_peaks(jax.devices()[0].device_kind)   # fields None if unknown
    moved = roofline.cost_value(roofline.cost_of(compiled), "bytes accessed")
    roofline.fraction(moved / seconds, peaks.hbm_bytes_per_s)       # None if either is

"bytes accessed" is XLA's sum over the compiled program's kernels (fusions count their
operands and outputs once) of the bytes each reads and writes: the traffic to HBM if
nothing stayed in cache between kernels, so bytes / step time against the HBM bandwidth
is the fraction of the memory roofline the step reaches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Peaks:
    """Published peaks of one accelerator; None where not known.

    Attributes:
        hbm_tbps: HBM bandwidth [TB/s, 10^12 bytes per second].
        bf16_tflops: Dense (no sparsity) bfloat16 tensor-core peak [TFLOP/s].
        fp32_tflops: Float32 peak without tensor cores [TFLOP/s].
    """

    hbm_tbps: float | None = None
    bf16_tflops: float | None = None
    fp32_tflops: float | None = None

    @property
    def hbm_bytes_per_s(self) -> float | None:
        return None if self.hbm_tbps is None else self.hbm_tbps * 1e12

    @property
    def bf16_flop_per_s(self) -> float | None:
        return None if self.bf16_tflops is None else self.bf16_tflops * 1e12

    @property
    def fp32_flop_per_s(self) -> float | None:
        return None if self.fp32_tflops is None else self.fp32_tflops * 1e12


# By `jax.devices()[0].device_kind`, the CUDA device name, matched exactly: variants of one
# chip (H100 SXM, PCIe, NVL) differ in both peaks, so a name not listed gets no fractions.
PEAKS = {
    "NVIDIA H100 80GB HBM3": Peaks(3.35, 989.0, 67.0),  # H100 SXM
    "NVIDIA H100 PCIe": Peaks(2.0, 756.0, 51.0),
    "NVIDIA H200": Peaks(4.8, 989.0, 67.0),  # H200 SXM
    "NVIDIA A100-SXM4-80GB": Peaks(2.039, 312.0, 19.5),
    "NVIDIA A100-SXM4-40GB": Peaks(1.555, 312.0, 19.5),
}


def device_peaks(device_kind: str, hbm_tbps: float | None = None,
                 bf16_tflops: float | None = None) -> Peaks:
    """The table's peaks of `device_kind`, each replaced by its override where one is given
    (for a device the table lacks, or a clock that differs from the published one)."""
    known = PEAKS.get(device_kind, Peaks())
    return dataclasses.replace(
        known, hbm_tbps=known.hbm_tbps if hbm_tbps is None else hbm_tbps,
        bf16_tflops=known.bf16_tflops if bf16_tflops is None else bf16_tflops)


def cost_of(compiled) -> Mapping | list | None:
    """`compiled.cost_analysis()` (of a compiled or a lowered computation), or None where
    the backend does not provide one."""
    try:
        return compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning nothing
        return None


def cost_value(cost, key: str) -> float | None:
    """`key` ("bytes accessed", "flops") of a cost analysis, summed over its computations.

    `cost_analysis()` returns a dict, or (older JAX) a list of dicts, one per computation,
    or None. The result is None when no entry has the key, or when one gives a negative
    or non-finite value (XLA's mark for "not counted"): a partial sum would understate it.
    """
    if cost is None:
        return None
    entries = [cost] if isinstance(cost, Mapping) else list(cost)
    values = [entry[key] for entry in entries if isinstance(entry, Mapping) and key in entry]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    return sum(values)


def fraction(achieved: float | None, peak: float | None) -> float | None:
    """achieved / peak, or None if either is unknown."""
    if achieved is None or not peak:
        return None
    return achieved / peak
