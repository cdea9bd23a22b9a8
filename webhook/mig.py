"""The webhook's MIG choice, pure: a workload's usage history -> the smallest offered profile that fits.

MIG geometry (profiles, placements, compute shares, resource names) lives in `app/gpu/mig.py`; this module
only decides. Nothing here does I/O or knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.gpu.mig import geometry_for


@dataclass(frozen=True)
class Usage:
    """What the history says one container used (per GPU), over the history window."""

    peak_memory_mib: float
    p95_compute: float | None  # 0..1 of the whole GPU it ran on
    gpu_memory_mib: float | None = None  # total framebuffer of the GPU it ran on (FB_USED + FB_FREE)
    gpu_model: str | None = None  # DCGM `modelName`, e.g. "NVIDIA A100-SXM4-80GB"
    samples: int = 0


@dataclass(frozen=True)
class Decision:
    """The outcome of the choice for one container: a profile, or None with the reason why not."""

    profile: str | None
    reason: str
    outcome: str  # mutated | kept | no_fit | unknown_gpu | no_history
    gpu: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def usage_fraction(usage: Usage) -> tuple[float | None, float | None]:
    """(peak memory fraction, p95 compute fraction) of the GPU the history ran on; None when unknown."""
    total = usage.gpu_memory_mib
    if not total and usage.gpu_model:
        geo = geometry_for(usage.gpu_model)
        total = geo.memory_mib if geo else None
    mem = usage.peak_memory_mib / total if total else None
    return mem, usage.p95_compute


def choose_profile(
    usage: Usage,
    gpu_product: str,
    offered: Iterable[str],
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> Decision:
    """Smallest offered profile of `gpu_product` with memory >= peak x (1 + headroom) and compute >= p95.

    Only when the history says the container uses less than `threshold` of its GPU in both memory and
    compute. Profiles with media extensions (`+me`, one per GPU) and whole-GPU instances (`7g.*`) are never
    chosen automatically.
    """
    geo = geometry_for(gpu_product)
    if geo is None:
        return Decision(None, f"unknown GPU type {gpu_product or '?'}", "unknown_gpu")
    mem_frac, compute = usage_fraction(usage)
    if mem_frac is None:
        return Decision(None, "history lacks the GPU memory size", "unknown_gpu", geo.key)
    if compute is None:
        return Decision(None, "history lacks compute use", "no_history", geo.key)
    need_gib = usage.peak_memory_mib * (1 + headroom) / 1024
    details = {
        "peak_mem_frac": round(mem_frac, 3),
        "p95_compute": round(compute, 3),
        "need_gib": round(need_gib, 2),
        "gpu": geo.key,
    }
    if mem_frac >= threshold or compute >= threshold:
        return Decision(
            None,
            f"uses {max(mem_frac, compute):.0%} of a GPU (threshold {threshold:.0%})",
            "kept",
            geo.key,
            details,
        )
    offered_set = set(offered)
    for prof in geo.profiles:  # ordered small to large
        if prof.media_extensions or prof.name not in offered_set:
            continue
        if prof.compute_slices >= geo.compute_slices_total:
            continue  # a whole-GPU instance saves nothing over nvidia.com/gpu: 1
        if prof.memory_gib >= need_gib and prof.compute_fraction >= compute:
            reason = (
                f"peak {usage.peak_memory_mib / 1024:.1f}GiB+{headroom:.0%}<={prof.memory_gib:g}GiB, "
                f"p95 compute {compute:.0%}<={prof.compute_fraction:.0%}"
            )
            return Decision(prof.name, reason, "mutated", geo.key, details)
    return Decision(
        None,
        f"no offered {geo.key} profile fits {need_gib:.1f}GiB and {compute:.0%} compute",
        "no_fit",
        geo.key,
        details,
    )


def smaller(a: Decision, b: Decision) -> Decision:
    """The better of two decisions for different GPU products: a profile beats none; less memory wins."""
    if a.profile is None:
        return b if b.profile is not None else a
    if b.profile is None:
        return a
    ga, gb = geometry_for(a.gpu or ""), geometry_for(b.gpu or "")
    pa = ga.profile(a.profile) if ga else None
    pb = gb.profile(b.profile) if gb else None
    if pa is None or pb is None:
        return a
    return b if (pb.memory_gib, pb.compute_fraction) < (pa.memory_gib, pa.compute_fraction) else a
