"""Collector: vLLM per-replica gauges from the Prometheus HTTP API, a constant number of queries per cycle.

Every query groups `by (namespace, pod)` over *all* models, so a cycle costs the same 5 queries whether the
cluster runs 1 model or 200: KV (current name `or` the pre-0.9 name), queue, running, the newest sample's
timestamp (staleness: after a failed scrape Prometheus writes stale markers and the series drops out, while
`max_over_time` would keep showing the dead pod's last peak for a minute), and one `label_replace`-tagged
query for the rates of the model-based view. Results are cached for a TTL and refreshed in the background
so a cycle rarely waits on the network. `MetricsSource` lets the demo and the tests inject samples.
Scale to and from zero add one grouped query each, only when some model needs it (see `zero.py`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import httpx

from app.prometheus import query_vector

log = logging.getLogger(__name__)

PodKey = tuple[str, str]  # (namespace, pod)


@dataclass(frozen=True)
class PodSample:
    """What Prometheus knows about one vLLM replica (None = no series)."""

    kv: float | None = None
    queue: float | None = None
    running: float | None = None
    #: unix time of the newest scraped sample; None = the series is gone or stale
    timestamp: float | None = None
    #: per-second rates over the window (model-based view)
    arrival_rate: float | None = None
    prompt_tokens_sum: float | None = None
    prompt_tokens_count: float | None = None
    generation_tokens_sum: float | None = None
    generation_tokens_count: float | None = None
    ttft_sum: float | None = None
    ttft_count: float | None = None
    itl_sum: float | None = None
    itl_count: float | None = None


@dataclass(frozen=True)
class MetricsSnapshot:
    pods: Mapping[PodKey, PodSample] = field(default_factory=dict)
    #: unix time the data was fetched
    fetched_at: float = 0.0
    #: why the last fetch failed (the pods are then the previous ones, ageing towards "unknown")
    error: str | None = None


class MetricsSource(Protocol):
    """Anything that can hand the engine a snapshot of per-replica samples, and the two model-level
    numbers of scale to and from zero (both raise when the answer is unknown)."""

    async def snapshot(self) -> MetricsSnapshot: ...

    async def request_counts(self, window: str) -> dict[tuple[str, str], float]:
        """(namespace, model_name) -> successful requests over `window` (a Prometheus range)."""
        ...

    async def queue_sizes(self) -> dict[str, float]:
        """model -> requests waiting in the gateway's flow-control queue."""
        ...


def build_queries(window: str = "1m") -> dict[str, str]:
    """The PromQL of one cycle, by name. Constant in number; none is per model."""
    by = "max by (namespace, pod)"
    rates = {
        "arrival_rate": "vllm:request_success_total",
        "prompt_tokens_sum": "vllm:request_prompt_tokens_sum",
        "prompt_tokens_count": "vllm:request_prompt_tokens_count",
        "generation_tokens_sum": "vllm:request_generation_tokens_sum",
        "generation_tokens_count": "vllm:request_generation_tokens_count",
        "ttft_sum": "vllm:time_to_first_token_seconds_sum",
        "ttft_count": "vllm:time_to_first_token_seconds_count",
        "itl_sum": "vllm:time_per_output_token_seconds_sum",
        "itl_count": "vllm:time_per_output_token_seconds_count",
    }
    load = " or ".join(
        f'label_replace(sum by (namespace, pod) (rate({metric}[{window}])), "wva_q", "{name}", "", "")'
        for name, metric in rates.items()
    )
    return {
        "kv": f"{by} (max_over_time(vllm:kv_cache_usage_perc[{window}])"
        f" or max_over_time(vllm:gpu_cache_usage_perc[{window}]))",
        "queue": f"{by} (max_over_time(vllm:num_requests_waiting[{window}]))",
        "running": f"{by} (max_over_time(vllm:num_requests_running[{window}]))",
        "timestamp": f"{by} (timestamp(vllm:num_requests_waiting))",
        "load": load,
    }


def request_count_query(window: str) -> str:
    """WVA's scale-to-zero `model_request_count`, for every model at once (one query per retention)."""
    return f"sum by (namespace, model_name) (increase(vllm:request_success_total[{window}]))"


#: WVA's `scheduler_queue_size` for every model at once: `target_model_name`, else (an empty target)
#: `model_name`. `or` keeps a right-hand series only where no left-hand one has the same `wva_model`.
QUEUE_QUERY = (
    "sum by (wva_model) (label_replace(inference_extension_flow_control_queue_size"
    '{target_model_name!=""}, "wva_model", "$1", "target_model_name", "(.+)"))'
    " or sum by (wva_model) (label_replace(inference_extension_flow_control_queue_size"
    '{target_model_name=""}, "wva_model", "$1", "model_name", "(.+)"))'
)


