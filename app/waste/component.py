"""The waste capability: every `waste_interval` seconds, score each GPU a pod holds and export
`gpu_autoscaler_waste_score{namespace, pod, node, gpu}` (0..100). Without `prometheus_url` it logs once and
does nothing. `GET /waste` shows the last cycle's scores with their reasons.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any, Protocol

from fastapi import APIRouter
from prometheus_client import Gauge

from app.context import AppContext
from app.loops import PeriodicLoop
from app.metrics import REGISTRY
from app.settings import Settings
from app.waste.collector import WasteCollector
from app.waste.score import GpuUse, WasteScore, waste_scores

log = logging.getLogger(__name__)

WASTE_SCORE = Gauge(
    "gpu_autoscaler_waste_score",
    "How much of a GPU (or MIG slice) a pod holds goes unused over the window, 0..100",
    ["namespace", "pod", "node", "gpu"],
    registry=REGISTRY,
)


class UseSource(Protocol):
    """Where window averages come from (the Prometheus collector; a fake in tests)."""

    async def fetch(self) -> list[GpuUse]: ...


class WasteComponent:
    """Periodic waste scoring; exports the gauge, keeps the last scores for `/waste`."""

    name = "waste"

    def __init__(self, settings: Settings, source: UseSource | None = None) -> None:
        self.settings = settings
        self.source = source
        self.last: list[WasteScore] = []
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._exported: set[tuple[str, str, str, str]] = set()

    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/waste")
        async def waste() -> dict[str, Any]:
            return {"scores": [asdict(s) for s in self.last], "enabled": self._loop is not None}

        return r

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if self.source is None:
            if not self.settings.prometheus_url:
                log.info("waste scoring off: no prometheus_url", extra={"component": self.name})
                return
            self.source = WasteCollector(self.settings.prometheus_url, self.settings.waste_window)
        self._loop = PeriodicLoop("waste", self.settings.waste_interval, self.cycle)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if isinstance(self.source, WasteCollector):
            await self.source.aclose()

    def _node_of(self, use: GpuUse) -> GpuUse:
        """The pod's node from the cluster view (authoritative) when the series lacks or disagrees on it."""
        if self._ctx is None:
            return use
        pod = self._ctx.cluster.get("Pod", use.pod, use.namespace)
        spec = pod.get("spec") if isinstance(pod, dict) else None
        node = str(spec.get("nodeName") or "") if isinstance(spec, dict) else ""
        return replace(use, node=node) if node and node != use.node else use

    async def cycle(self) -> list[WasteScore]:
        """One scoring pass: fetch, score, replace the exported series (vanished pods drop out)."""
        assert self.source is not None
        uses = [self._node_of(u) for u in await self.source.fetch()]
        scores = waste_scores(uses)
        fresh = {(s.namespace, s.pod, s.node, s.gpu) for s in scores}
        for labels in self._exported - fresh:
            WASTE_SCORE.remove(*labels)
        for s in scores:
            WASTE_SCORE.labels(s.namespace, s.pod, s.node, s.gpu).set(s.score)
        self._exported = fresh
        self.last = scores
        idle = [f"{s.namespace}/{s.pod}:{s.gpu}" for s in scores if s.idle]
        log.info("waste scored", extra={"gpus": len(scores), "idle": idle[:20], "idle_count": len(idle)})
        return scores
