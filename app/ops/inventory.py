"""Cluster objects -> the plain facts the operator views need (nodes, GPU pods), reusing the extender's
node/pod parsing so a node means the same thing to `status` as to the scheduler.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.bad_objects import BAD, object_name
from app.cluster.base import parse_timestamp
from app.gpu.mig import mig_compute_fraction
from extender.inventory import ANN_TOPOLOGY, NodeInfo, parse_node, parse_pod
from webhook.history import WorkloadKey, workload_key

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")
#: pod labels that attribute GPU cost beyond the namespace (docs/cost.md)
LABEL_COST_CENTER = "gpu-cost-center"
LABEL_PROJECT = "gpu-project"


@dataclass(frozen=True)
class NodeFacts:
    """One GPU node: whole GPUs (allocatable), physical GPUs, MIG slices offered, topology if known."""

    name: str
    product: str
    gpus: int  # whole GPUs allocatable (nvidia.com/gpu)
    physical_gpus: int
    mig: Mapping[str, int]  # profile -> allocatable slices
    links: tuple[tuple[str, ...], ...] | None  # over the whole GPUs, physical order `gpu_phys`
    gpu_phys: tuple[int, ...]
    source: str  # annotation | labels
    allocated: frozenset[int] = frozenset()  # physical indices the agent marks in use


@dataclass(frozen=True)
class GpuPod:
    """A pod asking for GPUs. `node` is empty while it is pending."""

    namespace: str
    name: str
    node: str
    gpus: int
    mig: tuple[tuple[str, int], ...]
    workload: WorkloadKey
    started: datetime | None
    phase: str
    #: a share of one GPU in milli-GPU (1..999, `gpu-autoscaler.io/gpu-milli`); 0 = whole GPUs
    gpu_milli: int = 0
    cost_center: str = ""
    project: str = ""
    #: physical GPU indices the share is pinned to (`gpu-autoscaler.io/gpu-index`), when known
    gpu_index: tuple[int, ...] = ()

    @property
    def holding(self) -> bool:
        return bool(self.node) and self.phase not in TERMINAL_PHASES

    @property
    def gpu_label(self) -> str:
        if self.mig:
            return ",".join(f"mig-{p}" + (f"x{c}" if c > 1 else "") for p, c in self.mig)
        if self.gpu_milli:
            return f"{self.gpu_milli / 1000:g}"
        return str(self.gpus)


@dataclass(frozen=True)
class ClusterFacts:
    nodes: list[NodeFacts]
    pods: list[GpuPod]
    source: str = ""
    skipped: list[str] = field(default_factory=list)

    def node(self, name: str) -> NodeFacts | None:
        return next((n for n in self.nodes if n.name == name), None)

    def holding(self, node: str | None = None) -> list[GpuPod]:
        return [p for p in self.pods if p.holding and (node is None or p.node == node)]


def _physical(obj: Mapping[str, Any], info: NodeInfo) -> int:
    meta = obj.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(ANN_TOPOLOGY)
    if raw:
        try:
            return len(json.loads(raw).get("gpus") or [])
        except (ValueError, AttributeError):
            pass
    count = str((meta.get("labels") or {}).get("nvidia.com/gpu.count", ""))
    return max(info.capacity.gpu_count, int(count) if count.isdigit() else 0)


def node_facts(obj: Mapping[str, Any]) -> NodeFacts | None:
    """None for nodes without any GPU."""
    info = parse_node(dict(obj))
    physical = _physical(obj, info)
    if not info.capacity.gpu_count and not info.mig and not physical:
        return None
    return NodeFacts(
        name=info.name,
        product=info.product.replace("-", " ") if info.source == "labels" else info.product,
        gpus=info.capacity.gpu_count,
        physical_gpus=physical,
        mig=dict(sorted(info.mig.items())),
        links=info.links,
        gpu_phys=info.gpu_phys,
        source=info.source,
        allocated=info.allocated,
    )


def gpu_pod(obj: Mapping[str, Any]) -> GpuPod | None:
    """None for pods asking for no GPU."""
    ask = parse_pod(dict(obj))
    if not ask.wants_gpu:
        return None
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    labels = meta.get("labels") or {}
    ns = ask.namespace
    key = workload_key(obj, ns) or WorkloadKey(ns, "Pod", ask.name)
    return GpuPod(
        namespace=ns,
        name=ask.name,
        node=str((obj.get("spec") or {}).get("nodeName") or ""),
        gpus=ask.req.gpu_count,
        mig=ask.mig,
        workload=key,
        started=parse_timestamp(status.get("startTime")) or parse_timestamp(meta.get("creationTimestamp")),
        phase=str(status.get("phase") or "Pending"),
        gpu_milli=ask.req.gpu_milli if ask.req.is_shared else 0,
        cost_center=str(labels.get(LABEL_COST_CENTER) or ""),
        project=str(labels.get(LABEL_PROJECT) or ""),
        gpu_index=ask.pinned,
    )


def cluster_facts(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], source: str = ""
) -> ClusterFacts:
    """Facts of every GPU node and GPU pod; objects that cannot be read are skipped and named."""
    out_nodes: list[NodeFacts] = []
    out_pods: list[GpuPod] = []
    skipped: list[str] = []
    for obj in nodes:
        try:
            facts = node_facts(obj)
        except Exception as exc:  # InventoryError names the field; anything else is a shape never expected
            skipped.append(BAD.report_exception("Node", obj, exc, source="ops"))
            continue
        if facts is not None:
            out_nodes.append(facts)
    for obj in pods:
        try:
            pod = gpu_pod(obj)
        except Exception as exc:
            skipped.append(f"pod {object_name(obj)}: {BAD.report_exception('Pod', obj, exc, source='ops')}")
            continue
        if pod is not None:
            out_pods.append(pod)
    if skipped:
        log.warning("objects skipped", extra={"skipped": skipped[:20], "count": len(skipped)})
    out_nodes.sort(key=lambda n: n.name)
    out_pods.sort(key=lambda p: (p.namespace, p.name))
    return ClusterFacts(out_nodes, out_pods, source, skipped)


def gpu_equivalent(pod: GpuPod, product: str) -> float:
    """Whole GPUs a pod holds, a MIG slice counting as its share of the GPU's compute slices and a GPU share
    (time-slicing / MPS) as its milli-GPU."""
    total = pod.gpu_milli / 1000 if pod.gpu_milli else float(pod.gpus)
    for profile, n in pod.mig:
        total += n * (mig_compute_fraction(profile, product) or 0.0)
    return total
