"""`status`: GPUs total / used / free per node and product, MIG slices, pods holding GPUs."""

from __future__ import annotations

from typing import Any

from app.ops.inventory import ClusterFacts


def node_usage(facts: ClusterFacts, node: str) -> tuple[int, dict[str, int]]:
    """(whole GPUs used, MIG slices used per profile) by the pods holding GPUs on the node."""
    used = 0
    mig: dict[str, int] = {}
    for pod in facts.holding(node):
        used += pod.gpus
        for profile, n in pod.mig:
            mig[profile] = mig.get(profile, 0) + n
    return used, mig


def status(facts: ClusterFacts) -> dict[str, Any]:
    """The whole status document (JSON-ready)."""
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
    }
