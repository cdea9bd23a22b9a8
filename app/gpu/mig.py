"""MIG geometry: the profiles of each MIG-capable GPU, where instances may start, what share of the GPU one
holds, and the Kubernetes resource names the device plugin advertises for them.

One home for every capability that reasons about MIG: the webhook's profile choice, the operator views
(`ops`, `cost`), the scheduler extender's inventory and the MIG layout controller. The data lives beside this
module in `mig_profiles.json` (derived from the shared reference table, checked against it by the tests);
nothing here does I/O after the first read or knows about HTTP or Kubernetes clients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    #: valid start slots on the memory-slice axis (`nvidia-smi mig -lgipp`); an instance takes
    #: [start, start + placement_size)
    placement_starts: tuple[int, ...] = ()
    placement_size: int = 0

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
    memory_slices_total: int = 8
    #: PCI device IDs as mig-parted's `device-filter` writes them (`0x20B210DE`)
    pci_device_ids: tuple[str, ...] = ()

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


class LayoutError(ValueError):
    """A set of MIG instances one GPU cannot hold; the message says why, in one line."""


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


def compute_class(profile: str) -> str:
    """`1g.20gb` -> `1g` (the compute-slice class a target mix speaks of); '' for other shapes."""
    m = _PROFILE_NAME.match(profile)
    return f"{m.group(1)}g" if m else ""


@cache
def geometries() -> tuple[GpuGeometry, ...]:
    """All GPU models of the data file, in match order."""
    text = resources.files("app.gpu").joinpath("mig_profiles.json").read_text()
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
                        placement_starts=tuple(int(s) for s in p["placement_starts"]),
                        placement_size=int(p["placement_size"]),
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
                memory_slices_total=int(g["memory_slices_total"]),
                pci_device_ids=tuple(str(d).upper().replace("0X", "0x") for d in g["pci_device_ids"]),
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
    text = re.sub(r"\s+SHARED$", "", text)
    for geo in geometries():
        if any(p.search(text) for p in geo.patterns):
            return geo
    return None


def geometry_for_device_id(device_id: str) -> GpuGeometry | None:
    """The geometry for a PCI device ID as mig-parted's `device-filter` writes it (`0x20B210DE`)."""
    wanted = device_id.strip().upper().replace("0X", "0x")
    return next((g for g in geometries() if wanted in g.pci_device_ids), None)


def place(geo: GpuGeometry, counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Start slots for `counts` instances on one GPU of `geo`: [(profile, start)], largest first.

    Raises LayoutError (one line) when the GPU cannot hold them: an unknown profile, more instances than a
    profile allows, more compute slices than the GPU has, or no non-overlapping placement on the
    memory-slice axis (e.g. 2x 3g.40gb + 1g.10gb on an A100: both 3g take slots 0-3 and 4-7).
    """
    wanted: list[Profile] = []
    compute = 0
    for name, n in sorted(counts.items()):
        if n < 0:
            raise LayoutError(f"{name}: negative count {n}")
        if n == 0:
            continue
        prof = geo.profile(name)
        if prof is None:
            raise LayoutError(f"{geo.key} has no MIG profile {name}")
        if n > prof.max_instances:
            raise LayoutError(f"{n}x {name}: {geo.key} allows at most {prof.max_instances}")
        wanted.extend([prof] * n)
        compute += prof.compute_slices * n
    if compute > geo.compute_slices_total:
        raise LayoutError(
            f"{_describe(counts)} needs {compute} compute slices, {geo.key} has {geo.compute_slices_total}"
        )
    wanted.sort(key=lambda p: (-p.placement_size, p.name))
    taken = [False] * geo.memory_slices_total
    out: list[tuple[str, int]] = []

    def search(i: int) -> bool:
        if i == len(wanted):
            return True
        prof = wanted[i]
        # identical instances in ascending starts only: the same set is not tried twice
        low = out[-1][1] + 1 if out and out[-1][0] == prof.name else 0
        for start in prof.placement_starts:
            end = start + prof.placement_size
            if start < low or end > len(taken) or any(taken[start:end]):
                continue
            taken[start:end] = [True] * prof.placement_size
            out.append((prof.name, start))
            if search(i + 1):
                return True
            out.pop()
            taken[start:end] = [False] * prof.placement_size
        return False

    if not search(0):
        raise LayoutError(f"{_describe(counts)} has no valid placement on {geo.key} (memory slices overlap)")
    return out


def _describe(counts: Mapping[str, int]) -> str:
    return " + ".join(f"{n}x {p}" for p, n in sorted(counts.items()) if n) or "nothing"


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
