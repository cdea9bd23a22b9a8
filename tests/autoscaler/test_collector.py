"""Collector: constant query count, result joining, TTL cache, failures keep samples ageing."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from app.autoscaler.collector import PrometheusSource, StaticSource, build_queries, merge_results


def vec(ns: str, pod: str, value: str, **labels: str) -> dict:  # type: ignore[type-arg]
    return {"metric": {"namespace": ns, "pod": pod, **labels}, "value": [1.0, value]}


def test_queries_are_constant_and_grouped_by_pod() -> None:
    q = build_queries()
    assert len(q) == 5
    assert all("namespace, pod" in text for text in q.values())
    assert "gpu_cache_usage_perc" in q["kv"] and " or " in q["kv"]
    assert "model_name" not in "".join(q.values())  # never one query per model


def test_merge_results() -> None:
    snap = merge_results(
        {
            "kv": [vec("ns", "a", "0.5"), vec("ns", "b", "NaN"), {"metric": {"pod": "x"}, "value": [1, "1"]}],
            "queue": [vec("ns", "a", "3")],
            "timestamp": [vec("ns", "a", "99.5")],
            "load": [vec("ns", "a", "2.5", wva_q="arrival_rate"), vec("ns", "a", "7", wva_q="bogus")],
        },
        fetched_at=100.0,
    )
    a = snap.pods[("ns", "a")]
    assert (a.kv, a.queue, a.timestamp, a.arrival_rate) == (0.5, 3.0, 99.5, 2.5)
    assert ("ns", "b") not in snap.pods  # NaN dropped -> no sample -> unknown, never idle


class FakeProm:
    """A recording Prometheus: answers every query with one pod's sample."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.fail = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(503, text="down")
        query = parse_qs(request.content.decode())["query"][0]
        self.queries.append(query)
        result = [vec("ns", "a", "0.4")]
        return httpx.Response(
            200, text=json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
        )


async def test_ttl_cache_and_failure() -> None:
    now = [1000.0]
    fake = FakeProm()
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    src = PrometheusSource("http://prom", ttl_s=15, client=client, clock=lambda: now[0])
    snap = await src.snapshot()
    assert snap.pods[("ns", "a")].kv == 0.4 and len(fake.queries) == 5
    now[0] += 10
    assert await src.snapshot() is snap and len(fake.queries) == 5  # cached
    now[0] += 10
    await src.snapshot()
    assert len(fake.queries) == 10 and src.queries_sent == 10
    fake.fail = True
    now[0] += 20
    failed = await src.snapshot()
    assert failed.error is not None and failed.pods == snap.pods  # old samples, their timestamps age
    await client.aclose()


async def test_static_source() -> None:
    src = StaticSource(clock=lambda: 5.0)
    src.set("ns", "p", kv=0.1, queue=0)
    snap = await src.snapshot()
    assert snap.pods[("ns", "p")].timestamp == 5.0
    src.drop("ns", "p")
    assert not (await src.snapshot()).pods


@pytest.mark.parametrize("body", [{"status": "error", "errorType": "bad_data", "error": "parse"}])
async def test_prometheus_error_body(body: dict) -> None:  # type: ignore[type-arg]
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)))
    src = PrometheusSource("http://prom", client=client)
    snap = await src.refresh()
    assert snap.error and "bad_data" in snap.error
    await client.aclose()
