"""Workload usage history: who the pod belongs to, the PromQL for its DCGM history, and a cache in front.

Admission must stay fast whatever Prometheus does, so `UsageHistory.lookup` answers from a TTL cache, serves
stale entries while refreshing them in the background, and waits at most `timeout` seconds for a first fetch
(the fetch carries on and fills the cache for the next pod). A first fetch that times out or fails opens a
circuit: while Prometheus stays down, slow or garbled, lookups of workloads not in the cache answer at once
("error", history unavailable) instead of each paying the timeout, and a background probe closes the circuit
when Prometheus answers again. The source is a `HistorySource` protocol: the Prometheus one (httpx) in
production, a recorded one in tests and the demo.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from prometheus_client import Counter, Gauge

from app.gpu.mig import mig_compute_fraction
from app.metrics import REGISTRY
from app.prometheus import query_vector
from app.tasks import cancel_and_wait
from webhook.mig import Usage

log = logging.getLogger(__name__)

CIRCUIT_OPEN = Gauge(
    "gpu_autoscaler_webhook_history_circuit_open",
    "1 while the usage-history source is unhealthy and first lookups answer at once without it",
    registry=REGISTRY,
)
SHORT_CIRCUITED = Counter(
    "gpu_autoscaler_webhook_history_short_circuited_total",
    "History lookups answered at once because the source was unhealthy (circuit open)",
    registry=REGISTRY,
)

FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
#: dcgm-exporter label naming the MIG profile of the instance a series measures (absent on whole GPUs)
MIG_PROFILE = "GPU_I_PROFILE"
APP_NAME_LABEL = "app.kubernetes.io/name"
#: fewer samples than this over the window is not a history (one scrape at 30 s for 30 min)
MIN_SAMPLES = 60
#: connections to Prometheus for history queries (4 per lookup)
HISTORY_CONNECTIONS = 16

_CRONJOB_JOB = re.compile(r"^(?P<name>.+)-\d{8,}$")
#: pod name patterns per owner kind (RE2, Prometheus anchors them); `{n}` is the escaped owner name
_POD_PATTERNS = {
    "Deployment": "{n}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}",
    "ReplicaSet": "{n}-[a-z0-9]{{5}}",
    "StatefulSet": "{n}-[0-9]+",
    "DaemonSet": "{n}-[a-z0-9]{{5}}",
    "Job": "{n}(-[0-9]+)?-[a-z0-9]{{5}}",
    "CronJob": "{n}-[0-9]{{8,}}(-[0-9]+)?-[a-z0-9]{{5}}",
}


@dataclass(frozen=True)
class WorkloadKey:
    """The unit history is kept for: a controller (Deployment, StatefulSet, Job, CronJob…) or an app label."""

    namespace: str
    kind: str  # Deployment | ReplicaSet | StatefulSet | DaemonSet | Job | CronJob | label
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


def workload_key(pod: Mapping[str, Any], namespace: str) -> WorkloadKey | None:
    """Owner first (ReplicaSet minus pod-template-hash is its Deployment), else `app.kubernetes.io/name`."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)]
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is not None:
        kind, name = str(owner.get("kind", "")), str(owner.get("name", ""))
        if kind == "ReplicaSet" and name:
            pth = str(labels.get("pod-template-hash", ""))
            if pth and name.endswith("-" + pth):
                return WorkloadKey(namespace, "Deployment", name.removesuffix("-" + pth))
            return WorkloadKey(namespace, "ReplicaSet", name)
        if kind == "Job" and name:
            m = _CRONJOB_JOB.match(name)
            if m:
                return WorkloadKey(namespace, "CronJob", m.group("name"))
            return WorkloadKey(namespace, "Job", name)
        if kind in _POD_PATTERNS and name:
            return WorkloadKey(namespace, kind, name)
    app = labels.get(APP_NAME_LABEL)
    if app:
        return WorkloadKey(namespace, "label", str(app))
    return None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pod_selector(key: WorkloadKey) -> str | None:
    """The `pod=~` regex for a controller key; None for label keys (those join `kube_pod_labels`)."""
    pattern = _POD_PATTERNS.get(key.kind)
    if pattern is None:
        return None
    return pattern.format(n=re.escape(key.name))


