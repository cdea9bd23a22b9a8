"""The waste capability: every `waste_interval` seconds (30 s), score each GPU a pod holds over the last
`waste_window` (10 min) and export `gpu_autoscaler_waste_score{namespace, pod, node, gpu}` (0..100). A pod
whose compute use stayed under `waste_flag_use` for `waste_flag_for` with a score over `waste_flag_score` is
flagged: `gpu_autoscaler_waste_flagged` = 1 and a Warning Event `GPUWasteful` on the pod (reason, score, the
MIG profile its use fits and the monthly saving), at most one per pod per `waste_event_interval`.

The loop runs on the leader only (it writes Events). Without `prometheus_url` it logs once and does nothing.
`GET /waste` shows the last cycle's scores with their reasons and the flagged pods.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any, Protocol

from fastapi import APIRouter
from prometheus_client import Gauge

from app.context import AppContext
from app.cost.prices import PriceTable, load_prices
from app.loops import PeriodicLoop
from app.metrics import REGISTRY
from app.ops.inventory import cluster_facts
from app.settings import Settings
from app.waste.collector import WasteCollector
from app.waste.flag import REASON, WasteFlag, flag, holders
from app.waste.score import GpuUse, WasteScore, waste_scores

log = logging.getLogger(__name__)

WASTE_SCORE = Gauge(
    "gpu_autoscaler_waste_score",
    "How much of a GPU (or MIG slice) a pod holds goes unused over the window, 0..100",
    ["namespace", "pod", "node", "gpu"],
    registry=REGISTRY,
)
WASTE_FLAGGED = Gauge(
    "gpu_autoscaler_waste_flagged",
    "1 while a held GPU is flagged wasteful (use under waste_flag_use for waste_flag_for, score over "
    "waste_flag_score)",
    ["namespace", "pod", "node", "gpu"],
    registry=REGISTRY,
)


class UseSource(Protocol):
    """Where window averages come from (the Prometheus collector; a fake in tests)."""

    async def fetch(self) -> list[GpuUse]: ...


class WasteComponent:
    """Periodic waste scoring; exports the gauges, tells flagged pods, keeps the last cycle for `/waste`."""

    name = "waste"

    def __init__(self, settings: Settings, source: UseSource | None = None) -> None:
        self.settings = settings
        self.source = source
        self.last: list[WasteScore] = []
        #: the last cycle's DCGM use per held GPU (the cost capability splits shared GPUs by it)
        self.uses: list[GpuUse] = []
        self.flagged: list[WasteFlag] = []
        self.prices: PriceTable | None = None
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._exported: set[tuple[str, str, str, str]] = set()
        self._flag_exported: set[tuple[str, str, str, str]] = set()

    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/waste")
        async def waste() -> dict[str, Any]:
            return self.describe()

        return r

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self._loop is not None,
            "window": self.settings.waste_window,
            "scores": [asdict(s) for s in self.last],
            "flagged": [self._flag_doc(f) for f in self.flagged],
        }

    def _flag_doc(self, f: WasteFlag) -> dict[str, Any]:
        s = f.score
        return {
            "namespace": s.namespace,
            "pod": s.pod,
            "node": s.node,
            "gpu": s.gpu,
            "score": s.score,
            "peak_compute": round(f.peak, 4),
            "suggestion": f.suggestion,
            "profile": f.fit.profile,
            "monthly_saving_usd": f.monthly_saving_usd,
            "message": f.message(self.settings.waste_flag_for, self.settings.waste_flag_use),
        }

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if self.source is None:
            if not self.settings.prometheus_url:
                log.info("waste scoring off: no prometheus_url", extra={"component": self.name})
                return
            self.source = WasteCollector(
                self.settings.prometheus_url,
                self.settings.waste_window,
                flag_for=self.settings.waste_flag_for,
            )
        if self.prices is None:
            self.prices = load_prices(self.settings.prices_file)
        # leader only: one replica's scores, not one series per replica
        ctx.leadership.add_listener(self._on_leadership)
        self._loop = PeriodicLoop(
            "waste", self.settings.waste_interval, self.cycle, gate=lambda: ctx.leadership.is_leader
        )
        self._loop.start()

    def _on_leadership(self, leading: bool) -> None:
        """A replica that stops leading drops its waste series; one that starts scores at once."""
        if not leading:
            self._drop_series()
        elif self._loop is not None:
            self._loop.trigger()

    def _drop_series(self) -> None:
        for labels in self._exported:
            WASTE_SCORE.remove(*labels)
        self._exported = set()
        for labels in self._flag_exported:
            WASTE_FLAGGED.remove(*labels)
        self._flag_exported = set()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if isinstance(self.source, WasteCollector):
            await self.source.aclose()
        self._drop_series()  # a stopped component exports nothing

    def _node_of(self, use: GpuUse) -> GpuUse:
        """The pod's node from the cluster view (authoritative) when the series lacks or disagrees on it."""
        if self._ctx is None:
            return use
        pod = self._ctx.cluster.get("Pod", use.pod, use.namespace)
        spec = pod.get("spec") if isinstance(pod, dict) else None
        node = str(spec.get("nodeName") or "") if isinstance(spec, dict) else ""
        return replace(use, node=node) if node and node != use.node else use

    async def cycle(self) -> list[WasteScore]:
        """One pass: fetch, score, replace the exported series (vanished pods drop out), flag, tell."""
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
        self.uses = uses
        self.flagged = self._flag(scores, uses)
        flagged = {(f.score.namespace, f.score.pod, f.score.node, f.score.gpu) for f in self.flagged}
        for labels in self._flag_exported - flagged:
            WASTE_FLAGGED.remove(*labels)
        for labels in flagged:
            WASTE_FLAGGED.labels(*labels).set(1)
        self._flag_exported = flagged
        await self._tell(self.flagged)
        idle = [f"{s.namespace}/{s.pod}:{s.gpu}" for s in scores if s.idle]
        log.info(
            "waste scored",
            extra={
                "gpus": len(scores),
                "idle": idle[:20],
                "idle_count": len(idle),
                "flagged": [f"{f.score.namespace}/{f.score.pod}:{f.score.gpu}" for f in self.flagged][:20],
            },
        )
        return scores

    def _flag(self, scores: list[WasteScore], uses: list[GpuUse]) -> list[WasteFlag]:
        if self._ctx is None:
            return []
        cluster = self._ctx.cluster
        facts = cluster_facts(cluster.list("Node"), cluster.list("Pod"), cluster.source)
        s = self.settings
        return flag(
            scores,
            uses,
            holders(facts),
            self.prices or load_prices(s.prices_file),
            use_below=s.waste_flag_use,
            score_over=s.waste_flag_score,
            threshold=s.mig_underuse_threshold,
            headroom=s.mig_headroom,
        )

    async def _tell(self, flagged: list[WasteFlag]) -> None:
        """A Warning Event per flagged pod (its most wasteful GPU), throttled per pod by the recorder."""
        if self._ctx is None:
            return
        told: set[tuple[str, str]] = set()
        for f in flagged:  # most wasteful first
            key = (f.score.namespace, f.score.pod)
            if key in told:
                continue
            told.add(key)
            pod = self._ctx.cluster.get("Pod", f.score.pod, f.score.namespace)
            if pod is None:
                continue
            obj = {"kind": "Pod", "apiVersion": "v1", **pod}
            await self._ctx.recorder.emit(
                obj,
                REASON,
                f.message(self.settings.waste_flag_for, self.settings.waste_flag_use),
                type="Warning",
                min_interval_s=self.settings.waste_event_interval,
                action="Flagged",
            )
