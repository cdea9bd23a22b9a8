"""Pure waste scoring: per GPU (or MIG slice) a pod holds, window averages in -> a 0..100 score + reasons.

Formula (docs/operations.md), with c = mean compute use (DCGM_FI_PROF_GR_ENGINE_ACTIVE, else
DCGM_FI_DEV_GPU_UTIL / 100) and m = mean memory use (FB_USED / (FB_USED + FB_FREE)) over the window, both
clamped to 0..1:

    compute_waste = 1 - min(1, c / COMPUTE_TARGET)
    memory_waste  = 1 - min(1, m / MEMORY_TARGET)
    score         = 100 * (COMPUTE_WEIGHT * compute_waste + MEMORY_WEIGHT * memory_waste)
    score         = 100 when c < IDLE and m < IDLE ("idle GPU held")

A missing measure drops out and the other one carries the whole weight; with neither there is no score.
Compute weighs more than memory because a vLLM replica pre-allocates ~90 % of memory whatever its load.
The score never rises when either use rises (tested with hypothesis).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

IDLE = 0.05
COMPUTE_TARGET = 0.5
MEMORY_TARGET = 0.5
COMPUTE_WEIGHT = 0.7
MEMORY_WEIGHT = 0.3
LOW_COMPUTE = 0.2
LOW_MEMORY = 0.25


@dataclass(frozen=True, slots=True)
class GpuUse:
    """Window averages for one GPU (or MIG slice, gpu = '<index>/<GPU_I_ID>') a pod holds. None = unknown."""

    namespace: str
    pod: str
    node: str
    gpu: str
    compute: float | None = None
    memory: float | None = None
    #: highest compute use over the flag range (`waste_flag_for`, shorter than the window); None = unknown
    peak: float | None = None


@dataclass(frozen=True, slots=True)
class WasteScore:
    """The score of one held GPU with the inputs and reasons that explain it."""

    namespace: str
    pod: str
    node: str
    gpu: str
    score: float
    compute: float | None
    memory: float | None
    reasons: tuple[str, ...]

    @property
    def idle(self) -> bool:
        return "idle GPU held" in self.reasons


def _clamp(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return min(1.0, max(0.0, float(x)))


def score_one(compute: float | None, memory: float | None) -> tuple[float, tuple[str, ...]] | None:
    """(score, reasons) for one GPU; None when neither measure is known."""
    c, m = _clamp(compute), _clamp(memory)
    if c is None and m is None:
        return None
    known = [v for v in (c, m) if v is not None]
    if all(v < IDLE for v in known):
        use = ", ".join(f"{name} {v:.0%}" for name, v in (("compute", c), ("memory", m)) if v is not None)
        return 100.0, ("idle GPU held", use)
    parts: list[tuple[float, float]] = []
    reasons: list[str] = []
    if c is not None:
        parts.append((COMPUTE_WEIGHT, 1.0 - min(1.0, c / COMPUTE_TARGET)))
        if c < LOW_COMPUTE:
            reasons.append(f"low compute: {c:.0%} < {LOW_COMPUTE:.0%}")
    if m is not None:
        parts.append((MEMORY_WEIGHT, 1.0 - min(1.0, m / MEMORY_TARGET)))
        if m < LOW_MEMORY:
            reasons.append(f"low memory: {m:.0%} < {LOW_MEMORY:.0%}")
    total_weight = sum(w for w, _ in parts)
    score = 100.0 * sum(w * v for w, v in parts) / total_weight
    return round(min(100.0, max(0.0, score)), 2), tuple(reasons)


def waste_scores(uses: Iterable[GpuUse]) -> list[WasteScore]:
    """A score per held GPU with data, most wasteful first (ties by namespace, pod, gpu)."""
    out: list[WasteScore] = []
    for u in uses:
        scored = score_one(u.compute, u.memory)
        if scored is None:
            continue
        out.append(
            WasteScore(
                u.namespace, u.pod, u.node, u.gpu, scored[0], _clamp(u.compute), _clamp(u.memory), scored[1]
            )
        )
    out.sort(key=lambda w: (-w.score, w.namespace, w.pod, w.gpu))
    return out
