"""The autoscaler capability: a loop that feeds the pure engine from the cluster view and Prometheus.

Each cycle: read variants from the cluster view, take a metrics snapshot (cached, refreshed in the
background), decide per model, stabilise per variant, export `wva_*`, log one line per decision, and
optionally patch the VariantAutoscaling status. A change to the capacity ConfigMap reloads the config and
triggers a cycle at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from app.autoscaler.collector import MetricsSnapshot, MetricsSource, NoSource, PrometheusSource
from app.autoscaler.config import CapacityConfigSet, parse_capacity_config, unreadable_entries
from app.autoscaler.exporter import (
    CONFIG_ERRORS,
    CONFIG_RELOAD_ERRORS,
    CYCLE_SECONDS,
    METRICS_LAST_SUCCESS,
    METRICS_STALE,
    Exporter,
)
from app.autoscaler.inventory import VariantInfo, build_variants
from app.autoscaler.queueing import max_rate, slo_view
from app.autoscaler.saturation import Action, Decision, EngineParams, QueueingInput, decide
from app.autoscaler.stabilize import Stabilizer
from app.cluster.base import ClusterEvent
from app.context import AppContext
from app.loops import PeriodicLoop
from app.settings import Settings

log = logging.getLogger(__name__)


def _avg(total: float, count: float) -> float:
    return total / count if count > 0 else 0.0


class AutoscalerComponent:
    """Saturation autoscaler (issue 5). `GET /autoscaler/decisions` shows the last cycle."""

    name = "autoscaler"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.params = EngineParams(stale_after_s=settings.autoscaler_stale_after)
        self.stabilizer = Stabilizer(settings.scale_up_stabilization, settings.scale_down_stabilization)
        self.exporter = Exporter()
        self.configs = CapacityConfigSet()
        self.source: MetricsSource | None = None
        self.write_status = settings.autoscaler_write_status
        #: wall clock for staleness and stabilisation windows; the demo swaps in simulated time
        self.clock: Callable[[], float] = time.time
        self.last_decisions: list[Decision] = []
        self.last_view: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_snapshot: MetricsSnapshot | None = None
        #: unix time of the newest snapshot fetched without error (0: none yet)
        self.last_good_fetch = 0.0
        #: a config was loaded once; `config_error` says why the latest ConfigMap change was not applied
        self.config_loaded = False
        self.config_error: str | None = None
        self.cycles = 0
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._refresher: PeriodicLoop | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    # -- Component protocol ------------------------------------------------------------------------
    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/autoscaler/decisions")
        async def decisions() -> dict[str, Any]:
            return self.describe()

        return r

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._event_loop = asyncio.get_running_loop()
        if self.source is None:
            url = self.settings.prometheus_url
            self.source = (
                PrometheusSource(url, ttl_s=self.settings.autoscaler_metrics_ttl) if url else NoSource()
            )
        self.reload_config()
        ctx.cluster.add_listener(self._on_event)
        self._loop = PeriodicLoop(
            "autoscaler", self.settings.autoscaler_interval, self.run_cycle, on_cycle=self._observe
        )
        self._loop.start()
        if isinstance(self.source, PrometheusSource):
            # background fetching: cycles find a fresh snapshot instead of waiting on the network
            src = self.source
            self._refresher = PeriodicLoop(
                "autoscaler-metrics", self.settings.autoscaler_metrics_ttl, src.refresh, run_at_start=False
            )
            self._refresher.start()
        log.info(
            "autoscaler started",
            extra={"interval_s": self.settings.autoscaler_interval, "source": type(self.source).__name__},
        )

    async def stop(self) -> None:
        if self._ctx is not None:
            self._ctx.cluster.remove_listener(self._on_event)
        for loop in (self._refresher, self._loop):
            if loop is not None:
                await loop.stop()
        if isinstance(self.source, PrometheusSource):
            await self.source.aclose()

    # -- config ------------------------------------------------------------------------------------
    def reload_config(self) -> CapacityConfigSet:
        """Re-read the capacity ConfigMap; skipped entries are logged, the rest apply at once."""
        assert self._ctx is not None
        name = self.settings.capacity_config_name
        cm = self._ctx.cluster.get("ConfigMap", name, self.settings.namespace)
        data = None if cm is None else (cm.get("data") or {})
        broken = unreadable_entries(data) if isinstance(data, dict) else ["data: not a mapping"]
        if broken and self.config_loaded:
            self.config_error = "; ".join(broken)
            CONFIG_RELOAD_ERRORS.labels(name).inc()
            log.error(
                "capacity config not reloaded: not valid YAML; the previous config stays",
                extra={"configmap": name, "problems": broken},
            )
            return self.configs
        self.configs = parse_capacity_config(data if isinstance(data, dict) else {})
        self.config_loaded, self.config_error = True, None
        CONFIG_ERRORS.set(len(self.configs.errors))
        for err in self.configs.errors:
            log.warning(
                "capacity config", extra={"problem": err, "configmap": self.settings.capacity_config_name}
            )
        log.info(
            "capacity config loaded",
            extra={"default_source": self.configs.default_source, "overrides": len(self.configs.overrides)},
        )
        return self.configs

    def _on_event(self, event: ClusterEvent) -> None:
        """Called by the cluster view (possibly from a watch thread): reload on our ConfigMap, then cycle."""
        if event.kind != "ConfigMap":
            return
        meta = event.obj.get("metadata") or {}
        if (
            meta.get("name") != self.settings.capacity_config_name
            or meta.get("namespace") != self.settings.namespace
        ):
            return
        self.reload_config()
        loop, ev_loop = self._loop, self._event_loop
        if loop is None or ev_loop is None or ev_loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is ev_loop:
            loop.trigger()
        else:
            ev_loop.call_soon_threadsafe(loop.trigger)

    # -- the cycle ---------------------------------------------------------------------------------
    def _observe(self, seconds: float, ok: bool) -> None:
        CYCLE_SECONDS.observe(seconds)

    async def run_cycle(self) -> list[Decision]:
        """One full cycle; returns the (stabilised) decisions."""
        assert self._ctx is not None and self.source is not None
        async with self._lock:
            snapshot = await self.source.snapshot()
            now = self.clock()
            infos = build_variants(self._ctx.cluster, snapshot, now)
            view, queueing = self._model_view(infos)
            raw = decide([i.variant for i in infos], self.configs, self.params, queueing)
            if snapshot.error is not None:  # never act on data we could not refresh
                raw = [self._hold_last(d, snapshot) for d in raw]
            else:
                self.last_good_fetch = snapshot.fetched_at
            METRICS_STALE.set(1 if snapshot.error is not None else 0)
            METRICS_LAST_SUCCESS.set(self.last_good_fetch)
            decisions = [self._stabilize(d, now) for d in raw]
            self.stabilizer.forget({d.key for d in decisions})
            self.exporter.publish(decisions)
            self.exporter.publish_view(
                (
                    n,
                    ns,
                    v["model_id"],
                    v.get("predicted_ttft_ms"),
                    v.get("predicted_itl_ms"),
                    v.get("slo_load_ratio"),
                )
                for (ns, n), v in view.items()
            )
            for d in decisions:
                self._log(d)
            self.last_decisions, self.last_view, self.last_snapshot = decisions, view, snapshot
            self.cycles += 1
        if self.write_status:
            await self._write_status(decisions, now)
        return decisions

    def _hold_last(self, d: Decision, snapshot: MetricsSnapshot) -> Decision:
        """The metrics could not be refreshed: keep the variant's last decided size (its current size the
        first time), say why. Old samples are never acted on twice."""
        prev = next((p for p in self.last_decisions if p.key == d.key), None)
        desired = prev.desired if prev is not None else d.variant.current
        age = (
            f", last good data {self.clock() - self.last_good_fetch:.0f}s old" if self.last_good_fetch else ""
        )
        why = f"hold last decision: metrics stale ({snapshot.error}{age})"
        return replace(d, desired=desired, action=Action.HOLD, reasons=(why,), analysis=None)

    def run_cycle_threadsafe(self, timeout_s: float = 30.0) -> list[Decision]:
        """Run one cycle on the server's event loop from another thread (the demo drives cycles so)."""
        if self._event_loop is None:
            raise RuntimeError("autoscaler not started")
        return asyncio.run_coroutine_threadsafe(self.run_cycle(), self._event_loop).result(timeout_s)

    def _stabilize(self, d: Decision, now: float) -> Decision:
        if d.action is Action.HOLD:
            return d
        value, why = self.stabilizer.stabilize(d.key, d.variant.current, d.desired, now)
        if why is None:
            return d
        action = Action.NONE if value == d.variant.current else d.action
        return replace(d, desired=value, action=action, reasons=(*d.reasons, why))

    def _model_view(
        self, infos: list[VariantInfo]
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], QueueingInput]]:
        """Per variant: observed load, predicted TTFT/ITL, SLO distance; plus the queueing inputs."""
        per_model: dict[tuple[str, str], list[VariantInfo]] = {}
        for info in infos:
            per_model.setdefault((info.variant.namespace, info.variant.model_id), []).append(info)
        view: dict[tuple[str, str], dict[str, Any]] = {}
        queueing: dict[tuple[str, str], QueueingInput] = {}
        for (ns, model_id), group in per_model.items():
            cfg = self.configs.for_model(model_id, ns)
            in_tok = _avg(sum(i.load.prompt_sum for i in group), sum(i.load.prompt_count for i in group))
            out_tok = _avg(sum(i.load.gen_sum for i in group), sum(i.load.gen_count for i in group))
            capacity: dict[str, float] = {}
            for info in group:
                v, load = info.variant, info.load
                row: dict[str, Any] = {
                    "model_id": model_id,
                    "arrival_rate": round(load.arrival_rate, 4),
                    "avg_input_tokens": round(in_tok, 1),
                    "avg_output_tokens": round(out_tok, 1),
                    "observed_ttft_ms": round(1000 * _avg(load.ttft_sum, load.ttft_count), 2) or None,
                    "observed_itl_ms": round(1000 * _avg(load.itl_sum, load.itl_count), 2) or None,
                }
                if info.perf is not None and out_tok > 0:
                    sv = slo_view(
                        info.perf,
                        load.arrival_rate,
                        max(v.current, 1),
                        in_tok,
                        out_tok,
                        cfg.ttft_slo_ms,
                        cfg.itl_slo_ms,
                    )
                    row |= {
                        "predicted_ttft_ms": None if sv.ttft_ms is None else round(sv.ttft_ms, 2),
                        "predicted_itl_ms": None if sv.itl_ms is None else round(sv.itl_ms, 2),
                        "max_rate_per_replica": round(sv.max_rate_per_replica, 4),
                        "slo_load_ratio": None
                        if sv.slo_load_ratio is None or math.isinf(sv.slo_load_ratio)
                        else round(sv.slo_load_ratio, 4),
                    }
                    if cfg.ttft_slo_ms or cfg.itl_slo_ms:
                        capacity[v.name] = (
                            max_rate(info.perf, in_tok, out_tok, cfg.ttft_slo_ms, cfg.itl_slo_ms) * 1000.0
                        )
                view[(v.namespace, v.name)] = row
            if cfg.analyzer == "queueing":
                queueing[(ns, model_id)] = QueueingInput(
                    rate=sum(i.load.arrival_rate for i in group), capacity=capacity
                )
        return view, queueing

    def _log(self, d: Decision) -> None:
        extra = _decision_fields(d)
        # changes and holds at INFO; steady "none" at DEBUG so 1,000 variants do not flood the log
        level = logging.DEBUG if d.action is Action.NONE and d.desired == d.variant.current else logging.INFO
        log.log(level, "scaling decision", extra=extra)

    async def _write_status(self, decisions: list[Decision], now: float) -> None:
        """Optional: VariantAutoscaling status.desiredOptimizedAlloc + OptimizationReady, only on change."""
        assert self._ctx is not None
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for d in decisions:
            v = d.variant
            va = self._ctx.cluster.get("VariantAutoscaling", v.name, v.namespace)
            if va is None:
                continue
            alloc = (va.get("status") or {}).get("desiredOptimizedAlloc") or {}
            if alloc.get("numReplicas") == d.desired and alloc.get("accelerator") == v.accelerator:
                continue
            held = d.action is Action.HOLD
            patch = {
                "status": {
                    "desiredOptimizedAlloc": {
                        "lastRunTime": stamp,
                        "accelerator": v.accelerator,
                        "numReplicas": d.desired,
                    },
                    "conditions": [
                        {
                            "type": "OptimizationReady",
                            "status": "False" if held else "True",
                            "reason": "MetricsMissing" if held else "OptimizationSucceeded",
                            "message": "; ".join(d.reasons)[:1000],
                            "lastTransitionTime": stamp,
                        }
                    ],
                }
            }
            try:
                await self._ctx.cluster.patch("VariantAutoscaling", v.name, v.namespace, patch)
            except Exception as exc:
                log.warning(
                    "VariantAutoscaling status patch failed", extra={"variant": v.name, "error": str(exc)}
                )

    # -- read side ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON of the last cycle (the router and the demo show it)."""
        snap = self.last_snapshot
        rows = []
        for d in self.last_decisions:
            v = d.variant
            rows.append(
                {
                    **_decision_fields(d),
                    "ready": v.ready,
                    "replicas": [
                        {
                            "pod": r.pod,
                            "ready": r.ready,
                            "kv": None if r.metrics is None else r.metrics.kv,
                            "queue": None if r.metrics is None else r.metrics.queue,
                            "age_s": None if r.metrics is None else r.metrics.age_s,
                        }
                        for r in v.replicas
                    ],
                    "model_view": self.last_view.get((v.namespace, v.name)),
                }
            )
        return {
            "cycles": self.cycles,
            "config": {
                "default_source": self.configs.default_source,
                "default": vars(self.configs.default),
                "overrides": {f"{ns}/{m}": vars(c) for (ns, m), c in self.configs.overrides.items()},
                "errors": list(self.configs.errors),
                "reload_error": self.config_error,
            },
            "metrics": None
            if snap is None
            else {
                "fetched_at": snap.fetched_at,
                "pods": len(snap.pods),
                "error": snap.error,
                "stale": snap.error is not None,
                "last_success": self.last_good_fetch or None,
            },
            "decisions": rows,
        }


def _decision_fields(d: Decision) -> dict[str, Any]:
    """One decision as flat fields: the structured log line and GET /autoscaler/decisions say the same."""
    v, a = d.variant, d.analysis
    return {
        "variant": v.name,
        "namespace": v.namespace,
        "model_id": v.model_id,
        "accelerator": v.accelerator,
        "cost": v.cost,
        "current": v.current,
        "desired": d.desired,
        "action": d.action.value,
        "reasons": list(d.reasons),
        "spare_kv": None if a is None else round(a.spare_kv, 4),
        "spare_queue": None if a is None else round(a.spare_queue, 3),
    }
