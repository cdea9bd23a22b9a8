"""The whole chain against the real Prometheus server: simulated vLLM /metrics -> scrape -> PromQL ->
collector -> inventory -> engine -> desired replicas, through load phases (and a scrape failure)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from app.autoscaler.collector import PrometheusSource
from app.autoscaler.config import CapacityConfigSet
from app.autoscaler.inventory import build_variants
from app.autoscaler.saturation import Action, Decision, decide
from tests.prometheus_server import PROMETHEUS, PrometheusServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(PROMETHEUS).exists(),
        reason="needs the prometheus server binary (make prometheus installs it)",
    ),
]
NS = "inference"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PODS = {"l40s-0": "cheap", "h100-0": "dear", "h100-1": "dear"}


class FakeVllm:
    """One vLLM-like /metrics/<pod> per pod, with gauges the test sets; `broken` pods answer 500."""

    def __init__(self) -> None:
        self.registries: dict[str, CollectorRegistry] = {}
        self.gauges: dict[str, dict[str, Gauge]] = {}
        self.broken: set[str] = set()
        for pod in PODS:
            reg = CollectorRegistry()
            self.registries[pod] = reg
            self.gauges[pod] = {
                name: Gauge(name, name, ["model_name", "engine"], registry=reg)
                for name in (
                    "vllm:kv_cache_usage_perc",
                    "vllm:num_requests_waiting",
                    "vllm:num_requests_running",
                )
            }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pod = self.path.rsplit("/", 1)[-1]
                if pod not in fake.registries or pod in fake.broken:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = generate_latest(fake.registries[pod])
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def load(self, kv: float, queue: float) -> None:
        for pod in PODS:
            g = self.gauges[pod]
            g["vllm:kv_cache_usage_perc"].labels(MODEL, "0").set(kv)
            g["vllm:num_requests_waiting"].labels(MODEL, "0").set(queue)
            g["vllm:num_requests_running"].labels(MODEL, "0").set(8)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[FakeVllm, str]]:
    fake = FakeVllm()
    fake.load(0.1, 0)
    jobs = "\n".join(
        f"""  - job_name: vllm-{pod}
    metrics_path: /metrics/{pod}
    static_configs:
      - targets: ['127.0.0.1:{fake.port}']
        labels: {{namespace: {NS}, pod: {pod}}}"""
        for pod in PODS
    )
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{jobs}\n")
    server = PrometheusServer(cfg, tmp_path / "data")
    try:
        try:
            url = server.start(timeout=20)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield fake, url
    finally:
        server.stop()
        fake.server.shutdown()


def _cluster() -> Any:
    def deploy(name: str, replicas: int) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"variant": name}}},
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }

    def va(name: str, cost: str, acc: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {"inference.optimization/acceleratorName": acc},
            },
            "spec": {
                "modelID": MODEL,
                "variantCost": cost,
                "scaleTargetRef": {"kind": "Deployment", "name": name},
            },
        }

    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    objs: dict[str, list[dict[str, Any]]] = {
        "VariantAutoscaling": [va("cheap", "15.0", "L40S"), va("dear", "40.0", "H100")],
        "Deployment": [deploy("cheap", 1), deploy("dear", 2)],
        "Pod": [
            {"metadata": {"name": p, "namespace": NS, "labels": {"variant": v}}, "status": ready}
            for p, v in PODS.items()
        ],
    }

    class Objects:
        def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
            return objs.get(kind, [])

        def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
            return next((o for o in objs.get(kind, []) if o["metadata"]["name"] == name), None)

    return Objects()


async def _decide_until(
    src: PrometheusSource, want: dict[str, tuple[int, Action]], timeout: float = 20
) -> None:
    cluster = _cluster()
    deadline = time.monotonic() + timeout
    got: dict[str, tuple[int, Action]] = {}
    decisions: list[Decision] = []
    while time.monotonic() < deadline:
        before = src.queries_sent
        snap = await src.refresh()
        assert src.queries_sent - before == 5  # constant per cycle
        decisions = decide(
            [i.variant for i in build_variants(cluster, snap, time.time())], CapacityConfigSet()
        )
        got = {d.variant.name: (d.desired, d.action) for d in decisions}
        if got == want:
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"wanted {want}, last got {got}: {[d.reasons for d in decisions]}")


async def test_load_phases_through_real_prometheus(stack: tuple[FakeVllm, str]) -> None:
    fake, url = stack
    src = PrometheusSource(url, ttl_s=0.1)
    try:
        # idle: one replica's load fits on the rest -> the most expensive variant loses one
        await _decide_until(src, {"cheap": (1, Action.NONE), "dear": (1, Action.SCALE_DOWN)})
        # medium (rising, so the 1-min peaks follow at once): inside the band -> no change
        fake.load(0.6, 1)
        await _decide_until(src, {"cheap": (1, Action.NONE), "dear": (2, Action.NONE)})
        # every replica saturated -> the cheapest variant gains one
        fake.load(0.85, 2)
        await _decide_until(src, {"cheap": (2, Action.SCALE_UP), "dear": (2, Action.NONE)})
        # a replica stops answering scrapes: its series go stale -> unknown -> hold, never "idle"
        fake.broken.add("h100-1")
        await _decide_until(src, {"cheap": (1, Action.HOLD), "dear": (2, Action.HOLD)})
    finally:
        await src.aclose()
