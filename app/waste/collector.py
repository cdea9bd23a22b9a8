"""DCGM window averages from Prometheus -> `GpuUse` rows. Two queries per cycle whatever the cluster size
(three with the peak compute use the waste flag needs).

Every query groups `by (namespace, pod, node, gpu, GPU_I_ID)` over all pods (dcgm-exporter's Kubernetes
mapping adds `namespace`/`pod`; `node` comes from its `Hostname` label, or `hostname` on newer exporters,
or a relabelled `node`). A MIG slice is its own row, `gpu` = '<index>/<GPU_I_ID>'. `per_gpu=True` groups
by GPU alone, busy or idle (the `status` command's utilisation column).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import httpx

from app.prometheus import query_vector
from app.waste.score import GpuUse

log = logging.getLogger(__name__)

BY = "namespace, pod, node, gpu, GPU_I_ID"
BY_GPU = "node, gpu, GPU_I_ID"


def _node_label(expr: str) -> str:
    """Copy `Hostname` (released exporters) or `hostname` (newer) into `node`, keeping a relabelled one."""
    inner = f'label_replace({expr}, "node", "$1", "Hostname", "(.+)")'
    return f'label_replace({inner}, "node", "$1", "hostname", "(.+)")'


def build_queries(window: str = "10m", flag_for: str | None = None, per_gpu: bool = False) -> dict[str, str]:
    """The PromQL of one cycle, by name (instant queries): per pod's GPU, or per GPU (`per_gpu`). With
    `flag_for`, also the peak compute use over that (shorter) range: a pod whose peak stays low has stayed
    low the whole time."""
    by, selector = (BY_GPU, "") if per_gpu else (BY, 'pod!=""')

    def over(fn: str, metric: str, rng: str) -> str:
        return f"{fn}_over_time({metric}{{{selector}}}[{rng}])"

    def compute(fn: str, rng: str) -> str:
        # GR_ENGINE_ACTIVE works on MIG slices; GPU_UTIL (0 or absent there) only where it is missing
        return (
            f"avg by ({by}) ({_node_label(over(fn, 'DCGM_FI_PROF_GR_ENGINE_ACTIVE', rng))})"
            f" or avg by ({by}) ({_node_label(over(fn, 'DCGM_FI_DEV_GPU_UTIL', rng))}) / 100"
        )

    used, free = over("avg", "DCGM_FI_DEV_FB_USED", window), over("avg", "DCGM_FI_DEV_FB_FREE", window)
    out = {
        "memory": f"avg by ({by}) ({_node_label(f'{used} / ({used} + {free})')})",
        "compute": compute("avg", window),
    }
    if flag_for:
        out["peak"] = compute("max", flag_for)
    return out


def _key(metric: dict[str, str]) -> tuple[str, str, str, str]:
    gpu = str(metric.get("gpu", ""))
    gi = str(metric.get("GPU_I_ID", ""))
    return (
        str(metric.get("namespace", "")),
        str(metric.get("pod", "")),
        str(metric.get("node", "")),
        f"{gpu}/{gi}" if gi else gpu,
    )


def uses_from_vectors(vectors: dict[str, list[dict[str, Any]]], per_gpu: bool = False) -> list[GpuUse]:
    """Join the `result` lists of `build_queries` into one GpuUse per (namespace, pod, node, gpu)
    (per (node, gpu) with `per_gpu`, namespace and pod then empty)."""
    table: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for name, result in vectors.items():
        for sample in result:
            key = _key(sample.get("metric") or {})
            if not (key[2] if per_gpu else key[0] and key[1]):
                continue
            try:
                value = float(sample["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                table.setdefault(key, {})[name] = value
    return [
        GpuUse(
            ns, pod, node, gpu, compute=vals.get("compute"), memory=vals.get("memory"), peak=vals.get("peak")
        )
        for (ns, pod, node, gpu), vals in sorted(table.items())
    ]


class WasteCollector:
    """Fetches the window averages from the Prometheus HTTP API (`/api/v1/query`)."""

    def __init__(
        self,
        base_url: str,
        window: str = "10m",
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        flag_for: str | None = None,
        per_gpu: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.window = window
        self.flag_for = flag_for
        self.per_gpu = per_gpu
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    async def _query(self, promql: str) -> list[dict[str, Any]]:
        return await query_vector(self._client, self.base_url, promql)

    async def fetch(self) -> list[GpuUse]:
        queries = build_queries(self.window, self.flag_for, self.per_gpu)
        results = await asyncio.gather(*(self._query(q) for q in queries.values()))
        uses = uses_from_vectors(dict(zip(queries, results, strict=True)), self.per_gpu)
        log.debug("waste samples fetched", extra={"gpus": len(uses), "window": self.window})
        return uses

    async def aclose(self) -> None:
        await self._client.aclose()