def _range(metric: str, key: WorkloadKey, window: str) -> str:
    """A range vector of `metric` for the workload over the window."""
    ns = _quote(key.namespace)
    regex = pod_selector(key)
    if regex is not None:
        return f"{metric}{{namespace={ns},pod=~{_quote(regex)}}}[{window}]"
    label = "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", APP_NAME_LABEL)
    joined = (
        f"{metric}{{namespace={ns}}} * on(namespace, pod) group_left() "
        f"group by (namespace, pod) (kube_pod_labels{{namespace={ns},{label}={_quote(key.name)}}})"
    )
    return f"({joined})[{window}:1m]"


def build_queries(key: WorkloadKey, window: str) -> dict[str, str]:
    """Instant PromQL queries, each answering one number per container."""

    def r(metric: str) -> str:
        return _range(metric, key, window)

    return {
        "peak_memory_mib": f"max by (container) (max_over_time({r(FB_USED)}))",
        "gpu_memory_mib": (
            f"max by (container, modelName, {MIG_PROFILE}) "
            f"(last_over_time({r(FB_USED)}) + last_over_time({r(FB_FREE)}))"
        ),
        "p95_compute": (
            f"max by (container, modelName, {MIG_PROFILE}) (quantile_over_time(0.95, {r(GR_ENGINE_ACTIVE)}))"
            f" or max by (container, modelName) (quantile_over_time(0.95, {r(GPU_UTIL)})) / 100"
        ),
        "samples": f"sum by (container) (count_over_time({r(FB_USED)}))",
    }


