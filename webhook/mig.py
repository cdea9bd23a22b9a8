"""MIG profile geometry and the pure profile choice.

Geometry lives in `webhook/data/mig_profiles.json` (derived from the shared reference table, checked against
it by the tests); this module only reads it. Nothing here does I/O after import or knows about HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
GPU_RESOURCE = "nvidia.com/gpu"
_PROFILE_NAME = re.compile(r"^(\d+)g\.(\d+)gb(\+me)?$")


@dataclass(frozen=True)
class Profile:
    """One MIG GPU-instance profile of one GPU model."""

    name: str
    compute_slices: int
    memory_slices: int
    memory_gib: float
    max_instances: int
    media_extensions: bool
    compute_fraction: float

    @property
    def resource(self) -> str:
        """Mixed-strategy resource name: `+` becomes `.` (`1g.10gb+me` -> `nvidia.com/mig-1g.10gb.me`)."""
        return profile_resource(self.name)


@dataclass(frozen=True)
class GpuGeometry:
    """MIG geometry of one GPU model (profiles ordered small to large)."""

    key: str
    patterns: tuple[re.Pattern[str], ...]
    memory_mib: int
    compute_slices_total: int
    profiles: tuple[Profile, ...]

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


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


def profile_resource(name: str) -> str:
    return MIG_RESOURCE_PREFIX + name.replace("+", ".")


def resource_profile(resource: str) -> str | None:
    """`nvidia.com/mig-1g.10gb.me` -> `1g.10gb+me`; None for anything else."""
    if not resource.startswith(MIG_RESOURCE_PREFIX):
        return None
    name = resource.removeprefix(MIG_RESOURCE_PREFIX)
    if name.endswith(".me"):
        name = name[:-3] + "+me"
    return name if _PROFILE_NAME.match(name) else None


@cache
def geometries() -> tuple[GpuGeometry, ...]:
    """All GPU models of the data file, in match order."""
    text = resources.files("webhook").joinpath("data/mig_profiles.json").read_text()
    data = json.loads(text)
    out: list[GpuGeometry] = []
    for key, g in data["gpus"].items():
        total = int(g["compute_slices_total"])
        profiles = tuple(
            sorted(
                (
                    Profile(
                        name=p["name"],
                        compute_slices=int(p["compute_slices"]),
                        memory_slices=int(p["memory_slices"]),
                        memory_gib=float(p["memory_gib"]),
                        max_instances=int(p["max_instances"]),
                        media_extensions=bool(p["media_extensions"]),
                        compute_fraction=int(p["compute_slices"]) / total,
                    )
                    for p in g["profiles"]
                ),
                key=lambda p: (p.memory_gib, p.compute_slices, p.media_extensions),
            )
        )
        out.append(
            GpuGeometry(
                key=key,
                patterns=tuple(re.compile(pat, re.IGNORECASE) for pat in g["product_patterns"]),
                memory_mib=int(g["memory_mib"]),
                compute_slices_total=total,
                profiles=profiles,
            )
        )
    return tuple(out)


def mig_compute_fraction(profile: str, gpu_model: str | None = None) -> float | None:
    """Share of the whole GPU's compute one instance of `profile` has (A30 has 4 slices, the rest 7)."""
    geo = geometry_for(gpu_model) if gpu_model else None
    for g in (geo,) if geo else geometries():
        found = g.profile(profile)
        if found is not None:
            return found.compute_fraction
    return None


def known_profile_names() -> frozenset[str]:
    return frozenset(p.name for g in geometries() for p in g.profiles)


@lru_cache(maxsize=512)
def geometry_for(product: str) -> GpuGeometry | None:
    """The geometry for a product string (GFD label, DCGM modelName or NVML name); None when unknown."""
    text = re.sub(r"[-_]+", " ", product).upper()
    text = re.sub(r"-MIG.*$|\s+MIG\s+\d+G\..*$", "", text)
    for geo in geometries():
        if any(p.search(text) for p in geo.patterns):
            return geo
    return None


def offered_profiles(nodes: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Per GPU product (the node's `nvidia.com/gpu.product` label), the MIG profiles some node offers.

    A profile is offered when a node labels `nvidia.com/mig-<profile>.count` > 0 or has allocatable
    `nvidia.com/mig-<profile>` > 0 (mixed strategy). Nodes without a product label are grouped under "".
    """
    offers: dict[str, set[str]] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        alloc = (node.get("status") or {}).get("allocatable") or {}
        found: set[str] = set()
        for key, value in labels.items():
            if key.startswith(MIG_RESOURCE_PREFIX) and key.endswith(".count") and _positive(value):
                name = resource_profile(key.removesuffix(".count"))
                if name:
                    found.add(name)
        for key, value in alloc.items():
            name = resource_profile(key)
            if name and _positive(value):
                found.add(name)
        if found:
            product = str(labels.get("nvidia.com/gpu.product", ""))
            product = re.sub(r"-MIG-.*$", "", product)
            offers.setdefault(product, set()).update(found)
    return {k: frozenset(v) for k, v in offers.items()}


def _positive(value: Any) -> bool:
    try:
        return int(str(value)) > 0
    except ValueError:
        return False


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
