"""The autoscaler against a real misbehaving Prometheus (down, slow, garbage): it keeps its last decision,
never acts on the old samples again, and says the data is stale in /autoscaler/decisions and /metrics
(issue 11, item 3)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from app.autoscaler.collector import PrometheusSource
from app.autoscaler.component import AutoscalerComponent
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.metrics import REGISTRY
from app.settings import Settings
from tests.misbehaving import SickPrometheus, down_url

pytestmark = pytest.mark.integration


def vllm_answers(pods: list[str]) -> Any:
    """Every inference replica at 90 % KV cache, nothing queued, scraped just now."""

    def answer(query: str) -> list[dict[str, Any]]:
        if "timestamp(" in query:
            value = time.time()
        elif "kv_cache_usage_perc" in query:
            value = 0.9
        elif "num_requests_running" in query:
            value = 4
        elif "num_requests_waiting" in query:
            value = 0
        else:
            return []
        return [
            {"metric": {"namespace": "inference", "pod": p}, "value": [time.time(), str(value)]} for p in pods
        ]

    return answer


@asynccontextmanager
async def autoscaler(url: str) -> AsyncIterator[tuple[AutoscalerComponent, httpx.AsyncClient]]:
    settings = Settings(cluster="demo", autoscaler_interval=3600, scale_down_stabilization=0)
    cluster = SnapshotCluster()
    comp = AutoscalerComponent(settings)
    comp.source = PrometheusSource(url, ttl_s=0.0, timeout_s=0.3)
    app = create_app(settings, cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield comp, client


@contextmanager
def sick(mode: str, prom: SickPrometheus) -> Iterator[str]:
    if mode == "down":
        with down_url() as url:
            yield url
        return
    prom.mode = mode
    yield prom.url


def stale_gauge() -> float | None:
    return REGISTRY.get_sample_value("gpu_autoscaler_autoscaler_metrics_stale")


@pytest.mark.parametrize("mode", ["down", "slow", "garbage", "html"])
async def test_keeps_its_last_decision_and_marks_the_data_stale(mode: str) -> None:
    with SickPrometheus("ok") as prom:
        async with autoscaler(prom.url) as (comp, client):
            pods = [p["metadata"]["name"] for p in comp._ctx.cluster.list("Pod", "inference")]  # type: ignore[union-attr]
            prom.answer_with(vllm_answers(pods))
            first = {d.variant.name: d.desired for d in await comp.run_cycle()}
            assert first["llama-8b-l40s"] == 3 and first["qwen-32b-a100"] == 2  # scale-ups decided
            assert stale_gauge() == 0
            with sick(mode, prom) as url:
                if mode == "down":
                    assert isinstance(comp.source, PrometheusSource)
                    comp.source.url = url
                for _ in range(2):  # the old samples are never acted on a second time
                    held = await comp.run_cycle()
                    assert {d.variant.name: d.desired for d in held} == first
                    assert all(d.action.value == "hold" for d in held)
                    assert all("metrics stale" in d.reasons[0] for d in held)
                assert stale_gauge() == 1
                status = (await client.get("/autoscaler/decisions")).json()
                assert status["metrics"]["stale"] is True and status["metrics"]["error"]
                text = (await client.get("/metrics")).text
                assert "gpu_autoscaler_autoscaler_metrics_stale 1.0" in text
                assert 'wva_desired_replicas{accelerator_type="L40S"' in text
            # Prometheus is back: fresh data, fresh decisions, not stale any more
            prom.mode = "ok"
            if isinstance(comp.source, PrometheusSource):
                comp.source.url = prom.url
            await comp.run_cycle()
            assert stale_gauge() == 0
            assert (await client.get("/autoscaler/decisions")).json()["metrics"]["stale"] is False