def usage_from_vectors(vectors: Mapping[str, list[dict[str, Any]]]) -> dict[str, Usage]:
    """Per-container Usage from the `result` lists of the queries of `build_queries`.

    Series measured on a MIG instance (label GPU_I_PROFILE, e.g. a pod this webhook already sliced) are
    brought back to whole-GPU terms: compute is scaled by the instance's share of the GPU, and the GPU size
    comes from the model name rather than the instance's framebuffer. Containers without a memory peak, or
    with fewer than MIN_SAMPLES samples, have no history.
    """
    values: dict[str, dict[str, Any]] = {}
    for name, result in vectors.items():
        for series in result:
            metric = series.get("metric") or {}
            container = str(metric.get("container", ""))
            try:
                number = float(series["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isnan(number) or math.isinf(number):
                continue
            slot = values.setdefault(container, {})
            model = metric.get("modelName")
            if model:
                slot["gpu_model"] = str(model)
            mig = str(metric.get(MIG_PROFILE) or "")
            if mig and name == "gpu_memory_mib":
                continue  # an instance's framebuffer is not the GPU's
            if mig and name == "p95_compute":
                share = mig_compute_fraction(mig, str(model) if model else None)
                if share is None:
                    continue
                number *= share
            slot[name] = max(number, slot.get(name, number))
    out: dict[str, Usage] = {}
    for container, v in values.items():
        if "peak_memory_mib" not in v or int(v.get("samples", 0)) < MIN_SAMPLES:
            continue
        compute = v.get("p95_compute")
        out[container] = Usage(
            peak_memory_mib=float(v["peak_memory_mib"]),
            p95_compute=None if compute is None else min(max(float(compute), 0.0), 1.0),
            gpu_memory_mib=v.get("gpu_memory_mib"),
            gpu_model=v.get("gpu_model"),
            samples=int(v.get("samples", 0)),
        )
    return out


class HistorySource(Protocol):
    """Where usage comes from. `fetch` returns per-container usage; empty when the workload has none."""

    label: str

    async def fetch(self, key: WorkloadKey) -> dict[str, Usage]: ...


class RecordedHistory:
    """A fixed table of usage (tests, the demo): no Prometheus involved, and the label says so."""

    def __init__(
        self,
        table: Mapping[WorkloadKey, Mapping[str, Usage]],
        label: str = "recorded",
        delay: float = 0.0,
        fail: bool = False,
    ) -> None:
        self.table = {k: dict(v) for k, v in table.items()}
        self.label = label
        self.delay = delay
        self.fail = fail
        self.calls = 0

    async def fetch(self, key: WorkloadKey) -> dict[str, Usage]:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("recorded source set to fail")
        return dict(self.table.get(key, {}))


class PrometheusHistory:
    """DCGM history from the Prometheus HTTP API (`/api/v1/query`, instant queries run concurrently)."""

    def __init__(self, base_url: str, window: str = "7d", client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.window = window
        self.label = f"prometheus:{self.base_url}"
        # a bounded pool: a cold cache (hundreds of new workloads at once) must not open hundreds of
        # connections to Prometheus; lookups beyond it wait their `timeout` and answer without history
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(
                max_connections=HISTORY_CONNECTIONS, max_keepalive_connections=HISTORY_CONNECTIONS
            ),
        )

    async def _query(self, promql: str) -> list[dict[str, Any]]:
        return await query_vector(self._client, self.base_url, promql)

    async def fetch(self, key: WorkloadKey) -> dict[str, Usage]:
        queries = build_queries(key, self.window)
        results = await asyncio.gather(*(self._query(q) for q in queries.values()))
        return usage_from_vectors(dict(zip(queries, results, strict=True)))

    async def probe(self) -> None:
        """A query Prometheus answers in microseconds when healthy (the circuit's re-probe)."""
        await self._query("vector(1)")

    async def aclose(self) -> None:
        await self._client.aclose()


HistoryStatus = Literal["hit", "stale", "miss", "timeout", "error", "disabled"]


@dataclass(frozen=True)
class HistoryResult:
    """What admission learns: the usage (possibly empty) and how fresh/reliable it is."""

    status: HistoryStatus
    usage: Mapping[str, Usage] = field(default_factory=dict)
    note: str = ""


@dataclass
class _Entry:
    usage: dict[str, Usage]
    fetched: float
    ok: bool
    note: str
    last_used: float


class UsageHistory:
    """TTL cache with stale-while-revalidate and a hard wait limit in front of a HistorySource."""

    def __init__(
        self,
        source: HistorySource | None,
        ttl: float = 300.0,
        timeout: float = 2.0,
        error_ttl: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        reprobe: float = 10.0,
        max_fetches: int = HISTORY_CONNECTIONS // 4,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.timeout = timeout
        self.error_ttl = error_ttl
        self.max_entries = max_entries
        self.reprobe = reprobe
        self._clock = clock
        self._cache: dict[WorkloadKey, _Entry] = {}
        self._inflight: dict[WorkloadKey, asyncio.Task[None]] = {}
        #: why the source is unhealthy (None: circuit closed); `_probe_key` is re-fetched when the source
        #: has no `probe()`
        self.circuit: str | None = None
        self._probe_key: WorkloadKey | None = None
        self._prober: asyncio.Task[None] | None = None
        #: fetches running at once; the rest wait (a refresh of hundreds of workloads whose entries expire
        #: together must not become hundreds of concurrent Prometheus queries in the HTTP client's pool)
        self._fetch_slots = asyncio.Semaphore(max_fetches)
        #: workloads whose fetch holds a slot (is waiting on Prometheus, not on our own queue)
        self._asking: dict[WorkloadKey, float] = {}  # fetch under way -> when it left the queue (loop time)

    @property
    def label(self) -> str:
        return self.source.label if self.source is not None else "none"

    def set_source(self, source: HistorySource | None) -> None:
        """Swap the source (the demo plugs a recorded one in); the cache is dropped."""
        self.source = source
        self._cache.clear()
        self._close_circuit()

    async def lookup(self, key: WorkloadKey) -> HistoryResult:
        if self.source is None:
            return HistoryResult("disabled", {}, "no Prometheus configured")
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None:
            entry.last_used = now
            fresh = now - entry.fetched < (self.ttl if entry.ok else self.error_ttl)
            if not fresh:
                self._spawn(key)  # in the background: admission does not wait, circuit open or not
            if not entry.ok:
                return HistoryResult("error", {}, entry.note)
            return HistoryResult("hit" if fresh else "stale", entry.usage)
        if self.circuit is not None:
            SHORT_CIRCUITED.inc()
            return HistoryResult("error", {}, f"history unavailable ({self.circuit}); re-probing")
        task = self._spawn(key)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.timeout)
        except TimeoutError:
            note = f"history query took over {self.timeout:g}s"
            started = self._asking.get(key)
            loop_now = asyncio.get_running_loop().time()
            if started is not None and loop_now - started >= self.timeout / 2:
                # Prometheus itself has had most of the budget; time spent queued behind our own limit of
                # concurrent fetches is not Prometheus being slow
                self._open_circuit(key, note)
            return HistoryResult("timeout", {}, note)
        entry = self._cache.get(key)
        if entry is None or not entry.ok:
            return HistoryResult("error", {}, entry.note if entry else "history fetch failed")
        entry.last_used = self._clock()
        return HistoryResult("miss", entry.usage)

    # -- the circuit ----------------------------------------------------------------------------------
    def _open_circuit(self, key: WorkloadKey, why: str) -> None:
        self._probe_key = key
        if self.circuit is None:
            log.warning("history source unhealthy; circuit open", extra={"error": why, "source": self.label})
        self.circuit = why
        CIRCUIT_OPEN.set(1)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._reprobe(), name="history:reprobe")

    def _close_circuit(self) -> None:
        if self.circuit is not None:
            log.info("history source healthy again; circuit closed", extra={"source": self.label})
        self.circuit = None
        CIRCUIT_OPEN.set(0)

    async def _reprobe(self) -> None:
        """Every `reprobe` seconds, one cheap request (bounded by the lookup timeout) until one succeeds."""
        while self.circuit is not None:
            await asyncio.sleep(self.reprobe)
            source = self.source
            if source is None:
                self._close_circuit()
                return
            probe = getattr(source, "probe", None)
            try:
                if probe is not None:
                    await asyncio.wait_for(probe(), timeout=max(self.timeout, 1.0))
                elif self._probe_key is not None:
                    await asyncio.wait_for(source.fetch(self._probe_key), timeout=max(self.timeout, 1.0))
            except Exception as exc:
                self.circuit = f"{type(exc).__name__}: {exc}"[:100] if str(exc) else type(exc).__name__
                continue
            if source is self.source:
                self._close_circuit()

    def _spawn(self, key: WorkloadKey) -> asyncio.Task[None]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key), name=f"history:{key}")
            self._inflight[key] = task
        return task

    async def _fetch(self, key: WorkloadKey) -> None:
        source = self.source
        try:
            if source is None:
                return
            try:
                async with self._fetch_slots:  # a burst (TTL expiry, cold start) queues here, cheaply
                    self._asking[key] = asyncio.get_running_loop().time()
                    try:
                        usage = await source.fetch(key)
                    finally:
                        self._asking.pop(key, None)
                entry = _Entry(usage, self._clock(), True, "", self._clock())
                if source is self.source:
                    self._close_circuit()
            except Exception as exc:  # any source failure is cached briefly, never raised to admission
                note = f"history unavailable: {type(exc).__name__}: {exc}"[:100]
                log.warning("history fetch failed", extra={"workload": str(key), "error": note})
                if source is self.source:
                    self._open_circuit(key, note)
                old = self._cache.get(key)
                if old is not None and old.ok:  # keep serving the last good answer
                    old.fetched = self._clock() - self.ttl + self.error_ttl
                    return
                entry = _Entry({}, self._clock(), False, note, self._clock())
            if source is self.source:
                self._store(key, entry)
        finally:
            self._inflight.pop(key, None)

    def _store(self, key: WorkloadKey, entry: _Entry) -> None:
        old = self._cache.get(key)
        if old is not None:
            entry.last_used = max(entry.last_used, old.last_used)
        self._cache[key] = entry
        if len(self._cache) > self.max_entries:
            victim = min(self._cache, key=lambda k: self._cache[k].last_used)
            self._cache.pop(victim, None)

    def refresh_due(self) -> list[asyncio.Task[None]]:
        """Start refreshes for entries used lately that are close to expiry, so admission keeps hitting."""
        now = self._clock()
        tasks: list[asyncio.Task[None]] = []
        if self.circuit is not None:  # the probe finds out when it is worth asking again
            return tasks
        for key, entry in list(self._cache.items()):
            recently_used = now - entry.last_used < 4 * self.ttl
            if recently_used and now - entry.fetched > 0.75 * self.ttl:
                tasks.append(self._spawn(key))
        return tasks

    async def run_refresher(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Background loop: refresh due entries every quarter TTL."""
        while True:
            await sleep(max(self.ttl / 4, 1.0))
            self.refresh_due()

    async def close(self) -> None:
        await cancel_and_wait(self._prober, suppress=(Exception,))
        for task in list(self._inflight.values()):
            task.cancel()
        for task in list(self._inflight.values()):
            await cancel_and_wait(task, suppress=(Exception,))
        self._inflight.clear()
        aclose = getattr(self.source, "aclose", None)
        if aclose is not None:
            await aclose()
