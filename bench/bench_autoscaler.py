"""Benchmark: one autoscaler cycle for 1,000 variants over 200 models (2 replicas each, 2,000 pods), and the
local part of one scale-from-zero poll (inventory without pods + models at zero) over the same cluster.

Prometheus is a recording fake (httpx.MockTransport) answering with vectors for every pod, so JSON decoding
and joining are measured and the queries are counted. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any
from urllib.parse import parse_qs

import httpx

from app.autoscaler.collector import PrometheusSource
from app.autoscaler.config import CapacityConfigSet
from app.autoscaler.exporter import Exporter
from app.autoscaler.inventory import build_variants
from app.autoscaler.saturation import EngineParams, decide
from app.autoscaler.stabilize import Stabilizer
from app.autoscaler.zero import enforce, models_at_zero

MODELS, VARIANTS_PER_MODEL, PODS_PER_VARIANT = 200, 5, 2
NS = "bench"


class Objects:
    def __init__(self) -> None:
        self.objs: dict[str, list[dict[str, Any]]] = {"VariantAutoscaling": [], "Deployment": [], "Pod": []}
        self.deploys: dict[str, dict[str, Any]] = {}
        ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        for m in range(MODELS):
            for v in range(VARIANTS_PER_MODEL):
                name = f"m{m}-v{v}"
                self.objs["VariantAutoscaling"].append(
                    {
                        "metadata": {
                            "name": name,
                            "namespace": NS,
                            "labels": {"inference.optimization/acceleratorName": "H100"},
                        },
                        "spec": {
                            "modelID": f"model-{m}",
                            "variantCost": str(10 + 5 * v),
                            "scaleTargetRef": {"name": name},
                        },
                    }
                )
                d = {
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"replicas": PODS_PER_VARIANT, "selector": {"matchLabels": {"app": name}}},
                    "status": {"replicas": PODS_PER_VARIANT, "readyReplicas": PODS_PER_VARIANT},
                }
                self.objs["Deployment"].append(d)
                self.deploys[name] = d
                for p in range(PODS_PER_VARIANT):
                    self.objs["Pod"].append(
                        {
                            "metadata": {"name": f"{name}-{p}", "namespace": NS, "labels": {"app": name}},
                            "status": ready,
                        }
                    )

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.objs.get(kind, [])

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.deploys.get(name) if kind == "Deployment" else None


def fake_prometheus(objs: Objects) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []
    pods = [p["metadata"]["name"] for p in objs.objs["Pod"]]
    now = time.time()

    def handler(request: httpx.Request) -> httpx.Response:
        q = parse_qs(request.content.decode())["query"][0]
        seen.append(q)
        if q.startswith("label_replace"):
            result = [
                {"metric": {"namespace": NS, "pod": p, "wva_q": "arrival_rate"}, "value": [now, "1.5"]}
                for p in pods
            ]
        else:
            stamp = "timestamp(" in q
            result = [
                {
                    "metric": {"namespace": NS, "pod": p},
                    "value": [now, str(now) if stamp else str((i % 9) / 10)],
                }
                for i, p in enumerate(pods)
            ]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    return httpx.MockTransport(handler), seen


async def main(cycles: int = 10) -> dict[str, Any]:
    objs = Objects()
    transport, seen = fake_prometheus(objs)
    client = httpx.AsyncClient(transport=transport)
    src = PrometheusSource("http://prom", client=client, ttl_s=0)
    stabilizer, exporter, cfgs, params = Stabilizer(0, 300), Exporter(), CapacityConfigSet(), EngineParams()
    fetch, inv, engine, total, queries, wake = [], [], [], [], [], []
    for _ in range(cycles):
        before = len(seen)
        t0 = time.perf_counter()
        snap = await src.refresh()
        t1 = time.perf_counter()
        infos = build_variants(objs, snap, time.time())
        t2 = time.perf_counter()
        decisions = enforce(decide([i.variant for i in infos], cfgs, params), {})
        for d in decisions:
            stabilizer.stabilize(d.key, d.variant.current, d.desired, time.time())
        exporter.publish(decisions)
        t3 = time.perf_counter()
        fetch.append(t1 - t0)
        inv.append(t2 - t1)
        engine.append(t3 - t2)
        total.append(t3 - t0)
        queries.append(len(seen) - before)
        t4 = time.perf_counter()
        models_at_zero(i.variant for i in build_variants(objs, snap, time.time(), with_pods=False))
        wake.append(time.perf_counter() - t4)
    await client.aclose()
    ms = lambda xs: round(statistics.median(xs) * 1000, 2)  # noqa: E731
    return {
        "variants": len(infos),
        "models": MODELS,
        "pods": len(objs.objs["Pod"]),
        "promql_queries_per_cycle": max(queries),
        "fetch_and_parse_ms_median": ms(fetch),
        "inventory_ms_median": ms(inv),
        "engine_stabilise_export_ms_median": ms(engine),
        "compute_ms_median": ms([a + b for a, b in zip(inv, engine, strict=True)]),
        "cycle_ms_median": ms(total),
        "wake_poll_local_ms_median": ms(wake),
        "cycles": cycles,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