def _by_labels(vector: list[dict[str, Any]], *names: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for item in vector:
        labels = item.get("metric") or {}
        key = tuple(str(labels.get(n) or "") for n in names)
        v = _value((item.get("value") or [None, None])[1])
        if all(key) and v is not None:
            out[key] = v
    return out


_SAMPLE_FIELDS = frozenset(f.name for f in fields(PodSample))


def _value(raw: Any) -> float | None:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def merge_results(results: Mapping[str, list[dict[str, Any]]], fetched_at: float) -> MetricsSnapshot:
    """Join the vector results of `build_queries` into one sample per (namespace, pod)."""
    fields_by_pod: dict[PodKey, dict[str, float]] = {}
    for name, vector in results.items():
        for item in vector:
            labels = item.get("metric") or {}
            ns, pod = labels.get("namespace"), labels.get("pod")
            if not ns or not pod:
                continue
            v = _value((item.get("value") or [None, None])[1])
            if v is None:
                continue
            attr = labels.get("wva_q") if name == "load" else name
            if attr not in _SAMPLE_FIELDS:
                continue
            fields_by_pod.setdefault((ns, pod), {})[attr] = v
    return MetricsSnapshot(
        pods={k: PodSample(**v) for k, v in fields_by_pod.items()},
        fetched_at=fetched_at,
    )


class PrometheusSource:
    """Prometheus HTTP API client with a TTL cache, single-flight refresh and request counting."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 15.0,
        timeout_s: float = 5.0,
        window: str = "1m",
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.ttl_s = ttl_s
        self.queries = build_queries(window)
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: MetricsSnapshot | None = None
        #: PromQL queries sent so far (the benchmark and tests read it)
        self.queries_sent = 0
        self.fetches = 0

    async def _query(self, promql: str) -> list[dict[str, Any]]:
        self.queries_sent += 1
        return await query_vector(self._client, self.url, promql, method="POST")

    async def refresh(self) -> MetricsSnapshot:
        """Fetch now (all queries concurrently); on failure keep the old samples, flagged with the error."""
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> MetricsSnapshot:
        self.fetches += 1
        now = self._clock()
        names = list(self.queries)
        try:
            vectors = await asyncio.gather(*(self._query(self.queries[n]) for n in names))
            snap = merge_results(dict(zip(names, vectors, strict=True)), now)
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            err = f"{type(exc).__name__}: {exc}"
            log.warning("prometheus query failed", extra={"url": self.url, "error": err})
            old = self._cached or MetricsSnapshot()
            snap = replace(old, error=err)
        self._cached = snap
        return snap

    async def snapshot(self) -> MetricsSnapshot:
        """The cached snapshot if younger than the TTL, else a fresh one (single-flight)."""
        async with self._lock:
            cached = self._cached
            if cached is not None and cached.error is None and self._clock() - cached.fetched_at < self.ttl_s:
                return cached
            return await self._refresh_locked()

    async def request_counts(self, window: str) -> dict[tuple[str, str], float]:
        vector = await self._query(request_count_query(window))
        return {(k[0], k[1]): v for k, v in _by_labels(vector, "namespace", "model_name").items()}

    async def queue_sizes(self) -> dict[str, float]:
        return {k[0]: v for k, v in _by_labels(await self._query(QUEUE_QUERY), "wva_model").items()}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class StaticSource:
    """A source whose samples are set by hand (demo, tests): `set(ns, pod, sample)`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.pods: dict[PodKey, PodSample] = {}
        self.error: str | None = None
        #: (namespace, model) -> successful requests in any window; model -> queued requests
        self.requests: dict[tuple[str, str], float] = {}
        self.queued: dict[str, float] = {}

    def set(self, namespace: str, pod: str, **values: float | None) -> None:
        """Set one pod's gauges; its timestamp is `now` unless given."""
        values.setdefault("timestamp", self._clock())
        self.pods[(namespace, pod)] = PodSample(**values)  # type: ignore[arg-type]

    def drop(self, namespace: str, pod: str) -> None:
        self.pods.pop((namespace, pod), None)

    async def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(pods=dict(self.pods), fetched_at=self._clock(), error=self.error)

    async def request_counts(self, window: str) -> dict[tuple[str, str], float]:
        if self.error:
            raise RuntimeError(self.error)
        return dict(self.requests)

    async def queue_sizes(self) -> dict[str, float]:
        if self.error:
            raise RuntimeError(self.error)
        return dict(self.queued)


class NoSource:
    """No Prometheus configured: every replica is unknown, so the engine holds (never guesses)."""

    async def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(fetched_at=time.time(), error="no --prometheus-url configured")

    async def request_counts(self, window: str) -> dict[tuple[str, str], float]:
        raise RuntimeError("no --prometheus-url configured")

    async def queue_sizes(self) -> dict[str, float]:
        raise RuntimeError("no --prometheus-url configured")
