"""`status`: GPUs total / used / free per node and product, MIG slices, pods holding GPUs, and, where
Prometheus is given, each GPU's DCGM utilisation (compute and memory, 5-minute averages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.ops.inventory import ClusterFacts
from app.waste.score import GpuUse

#: the range each GPU's utilisation is averaged over: "now", smoothed past DCGM's 1 s samples
UTIL_WINDOW = "5m"


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _gpu_order(use: GpuUse) -> tuple[str, tuple[int, ...], str]:
    """Node, then GPU index and MIG instance numerically ("2" before "10", "0/1" after "0")."""
    parts = use.gpu.split("/")
    nums = tuple(int(p) if p.isdigit() else -1 for p in parts)
    return use.node, nums, use.gpu


def gpu_rows(uses: Sequence[GpuUse]) -> list[dict[str, Any]]:
    """One row per GPU (or MIG slice) DCGM reports: compute and memory use in %."""
    return [
        {"node": u.node, "gpu": u.gpu, "util_pct": _pct(u.compute), "memory_pct": _pct(u.memory)}
        for u in sorted(uses, key=_gpu_order)
    ]


def node_usage(facts: ClusterFacts, node: str) -> tuple[int, dict[str, int]]:
    """(whole GPUs used, MIG slices used per profile) by the pods holding GPUs on the node."""
    used = 0
    mig: dict[str, int] = {}
    for pod in facts.holding(node):
        used += pod.gpus
        for profile, n in pod.mig:
            mig[profile] = mig.get(profile, 0) + n
    return used, mig


def status(facts: ClusterFacts, gpu_use: Sequence[GpuUse] | None = None) -> dict[str, Any]:
    """The whole status document (JSON-ready). `gpu_use`: per-GPU DCGM averages (None: no Prometheus)."""
    by_node: dict[str, list[GpuUse]] = {}
    for u in gpu_use or ():
        by_node.setdefault(u.node, []).append(u)
    nodes: list[dict[str, Any]] = []
    products: dict[str, dict[str, int]] = {}
    for n in facts.nodes:
        used, mig_used = node_usage(facts, n.name)
        free = max(0, n.gpus - used)
        mig: list[dict[str, Any]] = [
            {
                "profile": p,
                "total": total,
                "used": mig_used.get(p, 0),
                "free": max(0, total - mig_used.get(p, 0)),
            }
            for p, total in n.mig.items()
        ]
        nodes.append(
            {
                "name": n.name,
                "product": n.product,
                "physical_gpus": n.physical_gpus,
                "gpus": n.gpus,
                "used": min(used, n.gpus) if n.gpus else used,
                "free": free,
                "mig": mig,
                "topology": n.source,
                "pods": len(facts.holding(n.name)),
                # mean over the node's GPUs (or MIG slices) DCGM reports; None without data
                "util_pct": _pct(_mean([u.compute for u in by_node.get(n.name, ())])),
                "memory_pct": _pct(_mean([u.memory for u in by_node.get(n.name, ())])),
            }
        )
        agg: dict[str, int] = products.setdefault(
            n.product or "?", {"nodes": 0, "gpus": 0, "used": 0, "free": 0, "mig_slices": 0, "mig_used": 0}
        )
        agg["nodes"] += 1
        agg["gpus"] += n.gpus
        agg["used"] += min(used, n.gpus)
        agg["free"] += free
        agg["mig_slices"] += sum(n.mig.values())
        agg["mig_used"] += sum(min(m["used"], m["total"]) for m in mig)
    pods = [
        {
            "namespace": p.namespace,
            "name": p.name,
            "node": p.node,
            "gpus": p.gpu_label,
            "phase": p.phase,
            "workload": str(p.workload),
        }
        for p in facts.pods
    ]
    totals = {
        k: sum(v[k] for v in products.values()) for k in ("gpus", "used", "free", "mig_slices", "mig_used")
    }
    return {
        "source": facts.source,
        "totals": {"nodes": len(facts.nodes), **totals, "pods": len(facts.holding())},
        "products": [{"product": k, **v} for k, v in sorted(products.items())],
        "nodes": nodes,
        "pods": pods,
        "pending": [f"{p.namespace}/{p.name}" for p in facts.pods if not p.node],
        "skipped": list(facts.skipped),
        "gpu_use": None if gpu_use is None else {"window": UTIL_WINDOW, "gpus": gpu_rows(gpu_use)},
    }
