"""Prometheus down, slow or answering garbage, as a real HTTP server: /mutate admits unchanged, the first
review of a workload waits at most the history timeout, later ones not at all while the circuit is open, and
the circuit closes by itself when Prometheus answers again (issue 11, item 3)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.metrics import REGISTRY
from app.settings import Settings
from tests.misbehaving import SickPrometheus, down_url
from tests.waiting import until
from tests.webhook.conftest import load_review
from webhook.component import WebhookComponent

pytestmark = pytest.mark.integration

TIMEOUT = 0.5  # the history wait; the production default is 1 s


def review_for(workload: str) -> dict[str, Any]:
    """A CREATE review of a GPU pod of Deployment `workload` (namespace inference, MIG rewrite enabled)."""
    raw = copy.deepcopy(load_review("pod_create_deployment.json"))
    raw["request"]["uid"] = str(uuid.uuid4())
    meta = raw["request"]["object"]["metadata"]
    meta["ownerReferences"][0]["name"] = f"{workload}-7d9f8c6b5"
    meta["labels"]["pod-template-hash"] = "7d9f8c6b5"
    return raw


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@contextmanager
def prometheus(mode: str) -> Iterator[tuple[str, SickPrometheus | None]]:
    if mode == "down":
        with down_url() as url:
            yield url, None
        return
    with SickPrometheus(mode) as prom:
        yield prom.url, prom


@asynccontextmanager
async def webhook(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, WebhookComponent]]:
    settings = Settings(
        cluster="demo", prometheus_url=url, history_timeout_seconds=TIMEOUT, history_reprobe_seconds=0.1
    )
    app = create_app(settings, components=[WebhookComponent])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, app.state.ctx.components["webhook"]


async def mutate(client: httpx.AsyncClient, workload: str) -> tuple[dict[str, Any], float]:
    raw = review_for(workload)
    start = time.perf_counter()
    resp = await client.post("/mutate", json=raw)
    elapsed = time.perf_counter() - start
    assert resp.status_code == 200
    out = resp.json()["response"]
    assert out["uid"] == raw["request"]["uid"] and out["allowed"] is True
    assert "patch" not in out, "admitted unchanged"
    return out, elapsed


@pytest.mark.parametrize("mode", ["down", "slow", "garbage", "html"])
async def test_sick_prometheus_admits_unchanged_and_later_workloads_do_not_wait(mode: str) -> None:
    with prometheus(mode) as (url, prom):
        async with webhook(url) as (client, component):
            history = component.history
            first, first_s = await mutate(client, "first")
            assert "history" in " ".join(first.get("warnings", []))
            assert history.circuit is not None, "a failed or timed-out first fetch opens the circuit"
            assert sample("gpu_autoscaler_webhook_history_circuit_open") == 1
            asked = prom.requests if prom else 0
            short = sample("gpu_autoscaler_webhook_history_short_circuited_total")
            later = [await mutate(client, f"later-{i}") for i in range(5)]
            # no admission of a new workload waited on Prometheus: none even asked it
            assert sample("gpu_autoscaler_webhook_history_short_circuited_total") == short + 5
            assert (prom.requests if prom else 0) - asked <= len(later)  # only the background re-probes
            assert all("unavailable" in " ".join(o.get("warnings", [])) for o, _ in later)
            # the first review waited at most the history timeout (plus the machine's own slowness)
            assert first_s < TIMEOUT + 2.0, first_s


async def test_circuit_closes_when_prometheus_recovers() -> None:
    with SickPrometheus("slow") as prom:
        async with webhook(prom.url) as (client, component):
            await mutate(client, "a")
            assert component.history.circuit is not None
            prom.mode = "ok"
            await until(lambda: component.history.circuit is None, timeout=10)
            assert sample("gpu_autoscaler_webhook_history_circuit_open") == 0
            before = prom.requests
            out, _ = await mutate(client, "b")  # a new workload is looked up again
            assert prom.requests > before
            assert "unavailable" not in " ".join(out.get("warnings", []))


async def test_review_over_its_budget_is_admitted_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever hangs inside the decision (here: the namespace lookup), the API server gets an answer."""
    import asyncio

    settings = Settings(cluster="demo", webhook_budget_seconds=0.2, history_timeout_seconds=0.1)
    app = create_app(settings, components=[WebhookComponent])
    async with app.router.lifespan_context(app):
        component = app.state.ctx.components["webhook"]
        real = component.handle

        async def stuck(body: bytes) -> Any:
            await asyncio.sleep(30)
            return await real(body)

        monkeypatch.setattr(component, "handle", stuck)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            raw = review_for("stuck")
            resp = await client.post("/mutate", json=raw)
    out = resp.json()["response"]
    assert resp.status_code == 200 and out["allowed"] is True and out["uid"] == raw["request"]["uid"]
    assert "no decision within 0.2s" in " ".join(out["warnings"])


async def test_a_burst_of_new_workloads_is_fetched_a_few_at_a_time() -> None:
    """Hundreds of history entries expiring together (or a cold start) become a queue of fetches, not
    hundreds of concurrent queries; a lookup timed out in that queue does not call Prometheus unhealthy."""
    import asyncio

    from webhook.history import UsageHistory, WorkloadKey

    class Slow:
        label = "slow"

        def __init__(self) -> None:
            self.running = self.peak = 0

        async def fetch(self, key: WorkloadKey) -> dict[str, Any]:
            self.running += 1
            self.peak = max(self.peak, self.running)
            await asyncio.sleep(0.05)
            self.running -= 1
            return {}

    source = Slow()
    history = UsageHistory(source, timeout=0.2, max_fetches=4)  # 4 rounds of 4 in time, 6 queued out
    keys = [WorkloadKey("ns", "Deployment", f"w{i}") for i in range(40)]
    results = await asyncio.gather(*(history.lookup(k) for k in keys))
    assert source.peak == 4
    assert {r.status for r in results} == {"miss", "timeout"}
    assert history.circuit is None, "queued behind our own limit is not Prometheus being slow"
    await history.close()
