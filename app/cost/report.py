"""Pure cost views: GPU-hours and $ per namespace and workload, the monthly projection, idle-GPU cost.

hourly(pod)    = GPU-equivalents held x $/GPU-hr of its node's product (a MIG slice counts as its
                 compute share of the GPU, e.g. 1g.10gb on an A100 = 1/7)
gpu_hours(pod) = GPU-equivalents x hours since the pod started (status.startTime), up to `now`
monthly        = hourly x 730 (hours in an average month), if today's allocation stays
idle           = free whole GPUs and unallocated MIG slices on each node x its price
wasted         = sum over held GPUs of price x waste score / 100 (when waste scores are given)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app.cost.prices import PriceTable
from app.gpu.mig import mig_compute_fraction
from app.ops.inventory import ClusterFacts, gpu_equivalent
from app.ops.status import node_usage
from app.waste.score import WasteScore

HOURS_PER_MONTH = 730.0


def _r(x: float) -> float:
    return round(x, 2)


def cost(
    facts: ClusterFacts, prices: PriceTable, now: datetime, waste: Iterable[WasteScore] = ()
) -> dict[str, Any]:
    """The cost document (JSON-ready)."""
    product_of = {n.name: n.product for n in facts.nodes}
    rows: list[dict[str, Any]] = []
    unpriced: set[str] = set()
    for pod in facts.holding():
        product = product_of.get(pod.node, "")
        price = prices.per_hour(product)
        if price is None:
            unpriced.add(product or f"(node {pod.node} unknown)")
        gpus = gpu_equivalent(pod, product)
        hours = max(0.0, (now - pod.started).total_seconds() / 3600) if pod.started else 0.0
        rows.append(
            {
                "namespace": pod.namespace,
                "workload": str(pod.workload),
                "pod": pod.name,
                "node": pod.node,
                "product": product,
                "gpus": round(gpus, 4),
                "usd_per_hour": _r(gpus * price) if price is not None else None,
                "gpu_hours": round(gpus * hours, 2),
                "usd_so_far": _r(gpus * hours * price) if price is not None else None,
            }
        )

    def group(key: str) -> list[dict[str, Any]]:
        acc: dict[str, dict[str, Any]] = {}
        for r in rows:
            a = acc.setdefault(
                r[key],
                {
                    key: r[key],
                    "pods": 0,
                    "gpus": 0.0,
                    "usd_per_hour": 0.0,
                    "gpu_hours": 0.0,
                    "usd_so_far": 0.0,
                },
            )
            if key == "workload":
                a["namespace"] = r["namespace"]
            a["pods"] += 1
            a["gpus"] += r["gpus"]
            a["gpu_hours"] += r["gpu_hours"]
            a["usd_per_hour"] += r["usd_per_hour"] or 0.0
            a["usd_so_far"] += r["usd_so_far"] or 0.0
        out = []
        for a in acc.values():
            a["gpus"] = round(a["gpus"], 4)
            a["gpu_hours"] = round(a["gpu_hours"], 2)
            a["usd_per_hour"] = _r(a["usd_per_hour"])
            a["usd_so_far"] = _r(a["usd_so_far"])
            a["usd_per_month"] = _r(a["usd_per_hour"] * HOURS_PER_MONTH)
            out.append(a)
        return sorted(out, key=lambda a: (-a["usd_per_hour"], a[key]))

    idle: list[dict[str, Any]] = []
    for n in facts.nodes:
        used, mig_used = node_usage(facts, n.name)
        free = float(max(0, n.gpus - used))
        for profile, total in n.mig.items():
            free += max(0, total - mig_used.get(profile, 0)) * (
                mig_compute_fraction(profile, n.product) or 0.0
            )
        if free <= 0:
            continue
        price = prices.per_hour(n.product)
        if price is None:
            unpriced.add(n.product or "?")
        idle.append(
            {
                "node": n.name,
                "product": n.product,
                "idle_gpus": round(free, 4),
                "usd_per_hour": _r(free * price) if price is not None else None,
                "usd_per_month": _r(free * price * HOURS_PER_MONTH) if price is not None else None,
            }
        )
    wasted = 0.0
    for w in waste:
        price = prices.per_hour(product_of.get(w.node, ""))
        if price is not None:
            frac = 1.0 if "/" not in w.gpu else 0.0  # a MIG slice's share is counted through its pod below
            if frac == 0.0:
                owner = next(
                    (p for p in facts.holding(w.node) if p.name == w.pod and p.namespace == w.namespace), None
                )
                frac = gpu_equivalent(owner, product_of.get(w.node, "")) if owner else 0.0
            wasted += price * frac * w.score / 100.0
    held = sum(r["usd_per_hour"] or 0.0 for r in rows)
    idle_hour = sum(i["usd_per_hour"] or 0.0 for i in idle)
    return {
        "currency": "USD",
        "prices": prices.origin,
        "now": now.isoformat(),
        "hours_per_month": HOURS_PER_MONTH,
        "totals": {
            "usd_per_hour": _r(held),
            "usd_per_month": _r(held * HOURS_PER_MONTH),
            "gpu_hours": round(sum(r["gpu_hours"] for r in rows), 2),
            "usd_so_far": _r(sum(r["usd_so_far"] or 0.0 for r in rows)),
            "idle_usd_per_hour": _r(idle_hour),
            "idle_usd_per_month": _r(idle_hour * HOURS_PER_MONTH),
            "wasted_usd_per_hour": _r(wasted),
            "wasted_usd_per_month": _r(wasted * HOURS_PER_MONTH),
        },
        "namespaces": group("namespace"),
        "workloads": group("workload"),
        "pods": rows,
        "idle": idle,
        "unpriced_products": sorted(unpriced),
    }
