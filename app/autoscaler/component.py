"""The autoscaler capability: a loop that feeds the pure engine from the cluster view and Prometheus.

Each cycle: read variants from the cluster view, take a metrics snapshot (cached, refreshed in the
background), decide per model, apply the zero rules, stabilise per variant, export `wva_*`, log one line
per decision, and (leader only) write the VariantAutoscaling status. A change to the capacity or the
scale-to-zero ConfigMap reloads it and triggers a cycle at once.

A second, much faster loop (leader only) watches the gateway's queue while some model is at zero and wakes
its cheapest variant at once: the desired count is exported immediately and, with
`--autoscaler-wake-direct`, the Deployment is scaled 0 -> 1 through `/scale`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from typing import Any

import httpx
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
from app.autoscaler.inventory import VariantInfo, build_variants, unresolved
from app.autoscaler.queueing import max_rate, slo_view
from app.autoscaler.saturation import (
    Action,
    Decision,
    EngineParams,
    QueueingInput,
    Reason,
    Variant,
    decide,
    group_models,
)
from app.autoscaler.stabilize import Stabilizer
from app.autoscaler.status import status_patch, unresolved_status, variant_status
from app.autoscaler.zero import (
    UNSTABILISED,
    ScaleToZeroConfig,
    ZeroInput,
    at_zero,
    enforce,
    enforce_model,
    models_at_zero,
    parse_scale_to_zero_config,
    prom_duration,
)
from app.cluster.base import ApiError, ClusterEvent, ClusterView, Obj
from app.context import AppContext
from app.loops import PeriodicLoop
from app.settings import Settings

log = logging.getLogger(__name__)


#: what a failed Prometheus answer raises through the sources
FETCH_ERRORS = (httpx.HTTPError, RuntimeError, ValueError)
#: a Deployment scaled 0 -> 1 directly is not scaled again for this long (the watch may lag)
WAKE_MEMO_S = 30.0


def _avg(total: float, count: float) -> float:
    return total / count if count > 0 else 0.0


def _live(cluster: ClusterView) -> bool:
    """Against a live API server (not a snapshot): only then is status written by default."""
    kube = sys.modules.get("app.cluster.kube")
    return kube is not None and isinstance(cluster, kube.KubeCluster)


def _env_scale_to_zero(setting: bool | None) -> bool:
    """The environment level of the scale-to-zero precedence: our setting, else WVA's variable."""
    if setting is not None:
        return setting
    return os.environ.get("WVA_SCALE_TO_ZERO", "").strip().lower() == "true"


