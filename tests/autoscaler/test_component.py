"""Inventory on the demo cluster, and the component inside the real app: cycle, /metrics, config reload."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest

from app.autoscaler.collector import MetricsSnapshot, StaticSource
from app.autoscaler.component import AutoscalerComponent
from app.autoscaler.inventory import PodIndex, build_variants, parse_cost
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.settings import Settings


@pytest.mark.parametrize(
    ("raw", "cost"), [("40.0", 40.0), (None, 10.0), ("x", 10.0), ("-1", 10.0), (15, 15.0)]
)
def test_parse_cost(raw: object, cost: float) -> None:
    assert parse_cost(raw) == cost


def test_selector_matching() -> None:
    pods = [
        {"metadata": {"name": "a", "namespace": "n", "labels": {"app": "x", "tier": "gpu"}}, "status": {}},
        {"metadata": {"name": "b", "namespace": "n", "labels": {"app": "x"}}, "status": {}},
        {"metadata": {"name": "c", "namespace": "m", "labels": {"app": "x"}}, "status": {}},
        {"metadata": {"name": "d", "namespace": "n", "labels": {"app": "x"}}, "status": {"phase": "Failed"}},
    ]
    idx = PodIndex(pods)
    names = lambda sel: sorted(p["metadata"]["name"] for p in idx.select("n", sel))  # noqa: E731
    assert names({"matchLabels": {"app": "x"}}) == ["a", "b"]
    assert names(
        {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}
    ) == ["a"]
    assert names({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}) == ["b"]
    assert names({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]}) == ["a"]
    assert names({}) == []


async def test_inventory_on_demo_cluster() -> None:
    cluster = SnapshotCluster()
    await cluster.start()
    infos = {i.variant.name: i.variant for i in build_variants(cluster, MetricsSnapshot(), now=0)}
    assert set(infos) == {"llama-8b-h100", "llama-8b-l40s", "qwen-32b-a100", "qwen-32b-h100"}
    v = infos["llama-8b-l40s"]
    assert (v.cost, v.accelerator, v.current, v.ready, len(v.replicas)) == (15.0, "L40S", 2, 2, 2)
    assert v.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert all(r.metrics is None for r in v.replicas)


def _settings() -> Settings:
    return Settings(cluster="demo", autoscaler_interval=3600, scale_down_stabilization=0)


async def test_component_cycle_metrics_and_reload() -> None:
    cluster = SnapshotCluster()
    comp = AutoscalerComponent(_settings())
    source = StaticSource()
    comp.source = source
    app = create_app(_settings(), cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        for pod in cluster.list("Pod", "inference"):
            source.set("inference", pod["metadata"]["name"], kv=0.72, queue=1)
        decisions = {d.variant.name: d for d in await comp.run_cycle()}
        # llama override: kvCacheThreshold 0.75 -> spare 0.03 < 0.10 -> cheapest (l40s, 15) +1
        assert decisions["llama-8b-l40s"].desired == 3 and decisions["llama-8b-h100"].desired == 2
        # qwen uses default 0.80 -> spare 0.08 < 0.10 -> a100 (30) +1
        assert decisions["qwen-32b-a100"].desired == 2
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            text = (await client.get("/metrics")).text
            assert (
                'wva_desired_replicas{accelerator_type="L40S",model_id="meta-llama/Llama-3.1-8B-Instruct",'
                in text
            )
            assert "wva_desired_ratio" in text and "gpu_autoscaler_autoscaler_cycle_seconds" in text
            body = (await client.get("/autoscaler/decisions")).json()
            assert {d["variant"] for d in body["decisions"]} >= {"llama-8b-l40s"}
        # ConfigMap edit: reloaded and a cycle triggered without restart
        cm = copy.deepcopy(cluster.get("ConfigMap", "capacity-scaling-config", "gpu-autoscaler"))
        assert cm is not None
        cm["data"] = {"default": "kvCacheThreshold: 0.95\nkvSpareTrigger: 0.1"}
        before = comp.cycles
        cluster.upsert(cm)
        assert comp.configs.default.kv_cache_threshold == 0.95 and not comp.configs.overrides
        for _ in range(100):
            if comp.cycles > before:
                break
            await asyncio.sleep(0.01)
        assert comp.cycles > before
        assert all(d.desired == d.variant.current for d in comp.last_decisions)


async def test_no_prometheus_means_hold() -> None:
    cluster = SnapshotCluster()
    comp = AutoscalerComponent(_settings())
    app = create_app(_settings(), cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        out = await comp.run_cycle()
        assert out and all(d.action.value == "hold" and d.desired == d.variant.current for d in out)


async def test_status_patch() -> None:
    cluster = SnapshotCluster()
    comp = AutoscalerComponent(_settings())
    comp.write_status = True
    source = StaticSource()
    comp.source = source
    app = create_app(_settings(), cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        for pod in cluster.list("Pod", "inference"):
            source.set("inference", pod["metadata"]["name"], kv=0.9, queue=6)
        await comp.run_cycle()
        va = cluster.get("VariantAutoscaling", "llama-8b-l40s", "inference")
        assert va is not None
        assert va["status"]["desiredOptimizedAlloc"]["numReplicas"] == 3
        assert va["status"]["conditions"][0]["type"] == "OptimizationReady"
