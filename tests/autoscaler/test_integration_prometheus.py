"""The whole chain against the real Prometheus server: simulated vLLM and gateway /metrics -> scrape -> PromQL
-> collector -> inventory -> engine -> zero rules -> desired replicas, through load phases (and a scrape
failure), then to zero and back in the real app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge

from app.autoscaler.collector import PrometheusSource
from app.autoscaler.component import AutoscalerComponent
from app.autoscaler.config import CapacityConfigSet
from app.autoscaler.inventory import build_variants
from app.autoscaler.saturation import Action, Decision, decide
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.settings import Settings
from tests.prom_server import Exporters, job, needs_prometheus, prometheus

pytestmark = [pytest.mark.integration, needs_prometheus]
NS = "inference"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PODS = {"l40s-0": "cheap", "h100-0": "dear", "h100-1": "dear"}


class FakeVllm:
    """vLLM-like /metrics per pod (gauges and the success counter), and an inference gateway's
    flow-control queue at /metrics/gateway."""

    def __init__(self, exporters: Exporters) -> None:
        self.exporters = exporters
        self.gauges: dict[str, dict[str, Gauge]] = {}
        self.success: dict[str, Counter] = {}
        for pod in PODS:
            reg = exporters.registry(pod)
            self.gauges[pod] = {
                name: Gauge(name, name, ["model_name", "engine"], registry=reg)
                for name in (
                    "vllm:kv_cache_usage_perc",
                    "vllm:num_requests_waiting",
                    "vllm:num_requests_running",
                )
            }
            self.success[pod] = Counter(
                "vllm:request_success", "finished requests", ["model_name", "engine"], registry=reg
            )
            self.success[pod].labels(MODEL, "0").inc(0)
        self.queue = Gauge(
            "inference_extension_flow_control_queue_size",
            "requests in the flow-control queue",
            ["target_model_name", "model_name"],
            registry=exporters.registry("gateway"),
        )

    def load(self, kv: float, queue: float) -> None:
        for pod in PODS:
            g = self.gauges[pod]
            g["vllm:kv_cache_usage_perc"].labels(MODEL, "0").set(kv)
            g["vllm:num_requests_waiting"].labels(MODEL, "0").set(queue)
            g["vllm:num_requests_running"].labels(MODEL, "0").set(8)

    def serve(self, pod: str) -> None:
        self.success[pod].labels(MODEL, "0").inc()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[FakeVllm, str]]:
    exporters = Exporters()
    fake = FakeVllm(exporters)
    fake.load(0.1, 0)
    jobs = [job(pod, exporters.port, {"namespace": NS, "pod": pod}) for pod in PODS]
    jobs.append(job("gateway", exporters.port, {"namespace": NS, "pod": "epp-0"}))
    try:
        with prometheus(tmp_path, jobs) as url:
            yield fake, url
    finally:
        exporters.close()


def _objects(replicas: dict[str, int], min_replicas: int = 1) -> list[dict[str, Any]]:
    def deploy(name: str, n: int) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": n, "selector": {"matchLabels": {"variant": name}}},
            "status": {"replicas": n, "readyReplicas": n},
        }

    def va(name: str, cost: str, acc: str) -> dict[str, Any]:
        return {
            "apiVersion": "llmd.ai/v1alpha1",
            "kind": "VariantAutoscaling",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {"inference.optimization/acceleratorName": acc},
            },
            "spec": {
                "modelID": MODEL,
                "variantCost": cost,
                "minReplicas": min_replicas,
                "scaleTargetRef": {"kind": "Deployment", "name": name},
            },
        }

    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": p, "namespace": NS, "labels": {"variant": v}},
            "spec": {"containers": [{"name": "vllm"}]},
            "status": ready,
        }
        for p, v in PODS.items()
        if int(p.rsplit("-", 1)[1]) < replicas[v]  # the first n pods of each variant
    ]
    return [
        va("cheap", "15.0", "L40S"),
        va("dear", "40.0", "H100"),
        deploy("cheap", replicas["cheap"]),
        deploy("dear", replicas["dear"]),
        *pods,
    ]


def _cluster(tmp_path: Path, objs: list[dict[str, Any]]) -> SnapshotCluster:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    return SnapshotCluster(path)


async def _decide_until(
    src: PrometheusSource, cluster: SnapshotCluster, want: dict[str, tuple[int, Action]], timeout: float = 20
) -> None:
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


async def test_load_phases_through_real_prometheus(stack: tuple[FakeVllm, str], tmp_path: Path) -> None:
    fake, url = stack
    src = PrometheusSource(url, ttl_s=0.1)
    cluster = _cluster(tmp_path, _objects({"cheap": 1, "dear": 2}))
    await cluster.start()
    try:
        # idle: one replica's load fits on the rest -> the most expensive variant loses one
        await _decide_until(src, cluster, {"cheap": (1, Action.NONE), "dear": (1, Action.SCALE_DOWN)})
        # medium (rising, so the 1-min peaks follow at once): inside the band -> no change
        fake.load(0.6, 1)
        await _decide_until(src, cluster, {"cheap": (1, Action.NONE), "dear": (2, Action.NONE)})
        # every replica saturated -> the cheapest variant gains one
        fake.load(0.85, 2)
        await _decide_until(src, cluster, {"cheap": (2, Action.SCALE_UP), "dear": (2, Action.NONE)})
        # a replica stops answering scrapes: its series go stale -> unknown -> hold, never "idle"
        fake.exporters.broken.add("h100-1")
        await _decide_until(src, cluster, {"cheap": (1, Action.HOLD), "dear": (2, Action.HOLD)})
    finally:
        await src.aclose()


async def _until(
    step: Callable[[], Awaitable[list[Decision]]],
    want: dict[str, tuple[int, str]],
    timeout: float = 20,
) -> list[Decision]:
    """Run `step` (a cycle or a wake poll) until the decisions say `want` (variant -> desired, reason)."""
    deadline = time.monotonic() + timeout
    got: dict[str, tuple[int, str]] = {}
    decisions: list[Decision] = []
    while time.monotonic() < deadline:
        decisions = await step()
        got = {d.variant.name: (d.desired, d.code.value) for d in decisions}
        if got == want:
            return decisions
        await asyncio.sleep(0.3)
    pytest.fail(f"wanted {want}, last got {got}: {[d.reasons for d in decisions]}")


async def test_to_zero_and_back_through_real_prometheus(stack: tuple[FakeVllm, str], tmp_path: Path) -> None:
    fake, url = stack
    fake.exporters.broken.add("h100-1")  # this cluster runs one replica per variant
    fake.load(0.6, 0)  # two replicas at 0.6: inside the band, so only the zero rules move anything
    fake.queue.labels("", "qwen").set(5)  # another model's queue (no target: read by model_name)
    objs = _objects({"cheap": 1, "dear": 1}, min_replicas=0)
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "wva-model-scale-to-zero-config", "namespace": "gpu-autoscaler"},
            "data": {"default": "enable_scale_to_zero: true\nretention_period: 4s\n"},
        }
    )
    cluster = _cluster(tmp_path, objs)
    settings = Settings(
        cluster=str(tmp_path / "cluster.json"),
        prometheus_url=url,
        autoscaler_interval=3600,
        autoscaler_wake_interval=60,
        autoscaler_metrics_ttl=0.5,
        autoscaler_wake_direct=True,
        scale_down_stabilization=0,
    )
    comp = AutoscalerComponent(settings)
    app = create_app(settings, cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        src = comp.source
        assert isinstance(src, PrometheusSource)
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                fake.serve("l40s-0")
                await asyncio.sleep(0.2)

        # requests flowing: increase(vllm:request_success_total[4s]) > 0 -> the engine's targets stay
        task = asyncio.create_task(traffic())
        await asyncio.sleep(2.5)
        busy = {"cheap": (1, "WithinBand"), "dear": (1, "WithinBand")}
        await _until(comp.run_cycle, busy)
        deadline = time.monotonic() + 20
        while (comp.last_zero[(NS, MODEL)].requests or 0) <= 0:  # a count, not "unknown", keeps them
            assert time.monotonic() < deadline, comp.last_zero
            await asyncio.sleep(0.3)
            await _until(comp.run_cycle, busy)
        # no successful request for the whole retention window -> every variant to 0 at once
        stop.set()
        await task
        await _until(comp.run_cycle, {"cheap": (0, "ScaledToZero"), "dear": (0, "ScaledToZero")})
        # the HPA/KEDA and the Deployment controller apply it: pods gone, their series go stale
        for name in ("cheap", "dear"):
            dep = cluster.get("Deployment", name, NS)
            assert dep is not None
            cluster.upsert({**dep, "spec": {**dep["spec"], "replicas": 0}, "status": {"replicas": 0}})
        for pod in ("l40s-0", "h100-0"):
            cluster.delete("Pod", pod, NS)
            fake.exporters.broken.add(pod)
        # nothing queued at the gateway: the model stays at zero, and the wake poll does nothing
        await _until(comp.run_cycle, {"cheap": (0, "ScaledToZero"), "dear": (0, "ScaledToZero")})
        assert await comp.wake_cycle() == []
        # requests queue for the model at the gateway: the cheapest variant wakes at once, 0 -> 1 on /scale.
        # WVA's queue query: `target_model_name`, else `model_name` where the target is empty
        fake.queue.labels(MODEL, "llama-alias").set(2)  # counted for MODEL
        fake.queue.labels("", MODEL).set(7)  # MODEL has a target series: not used
        await _until(comp.wake_cycle, {"cheap": (1, "ScaleFromZero"), "dear": (0, "ScaleFromZero")})
        assert await src.queue_sizes() == {MODEL: 2.0, "qwen": 5.0}
        assert comp.wake["queued"] == {MODEL: 2.0}
        cheap, dear = cluster.get("Deployment", "cheap", NS), cluster.get("Deployment", "dear", NS)
        assert cheap is not None and dear is not None
        assert (cheap["spec"]["replicas"], dear["spec"]["replicas"]) == (1, 0)
        assert comp.wake["woken"] == 1
        # the full cycle agrees: it holds the woken replica while it starts, never undoes the wake
        out = {d.variant.name: (d.desired, d.code.value) for d in await comp.run_cycle()}
        assert out == {"cheap": (1, "ReplicasStarting"), "dear": (0, "ReplicasStarting")}