class AutoscalerComponent:
    """Saturation autoscaler (issue 5). `GET /autoscaler/decisions` shows the last cycle."""

    name = "autoscaler"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.params = EngineParams(stale_after_s=settings.autoscaler_stale_after)
        self.stabilizer = Stabilizer(settings.scale_up_stabilization, settings.scale_down_stabilization)
        self.exporter = Exporter()
        self.configs = CapacityConfigSet()
        self.zero_config = ScaleToZeroConfig(env_enabled=_env_scale_to_zero(settings.scale_to_zero))
        self.source: MetricsSource | None = None
        #: None until start: then on against a live cluster unless the setting says otherwise
        self.write_status: bool | None = settings.autoscaler_write_status
        self.wake_direct = settings.autoscaler_wake_direct
        #: wall clock for staleness and stabilisation windows; the demo swaps in simulated time
        self.clock: Callable[[], float] = time.time
        self.last_decisions: list[Decision] = []
        self.last_view: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_snapshot: MetricsSnapshot | None = None
        self.last_zero: dict[tuple[str, str], ZeroInput] = {}
        #: unix time of the newest snapshot fetched without error (0: none yet)
        self.last_good_fetch = 0.0
        #: a config was loaded once; `config_error` says why the latest ConfigMap change was not applied
        self.config_loaded = False
        self.config_error: str | None = None
        self.cycles = 0
        #: the scale-from-zero poll: counters and the last answer (shown by describe())
        self.wake: dict[str, Any] = {"polls": 0, "queries": 0, "queued": {}, "woken": 0, "error": None}
        self.status_writes: dict[str, Any] = {"patched": 0, "failed": 0, "last_error": None}
        self._woken_at: dict[tuple[str, str], float] = {}
        self._zero_models: tuple[int, dict[tuple[str, str], list[Variant]]] | None = None
        self._status_warned_at = -math.inf
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._refresher: PeriodicLoop | None = None
        self._waker: PeriodicLoop | None = None
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
        if self.write_status is None:
            self.write_status = _live(ctx.cluster)
        self.reload_config()
        self.reload_zero_config()
        ctx.cluster.add_listener(self._on_event)
        # leader only: wva_* are read by HPA/KEDA as a sum over scraped replicas, and status is written
        leading = lambda: ctx.leadership.is_leader  # noqa: E731
        ctx.leadership.add_listener(self._on_leadership)
        self._loop = PeriodicLoop(
            "autoscaler",
            self.settings.autoscaler_interval,
            self.run_cycle,
            on_cycle=self._observe,
            gate=leading,
        )
        self._loop.start()
        # scale from zero: polled far more often than the cycle, and only the leader acts
        self._waker = PeriodicLoop(
            "autoscaler-wake",
            self.settings.autoscaler_wake_interval,
            self.wake_cycle,
            run_at_start=False,
            gate=lambda: ctx.leadership.is_leader,
        )
        self._waker.start()
        if isinstance(self.source, PrometheusSource):
            # background fetching: cycles find a fresh snapshot instead of waiting on the network
            src = self.source
            self._refresher = PeriodicLoop(
                "autoscaler-metrics",
                self.settings.autoscaler_metrics_ttl,
                src.refresh,
                run_at_start=False,
                gate=leading,
            )
            self._refresher.start()
        log.info(
            "autoscaler started",
            extra={
                "interval_s": self.settings.autoscaler_interval,
                "wake_interval_s": self.settings.autoscaler_wake_interval,
                "wake_direct": self.wake_direct,
                "write_status": self.write_status,
                "source": type(self.source).__name__,
            },
        )

    async def stop(self) -> None:
        if self._ctx is not None:
            self._ctx.cluster.remove_listener(self._on_event)
        for loop in (self._waker, self._refresher, self._loop):
            if loop is not None:
                await loop.stop()
        if isinstance(self.source, PrometheusSource):
            await self.source.aclose()

    def _on_leadership(self, leading: bool) -> None:
        """A replica that stops leading drops its wva_* series (else HPA/KEDA would sum stale values);
        one that starts leading runs a cycle at once."""
        if not leading:
            self.exporter.publish([])
            self.exporter.publish_view([])
        elif self._loop is not None:
            self._loop.trigger()

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
        for warn in self.configs.warnings:
            log.warning(
                "capacity config uses an older key",
                extra={"problem": warn, "configmap": self.settings.capacity_config_name},
            )
        log.info(
            "capacity config loaded",
            extra={"default_source": self.configs.default_source, "overrides": len(self.configs.overrides)},
        )
        return self.configs

    def reload_zero_config(self) -> ScaleToZeroConfig:
        """Re-read the scale-to-zero ConfigMap (WVA's `wva-model-scale-to-zero-config`)."""
        assert self._ctx is not None
        name = self.settings.scale_to_zero_config_name
        cm = self._ctx.cluster.get("ConfigMap", name, self.settings.namespace)
        self.zero_config = parse_scale_to_zero_config(
            None if cm is None else (cm.get("data") or {}),
            _env_scale_to_zero(self.settings.scale_to_zero),
        )
        for err in self.zero_config.errors:
            log.warning("scale-to-zero config", extra={"problem": err, "configmap": name})
        log.info(
            "scale-to-zero config loaded",
            extra={"found": cm is not None, "models": len(self.zero_config.models)},
        )
        return self.zero_config

    def _on_event(self, event: ClusterEvent) -> None:
        """Called by the cluster view (possibly from a watch thread): reload on our ConfigMaps, then cycle."""
        if event.kind != "ConfigMap":
            return
        meta = event.obj.get("metadata") or {}
        if meta.get("namespace") != self.settings.namespace:
            return
        if meta.get("name") == self.settings.capacity_config_name:
            self.reload_config()
        elif meta.get("name") == self.settings.scale_to_zero_config_name:
            self.reload_zero_config()
        else:
            return
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
            variants = [i.variant for i in infos]
            zero = await self._zero_inputs(variants)
            raw = enforce(decide(variants, self.configs, self.params, queueing), zero)
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
            self.last_zero = zero
            self.cycles += 1
        await self._wake_directly(decisions, now)
        if self._may_write():
            await self._write_status(decisions, now, snapshot.error)
            await self._write_unresolved(now)
        return decisions

    def _may_write(self) -> bool:
        return bool(self.write_status) and self._ctx is not None and self._ctx.leadership.is_leader

    async def _zero_inputs(self, variants: Sequence[Variant]) -> dict[tuple[str, str], ZeroInput]:
        """Per model: scale-to-zero switch and retention, its request count, the gateway queue. One query
        per distinct retention (only for models with replicas and scale-to-zero on) and one queue query
        (only when some model is at zero): the count does not grow with the number of models."""
        assert self.source is not None
        groups = group_models(variants)
        cfg = self.zero_config
        windows = sorted(
            {
                cfg.retention_s(model, ns)
                for (ns, model), vs in groups.items()
                if cfg.enabled(model, ns) and not at_zero(vs)
            }
        )
        counts: dict[float, dict[tuple[str, str], float] | None] = {}
        problems: dict[float, str] = {}
        for window in windows:
            try:
                counts[window] = await self.source.request_counts(prom_duration(window))
            except FETCH_ERRORS as exc:
                counts[window], problems[window] = None, f"request count query failed: {exc}"
        queued: dict[str, float] | None = {}
        queue_problem = None
        if any(at_zero(vs) for vs in groups.values()):
            try:
                queued = await self.source.queue_sizes()
            except FETCH_ERRORS as exc:
                queued, queue_problem = None, f"gateway queue query failed: {exc}"
        out: dict[tuple[str, str], ZeroInput] = {}
        for ns, model in groups:
            window = cfg.retention_s(model, ns)
            found = counts.get(window)
            out[(ns, model)] = ZeroInput(
                enabled=cfg.enabled(model, ns),
                retention_s=window,
                requests=None if found is None else found.get((ns, model)),
                queued=None if queued is None else queued.get(model, 0.0),
                problem=problems.get(window) or queue_problem,
            )
        return out

    # -- scale from zero ---------------------------------------------------------------------------
    async def wake_cycle(self) -> list[Decision]:
        """One poll: for each model at zero with requests queued at the gateway, its cheapest variant's
        desired becomes 1 now (exported at once; scaled 0 -> 1 directly with wake_direct)."""
        assert self._ctx is not None and self.source is not None
        now = self.clock()
        groups = self._models_at_zero(now)
        self.wake["polls"] += 1
        if not groups:
            self.wake["queued"] = {}
            return []
        self.wake["queries"] += 1
        try:
            queued = await self.source.queue_sizes()
            self.wake["error"] = None
        except FETCH_ERRORS as exc:
            self.wake["error"] = f"{type(exc).__name__}: {exc}"
            return []
        self.wake["queued"] = {m: q for (_, m) in groups if (q := queued.get(m, 0.0)) > 0}
        changed: list[Decision] = []
        woken: list[Decision] = []
        async with self._lock:
            last = {d.key: d for d in self.last_decisions}
            for (ns, model), variants in groups.items():
                q = queued.get(model, 0.0)
                if q <= 0:
                    continue
                held = [Decision(v, v.current, Action.NONE, (), None) for v in variants]
                zero = ZeroInput(
                    enabled=self.zero_config.enabled(model, ns),
                    retention_s=self.zero_config.retention_s(model, ns),
                    queued=q,
                )
                for d in enforce_model(held, zero):
                    woken.append(d)
                    before = last.get(d.key)
                    if before is not None and (before.desired, before.code) == (d.desired, d.code):
                        continue  # the last cycle said so already
                    self.exporter.publish_one(d)
                    self._log(d)
                    last[d.key] = d
                    changed.append(d)
            self.last_decisions = list(last.values())
        await self._wake_directly(woken, now)
        if changed and self._may_write():
            await self._write_status(changed, now, None)
        return changed

    async def _wake_directly(self, decisions: Iterable[Decision], now: float) -> None:
        """With wake_direct (leader only): scale each woken variant's Deployment 0 -> 1 through /scale,
        whether the wake poll or the full cycle decided it first."""
        if not self.wake_direct or self._ctx is None or not self._ctx.leadership.is_leader:
            return
        for d in decisions:
            if d.code is Reason.SCALE_FROM_ZERO and d.desired >= 1 and d.variant.current == 0:
                await self._scale_from_zero(d, now)

    def _models_at_zero(self, now: float) -> dict[tuple[str, str], list[Variant]]:
        """Models whose variants are all at 0, recomputed only when the cluster view changed since the
        last poll (a poll every 2 s must cost nothing while nothing changes)."""
        assert self._ctx is not None
        generation = self._ctx.cluster.generation
        if self._zero_models is not None and self._zero_models[0] == generation:
            return self._zero_models[1]
        infos = build_variants(self._ctx.cluster, MetricsSnapshot(), now, with_pods=False)
        groups = models_at_zero(i.variant for i in infos)
        self._zero_models = (generation, groups)
        return groups

    async def _scale_from_zero(self, d: Decision, now: float) -> None:
        """Patch the Deployment's /scale 0 -> 1 (as WVA's scale-from-zero engine), once per WAKE_MEMO_S."""
        assert self._ctx is not None
        v = d.variant
        key = (v.namespace, v.deployment)
        if now - self._woken_at.get(key, -math.inf) < WAKE_MEMO_S:
            return
        deploy = self._ctx.cluster.get("Deployment", v.deployment, v.namespace)
        if deploy is None or int((deploy.get("spec") or {}).get("replicas") or 0) != 0:
            return
        self._woken_at[key] = now
        where = {"variant": v.name, "deployment": v.deployment, "namespace": v.namespace}
        try:
            await self._ctx.cluster.scale("Deployment", v.deployment, v.namespace, 1)
        except ApiError as exc:
            log.warning(
                "scale from zero failed",
                extra={**where, "error": str(exc)},
            )
            return
        self.wake["woken"] += 1
        log.info(
            "scaled from zero",
            extra={**where, "model_id": v.model_id},
        )
        await self._ctx.recorder.emit(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": deploy.get("metadata") or {}},
            "ScaledFromZero",
            f"scaled 0 -> 1 for model {v.model_id}: {'; '.join(d.reasons)}",
            min_interval_s=WAKE_MEMO_S,
        )

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
        return self._threadsafe(self.run_cycle, timeout_s)

    def wake_cycle_threadsafe(self, timeout_s: float = 30.0) -> list[Decision]:
        """One scale-from-zero poll on the server's event loop, from another thread (the demo)."""
        return self._threadsafe(self.wake_cycle, timeout_s)

    def _threadsafe(
        self, fn: Callable[[], Coroutine[Any, Any, list[Decision]]], timeout_s: float
    ) -> list[Decision]:
        if self._event_loop is None:
            raise RuntimeError("autoscaler not started")
        return asyncio.run_coroutine_threadsafe(fn(), self._event_loop).result(timeout_s)

    def _stabilize(self, d: Decision, now: float) -> Decision:
        if d.action is Action.HOLD or d.code in UNSTABILISED:
            return d
        value, why = self.stabilizer.stabilize(d.key, d.variant.current, d.desired, now)
        if why is None:
            return d
        action = Action.NONE if value == d.variant.current else d.action
        return replace(d, desired=value, action=action, reasons=(*d.reasons, why), code=Reason.STABILIZED)

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

    async def _write_status(self, decisions: Iterable[Decision], now: float, fetch_error: str | None) -> None:
        """VariantAutoscaling status of each decided variant, only where a person would see a change."""
        assert self._ctx is not None
        jobs = []
        for d in decisions:
            v = d.variant
            va = self._ctx.cluster.get("VariantAutoscaling", v.name, v.namespace)
            if va is None:
                continue
            new = variant_status(d, now, self.params.stale_after_s, fetch_error)
            patch = status_patch(va.get("status"), new, now, self.settings.autoscaler_status_refresh)
            if patch is not None:
                jobs.append(self._patch_status(v.name, v.namespace, patch))
        await _bounded(jobs)

    async def _write_unresolved(self, now: float) -> None:
        """TargetNotFound / InvalidConfiguration on VariantAutoscalings the engine cannot use."""
        assert self._ctx is not None
        jobs = []
        for va, why in unresolved(self._ctx.cluster):
            meta = va.get("metadata") or {}
            new = unresolved_status(why, now)
            patch = status_patch(va.get("status"), new, now, self.settings.autoscaler_status_refresh)
            if patch is not None:
                jobs.append(self._patch_status(str(meta.get("name")), str(meta.get("namespace")), patch))
        await _bounded(jobs)

    async def _patch_status(self, name: str, namespace: str, patch: Obj) -> None:
        assert self._ctx is not None
        try:
            await self._ctx.cluster.patch("VariantAutoscaling", name, namespace, patch)
            self.status_writes["patched"] += 1
        except (ApiError, NotImplementedError) as exc:
            self.status_writes["failed"] += 1
            self.status_writes["last_error"] = str(exc)
            forbidden = isinstance(exc, ApiError) and exc.status == 403
            now = time.monotonic()
            if not forbidden or now - self._status_warned_at > 600:  # RBAC missing: once per 10 min
                self._status_warned_at = now if forbidden else self._status_warned_at
                log.warning(
                    "VariantAutoscaling status patch failed",
                    extra={
                        "variant": name,
                        "namespace": namespace,
                        "error": str(exc),
                        "hint": "grant patch on variantautoscalings/status (see manifests/base/"
                        "rbac-autoscaler.yaml) or set autoscaler_write_status: false"
                        if forbidden
                        else None,
                    },
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
        zero = self.zero_config
        return {
            "cycles": self.cycles,
            "write_status": self.write_status,
            "status_writes": dict(self.status_writes),
            "scale_to_zero": {
                "default": vars(zero.default),
                "models": {f"{ns or '*'}/{m}": vars(e) for (ns, m), e in zero.models.items()},
                "environment": zero.env_enabled,
                "errors": list(zero.errors),
                "per_model": {f"{ns}/{m}": vars(z) for (ns, m), z in self.last_zero.items()},
            },
            "wake": {
                **self.wake,
                "interval_s": self.settings.autoscaler_wake_interval,
                "direct": self.wake_direct,
            },
            "config": {
                "default_source": self.configs.default_source,
                "default": vars(self.configs.default),
                "overrides": {f"{ns}/{m}": vars(c) for (ns, m), c in self.configs.overrides.items()},
                "errors": list(self.configs.errors),
                "warnings": list(self.configs.warnings),
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
        "reason": d.code.value,
        "reasons": list(d.reasons),
        "spare_kv": None if a is None else round(a.spare_kv, 4),
        "spare_queue": None if a is None else round(a.spare_queue, 3),
    }


async def _bounded(jobs: Sequence[Awaitable[None]], limit: int = 8) -> None:
    """Run the writes a few at a time: 1,000 first-cycle status patches must not queue 1,000 requests."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Awaitable[None]) -> None:
        async with sem:
            await job

    await asyncio.gather(*(one(j) for j in jobs))
