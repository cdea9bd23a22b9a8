"""Cost over any window, read back from Prometheus: the recording rules of
`manifests/monitoring/prometheusrule-cost.yaml` hold the history, this module only queries it.

The rules record, every RULE_INTERVAL_S seconds, the GPU-equivalents held and the $/hour they cost per pod,
namespace, workload, cost centre and node (idle capacity). Over a window (since, until]:

    GPU-hours = sum_over_time(<level>:gpu_autoscaler_gpu_equivalents:sum[W - 1ms:i] @ until) x i / 3600
    $         = sum_over_time(<level>:gpu_autoscaler_cost_usd_per_hour:sum[W - 1ms:i] @ until) x i / 3600

(i = RULE_INTERVAL_S, the rule group's evaluation interval: the subquery takes one value per interval
whatever the phase of the rule evaluations, each standing for the interval before it; a window 1 ms short
of W holds exactly W / i of them, as Prometheus 2 ranges are closed and would count both ends of an
aligned window)

so a pod that ran three hours yesterday still costs its three hours today. A constant number of queries per
call, whatever the cluster size.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from app.prometheus import query_vector

#: the evaluation interval of the recording-rule group `gpu-autoscaler-cost` (tests hold the file to it)
RULE_INTERVAL_S = 60

#: (level, labels it keeps, record-name prefix)
LEVELS: dict[str, tuple[tuple[str, ...], str]] = {
    "namespace": (("namespace",), "namespace"),
    "workload": (("namespace", "workload"), "namespace_workload"),
    "cost_center": (("cost_center",), "cost_center"),
    "pod": (("namespace", "pod", "workload", "node", "product", "cost_center", "project"), "pod"),
    "cluster": ((), "cluster"),
}
POD_EQUIVALENTS = "pod:gpu_autoscaler_gpu_equivalents:max"
IDLE_EQUIVALENTS = "node:gpu_autoscaler_idle_gpu_equivalents:sum"
IDLE_COST = "node:gpu_autoscaler_idle_cost_usd_per_hour:sum"


def equivalents_record(level: str) -> str:
    return POD_EQUIVALENTS if level == "pod" else f"{LEVELS[level][1]}:gpu_autoscaler_gpu_equivalents:sum"


def cost_record(level: str) -> str:
    return f"{LEVELS[level][1]}:gpu_autoscaler_cost_usd_per_hour:sum"


def _over(record: str, seconds: int, until: float) -> str:
    step = RULE_INTERVAL_S
    return f"sum_over_time({record}[{seconds * 1000 - 1}ms:{step}s] @ {until:.3f}) * {step} / 3600"


def build_queries(since: datetime, until: datetime) -> dict[str, str]:
    """Instant queries for the window (since, until] (at least one rule interval long)."""
    seconds = max(RULE_INTERVAL_S, round((until - since).total_seconds()))
    end = until.timestamp()
    out: dict[str, str] = {}
    for level in LEVELS:
        out[f"{level}.gpu_hours"] = _over(equivalents_record(level), seconds, end)
        out[f"{level}.cost_usd"] = _over(cost_record(level), seconds, end)
        if level != "pod":
            out[f"{level}.usd_per_hour"] = f"{cost_record(level)} @ {end:.3f}"
            out[f"{level}.gpus"] = f"{equivalents_record(level)} @ {end:.3f}"
    out["idle.gpu_hours"] = _over(IDLE_EQUIVALENTS, seconds, end)
    out["idle.cost_usd"] = _over(IDLE_COST, seconds, end)
    return out


def budget_spend_queries(month_start: datetime, now: datetime) -> dict[str, str]:
    """Month-to-date $ and the $/hour held now, per namespace and per cost centre (the budget scopes)."""
    q = build_queries(month_start, now)
    return {
        k: q[k]
        for k in (
            "namespace.cost_usd",
            "namespace.usd_per_hour",
            "cost_center.cost_usd",
            "cost_center.usd_per_hour",
        )
    }


def _value(sample: Mapping[str, Any]) -> float | None:
    try:
        v = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def tables(vectors: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[tuple[str, ...], dict[str, float]]]:
    """`{level: {label values: {measure: value}}}` from the answers to `build_queries`."""
    out: dict[str, dict[tuple[str, ...], dict[str, float]]] = {}
    for name, result in vectors.items():
        level, measure = name.split(".", 1)
        labels = LEVELS[level][0] if level in LEVELS else ("node", "product")
        for sample in result:
            v = _value(sample)
            if v is None:
                continue
            metric = sample.get("metric") or {}
            key = tuple(str(metric.get(label, "")) for label in labels)
            out.setdefault(level, {}).setdefault(key, {})[measure] = v
    return out


async def fetch(
    client: httpx.AsyncClient, base_url: str, queries: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Run the queries concurrently (long ones by POST); errors propagate."""
    results = await asyncio.gather(
        *(query_vector(client, base_url, q, method="POST") for q in queries.values())
    )
    return dict(zip(queries, results, strict=True))
