"""The webhook capability: wires the pure decision to the cluster view, the history cache and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter, Histogram

from app.bad_objects import BAD
from app.context import AppContext
from app.gpu.mig import offered_profiles
from app.metrics import REGISTRY
from app.settings import Settings
from app.tasks import cancel_and_wait
from webhook.decide import Outcome, Params, decide, fail_open, history_key
from webhook.history import HistoryResult, HistorySource, PrometheusHistory, UsageHistory
from webhook.models import ReviewError, parse_review
from webhook.share import PoolOffer, pool_offers

log = logging.getLogger(__name__)

RECENT = 100

MUTATIONS = Counter(
    "gpu_autoscaler_webhook_mutations_total",
    "Admission reviews answered by the MIG webhook, by outcome and applied profile ('none' if unchanged)",
    ["outcome", "profile"],
    registry=REGISTRY,
)
REVIEW_SECONDS = Histogram(
    "gpu_autoscaler_webhook_review_seconds",
    "Time to answer one admission review (parse, history lookup, decision)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
HISTORY_LOOKUPS = Counter(
    "gpu_autoscaler_webhook_history_lookups_total",
    "Usage-history lookups by cache status (hit, stale, miss, timeout, error, disabled)",
    ["status"],
    registry=REGISTRY,
)


class WebhookComponent:
    """POST /mutate. History comes from Prometheus when `prometheus_url` is set; the demo plugs its own."""

    name = "webhook"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.params = Params(
            threshold=settings.mig_underuse_threshold,
            headroom=settings.mig_headroom,
            sharing_strategy=settings.sharing_strategy,
        )
        self.history = UsageHistory(
            None,
            ttl=settings.history_cache_ttl_seconds,
            timeout=settings.history_timeout_seconds,
            reprobe=settings.history_reprobe_seconds,
        )
        self._ctx: AppContext | None = None
        self._offers: tuple[int, dict[str, frozenset[str]]] = (-1, {})
        self._pool: tuple[int, list[PoolOffer]] = (-1, [])
        #: (time, "slice" | "share" | "wanted", profile or milli): what admission chose lately, the MIG and
        #: sharing controllers' recent demand (only reviews that are not dry-run)
        self.journal: deque[tuple[float, str, str]] = deque(maxlen=20_000)
        self._refresher: asyncio.Task[None] | None = None
        #: the last reviews' decisions with their reasons (the console, GET /webhook/decisions)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def router(self) -> APIRouter:
        from webhook.routes import build_router

        return build_router(self)

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if self.settings.prometheus_url and self.history.source is None:
            self.history.set_source(
                PrometheusHistory(self.settings.prometheus_url, self.settings.history_window)
            )
        self._refresher = asyncio.get_running_loop().create_task(self.history.run_refresher())
        log.info("webhook started", extra={"history": self.history.label, **vars(self.params)})

    async def stop(self) -> None:
        await cancel_and_wait(self._refresher)
        await self.history.close()

    def describe(self) -> dict[str, Any]:
        """The last reviews, newest first: outcome, profile and reasons, as logged."""
        return {"recent": list(reversed(self.recent)), "history": self.history.label}

    def set_history_source(self, source: HistorySource | None) -> None:
        """Plug a history source (the demo's recorded one, tests' fakes)."""
        self.history.set_source(source)

    # -- cluster facts, cached per cluster-view generation ---------------------------------------
    def offers(self) -> dict[str, frozenset[str]]:
        if self._ctx is None:
            return {}
        cluster = self._ctx.cluster
        gen, cached = self._offers
        if gen != cluster.generation:
            nodes = cluster.list("Node")
            try:
                cached = offered_profiles(nodes)
            except Exception:  # one malformed Node: read the others, report it
                cached = _offers_skipping_bad(nodes)
            self._offers = (cluster.generation, cached)
        return cached

    def pool(self) -> list[PoolOffer]:
        """What the nodes sharing GPUs (with the configured strategy) offer, per cluster-view generation."""
        if self._ctx is None:
            return []
        cluster = self._ctx.cluster
        gen, cached = self._pool
        if gen != cluster.generation:
            cached = pool_offers(cluster.list("Node"), self.params.sharing_strategy)
            self._pool = (cluster.generation, cached)
        return cached

    def note(self, outcome: Outcome, now: float | None = None) -> None:
        """Remember what one (non dry-run) review chose, for the controllers' demand."""
        at = time.time() if now is None else now
        for profile in outcome.slices:
            self.journal.append((at, "slice", profile))
        share = outcome.share
        if share is not None and share.wanted:
            self.journal.append((at, "share" if share.milli else "wanted", str(share.wanted)))

    def recent_slices(self, since: float) -> dict[str, int]:
        """MIG slices chosen since `since` (epoch seconds), per profile. Called from the MIG planner's
        thread: `tuple()` copies the journal in one step, so admissions appending meanwhile are safe."""
        return dict(Tally(v for t, kind, v in tuple(self.journal) if kind == "slice" and t >= since))

    def recent_wanted_shares(self, since: float) -> list[int]:
        """Shares (milli) wanted since `since` while no sharing node could take them (any thread)."""
        return [int(v) for t, kind, v in tuple(self.journal) if kind == "wanted" and t >= since]

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        if self._ctx is None or not namespace:
            return None
        ns = self._ctx.cluster.get("Namespace", namespace)
        if ns is None:
            return None
        labels: Mapping[str, str] = (ns.get("metadata") or {}).get("labels") or {}
        return labels

    def over_budget(self, body: bytes, budget_s: float) -> tuple[int, dict[str, Any]]:
        """The answer when a review overran its budget: allowed, unchanged, with a warning saying so."""
        try:
            review = parse_review(json.loads(body))
        except (ValueError, ReviewError) as exc:
            return 400, {"error": f"body: {exc}"}
        MUTATIONS.labels("timeout", "none").inc()
        log.warning("webhook review over budget; admitted unchanged", extra={"uid": review.request.uid})
        response = fail_open(review.request.uid, f"no decision within {budget_s:g}s; pod left unchanged")
        return 200, {
            "apiVersion": review.apiVersion,
            "kind": "AdmissionReview",
            "response": response.model_dump(exclude_none=True),
        }

    # -- one review ------------------------------------------------------------------------------
    async def handle(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one POST /mutate. Malformed -> 400; otherwise always allowed."""
        started = time.perf_counter()
        try:
            raw = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return 400, {"error": f"body: not valid JSON: {exc}"}
        try:
            review = parse_review(raw)
        except ReviewError as exc:
            log.info("webhook malformed review", extra={"error": str(exc)})
            return 400, {"error": str(exc), "field": exc.field}
        req = review.request
        try:
            ns_labels = self.namespace_labels(req.namespace or "")
            key = history_key(review, ns_labels)
            history: HistoryResult | None = None
            if key is not None:
                history = await self.history.lookup(key)
                HISTORY_LOOKUPS.labels(history.status).inc()
            outcome = decide(review, ns_labels, self.offers(), history, self.params, self.pool())
            response = outcome.response
            extra = {
                **outcome.log,
                "workload": str(key) if key else None,
                "history_source": self.history.label,
            }
            if not req.dryRun:
                MUTATIONS.labels(outcome.outcome, outcome.profile).inc()
                self.note(outcome)
        except Exception as exc:  # fail open: never deny, never 5xx a well-formed review
            log.exception("webhook decision failed", extra={"uid": req.uid})
            response = fail_open(req.uid, f"internal error ({type(exc).__name__}); pod left unchanged")
            extra = {"uid": req.uid, "outcome": "error", "profile": "none"}
            if not req.dryRun:
                MUTATIONS.labels("error", "none").inc()
        elapsed = time.perf_counter() - started
        REVIEW_SECONDS.observe(elapsed)
        log.info("webhook decision", extra={**extra, "ms": round(elapsed * 1000, 3)})
        self.recent.append({"at": time.time(), **extra})
        out = {
            "apiVersion": review.apiVersion,
            "kind": "AdmissionReview",
            "response": response.model_dump(exclude_none=True),
        }
        return 200, out


def _offers_skipping_bad(nodes: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """`offered_profiles` node by node, leaving out (and reporting) the nodes it cannot read."""
    merged: dict[str, set[str]] = {}
    for node in nodes:
        try:
            one = offered_profiles([node])
        except Exception as exc:
            BAD.report_exception("Node", node, exc, source="webhook")
            continue
        for product, profiles in one.items():
            merged.setdefault(product, set()).update(profiles)
    return {k: frozenset(v) for k, v in merged.items()}
