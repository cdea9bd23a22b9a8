"""Inventory on the demo cluster, and the component inside the real app: cycle, /metrics, config reload."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.autoscaler.collector import MetricsSnapshot, MetricsSource, StaticSource
from app.autoscaler.component import AutoscalerComponent
from app.autoscaler.inventory import PodIndex, build_variants, parse_cost
from app.cluster.base import ClusterView
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


def _settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "cluster": "demo",
        "autoscaler_interval": 3600,
        "autoscaler_wake_interval": 60,
        "scale_down_stabilization": 0,
    }
    return Settings(**(base | kw))


@asynccontextmanager
async def running(
    source: MetricsSource | None = None,
    settings: Settings | None = None,
    cluster: ClusterView | None = None,
    leadership: Any = None,
) -> AsyncIterator[tuple[Any, AutoscalerComponent, FastAPI]]:
    """The component inside the real app on the demo cluster (or `cluster`), its first cycle run."""
    settings = settings or _settings()
    view = cluster or SnapshotCluster()
    comp = AutoscalerComponent(settings)
    comp.source = source
    app = create_app(settings, cluster=view, components=[lambda s: comp])
    if leadership is not None:
        app.state.ctx.leadership = leadership
    async with app.router.lifespan_context(app):
        yield view, comp, app


async def test_component_cycle_metrics_and_reload() -> None:
    source = StaticSource()
    async with running(source) as (cluster, comp, app):
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
    async with running() as (_, comp, _app):
        out = await comp.run_cycle()
        assert out and all(d.action.value == "hold" and d.desired == d.variant.current for d in out)


async def test_status_patch() -> None:
    source = StaticSource()
    async with running(source, _settings(autoscaler_write_status=True)) as (cluster, comp, _):
        for pod in cluster.list("Pod", "inference"):
            source.set("inference", pod["metadata"]["name"], kv=0.9, queue=6)
        await comp.run_cycle()
        va = cluster.get("VariantAutoscaling", "llama-8b-l40s", "inference")
        assert va is not None
        assert va["status"]["desiredOptimizedAlloc"]["numReplicas"] == 3
        conditions = {c["type"]: c for c in va["status"]["conditions"]}
        assert conditions["OptimizationReady"]["reason"] == "ScaleUp"


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_VARIANTS = ("llama-8b-h100", "llama-8b-l40s")


def _allow_zero(cluster: SnapshotCluster) -> None:
    """minReplicas 0 on the llama variants (the CRD's default 1 keeps a replica)."""
    for name in LLAMA_VARIANTS:
        va = copy.deepcopy(cluster.get("VariantAutoscaling", name, "inference"))
        assert va is not None
        va["spec"]["minReplicas"] = 0
        cluster.upsert(va)


def _to_zero(cluster: SnapshotCluster) -> None:
    """Play the Deployment controller after a scale to zero: replicas 0, pods gone."""
    for name in LLAMA_VARIANTS:
        dep = copy.deepcopy(cluster.get("Deployment", name, "inference"))
        assert dep is not None
        dep["spec"]["replicas"] = 0
        dep["status"] = {"replicas": 0, "readyReplicas": 0}
        cluster.upsert(dep)
    for pod in cluster.list("Pod", "inference"):
        if pod["metadata"]["name"].startswith("llama-"):
            cluster.delete("Pod", pod["metadata"]["name"], "inference")


def _zero_config(cluster: SnapshotCluster, data: dict[str, str]) -> None:
    cluster.upsert(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "wva-model-scale-to-zero-config", "namespace": "gpu-autoscaler"},
            "data": data,
        }
    )


class NotLeader:
    is_leader = False
    identity = "follower"

    def add_listener(self, listener: Any) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"leader": False, "identity": self.identity}


async def test_scale_to_zero_and_back_in_the_app() -> None:
    source = StaticSource()
    settings = _settings(
        autoscaler_wake_direct=True, autoscaler_write_status=True, scale_down_stabilization=300
    )
    async with running(source, settings) as (cluster, comp, app):
        _allow_zero(cluster)
        for pod in cluster.list("Pod", "inference"):
            source.set("inference", pod["metadata"]["name"], kv=0.5, queue=0)
        # the ConfigMap is watched: enabling scale-to-zero for llama needs no restart
        _zero_config(
            cluster, {"llama": f"model_id: {LLAMA}\nenable_scale_to_zero: true\nretention_period: 5m"}
        )
        assert (
            comp.zero_config.enabled(LLAMA, "inference") and comp.zero_config.retention_s(LLAMA, "x") == 300
        )
        # requests in the window: no change; an unknown count: no change either
        source.requests = {("inference", LLAMA): 3.0}
        out = {d.variant.name: d for d in await comp.run_cycle()}
        assert {out[n].desired for n in LLAMA_VARIANTS} == {2}
        source.requests = {}
        out = {d.variant.name: d for d in await comp.run_cycle()}
        assert {out[n].desired for n in LLAMA_VARIANTS} == {2}
        assert "request count unknown" in out["llama-8b-l40s"].reasons[-1]
        # idle for the whole retention window: every llama variant to 0 at once (no stabilisation delay)
        source.requests = {("inference", LLAMA): 0.0}
        out = {d.variant.name: d for d in await comp.run_cycle()}
        assert {(out[n].desired, out[n].code.value) for n in LLAMA_VARIANTS} == {(0, "ScaledToZero")}
        assert out["qwen-32b-a100"].code.value != "ScaledToZero"  # qwen is not configured
        va = cluster.get("VariantAutoscaling", "llama-8b-l40s", "inference")
        assert va is not None
        cond = {c["type"]: c for c in va["status"]["conditions"]}
        assert cond["OptimizationReady"]["reason"] == "ScaledToZero"
        assert va["status"]["desiredOptimizedAlloc"]["numReplicas"] == 0
        # the HPA/KEDA applied it; nothing queued at the gateway: the model stays at zero
        _to_zero(cluster)
        out = {d.variant.name: d for d in await comp.run_cycle()}
        assert {(out[n].desired, out[n].code.value) for n in LLAMA_VARIANTS} == {(0, "ScaledToZero")}
        assert await comp.wake_cycle() == []
        # requests queue at the gateway: the cheapest variant (l40s, cost 15) wakes at once, the other not
        source.queued = {LLAMA: 3.0}
        woken = await comp.wake_cycle()
        assert sorted((d.variant.name, d.desired, d.code.value) for d in woken) == [
            ("llama-8b-h100", 0, "ScaleFromZero"),
            ("llama-8b-l40s", 1, "ScaleFromZero"),
        ]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            text = (await client.get("/metrics")).text
            body = (await client.get("/autoscaler/decisions")).json()
        assert 'wva_desired_replicas{accelerator_type="L40S",model_id="' + LLAMA in text
        line = next(
            x for x in text.splitlines() if x.startswith("wva_desired_replicas{") and "llama-8b-l40s" in x
        )
        assert line.endswith(" 1.0")
        row = next(r for r in body["decisions"] if r["variant"] == "llama-8b-l40s")
        assert (row["current"], row["desired"], row["reason"], row["accelerator"]) == (
            0,
            1,
            "ScaleFromZero",
            "L40S",
        )
        assert body["wake"]["queued"] == {LLAMA: 3.0}
        # wake_direct: the Deployment's /scale went 0 -> 1, an Event says so; only the cheapest
        dep = cluster.get("Deployment", "llama-8b-l40s", "inference")
        assert dep is not None and dep["spec"]["replicas"] == 1
        dear = cluster.get("Deployment", "llama-8b-h100", "inference")
        assert dear is not None and dear["spec"]["replicas"] == 0
        events = list(cluster.others.get("Event", {}).values())
        assert [e["reason"] for e in events] == ["ScaledFromZero"]
        assert events[0]["involvedObject"]["name"] == "llama-8b-l40s"
        # the next poll finds the model no longer at zero: nothing more is scaled
        assert await comp.wake_cycle() == []
        assert comp.wake["woken"] == 1


async def test_full_cycle_wakes_directly_too() -> None:
    """The 30 s cycle reads the queue as well; whichever sees it first, the Deployment is scaled once."""
    source = StaticSource()
    async with running(source, _settings(autoscaler_wake_direct=True)) as (cluster, comp, _):
        _allow_zero(cluster)
        _to_zero(cluster)
        source.queued = {LLAMA: 2.0}
        out = {d.variant.name: d for d in await comp.run_cycle()}
        assert (out["llama-8b-l40s"].desired, out["llama-8b-l40s"].code.value) == (1, "ScaleFromZero")
        dep = cluster.get("Deployment", "llama-8b-l40s", "inference")
        assert dep is not None and dep["spec"]["replicas"] == 1
        assert await comp.wake_cycle() == [] and comp.wake["woken"] == 1


async def test_wake_without_direct_scaling_only_exports() -> None:
    source = StaticSource()
    async with running(source, _settings(scale_down_stabilization=300)) as (cluster, comp, _):
        _allow_zero(cluster)
        _to_zero(cluster)
        source.queued = {LLAMA: 1.0}
        (woken,) = [d for d in await comp.wake_cycle() if d.desired == 1]
        assert woken.variant.name == "llama-8b-l40s"
        dep = cluster.get("Deployment", "llama-8b-l40s", "inference")
        assert dep is not None and dep["spec"]["replicas"] == 0  # KEDA acts on wva_desired_replicas
        # the next full cycle agrees, so it does not undo the export before KEDA polls
        out = {d.variant.name: d.desired for d in await comp.run_cycle()}
        assert (out["llama-8b-l40s"], out["llama-8b-h100"]) == (1, 0)
        # switched to direct waking: the next poll scales the Deployment though the decision is not new
        comp.wake_direct = True
        assert await comp.wake_cycle() == []
        dep = cluster.get("Deployment", "llama-8b-l40s", "inference")
        assert dep is not None and dep["spec"]["replicas"] == 1
        _to_zero(cluster)
        # a failing gateway query wakes nothing and is shown
        source.error = "ConnectError: refused"
        assert await comp.wake_cycle() == []
        assert "refused" in comp.describe()["wake"]["error"]


async def test_status_written_only_by_the_leader_and_unresolved_targets() -> None:
    settings = _settings(autoscaler_write_status=True)
    async with running(StaticSource(), settings, leadership=NotLeader()) as (cluster, comp, app):
        ctx = app.state.ctx
        va = copy.deepcopy(cluster.get("VariantAutoscaling", "qwen-32b-h100", "inference"))
        assert va is not None
        va["spec"]["scaleTargetRef"]["name"] = "gone"
        cluster.upsert(va)
        before = {v["metadata"]["name"]: v.get("status") for v in cluster.list("VariantAutoscaling")}
        await comp.run_cycle()
        assert {v["metadata"]["name"]: v.get("status") for v in cluster.list("VariantAutoscaling")} == before
        ctx.leadership = type("Leader", (), {"is_leader": True, "identity": "me"})()
        await comp.run_cycle()
        gone = cluster.get("VariantAutoscaling", "qwen-32b-h100", "inference")
        assert gone is not None
        cond = {c["type"]: c for c in gone["status"]["conditions"]}
        assert cond["TargetResolved"]["reason"] == "TargetNotFound"
        assert "Deployment inference/gone not found" in cond["TargetResolved"]["message"]
        llama = cluster.get("VariantAutoscaling", "llama-8b-l40s", "inference")
        assert llama is not None
        cond = {c["type"]: c for c in llama["status"]["conditions"]}
        assert cond["MetricsAvailable"]["reason"] == "MetricsMissing"  # no samples in the source
        assert llama["status"]["currentAlloc"] == {"accelerator": "L40S", "numReplicas": 2}
        # a second cycle with nothing new writes nothing
        before = comp.status_writes["patched"]
        await comp.run_cycle()
        assert comp.status_writes["patched"] == before


async def test_status_is_on_by_default_only_against_a_live_cluster() -> None:
    from app.cluster.kube import KubeCluster
    from tests.app.test_kube import FakeApi

    assert Settings().autoscaler_write_status is None
    # leader election off: this is about the status default, not about who leads (test_leader.py)
    settings = _settings(leader_election=False)
    for cluster, expected in ((SnapshotCluster(), False), (KubeCluster(api=FakeApi()), True)):
        async with running(StaticSource(), settings, cluster=cluster) as (_, comp, _app):
            assert comp.write_status is expected
            await comp.run_cycle()
            if expected:
                api = cluster._api  # type: ignore[attr-defined]
                assert any(k == "VariantAutoscaling" and set(p) == {"status"} for k, _, _, p in api.patches)
    off = AutoscalerComponent(Settings(cluster="demo", autoscaler_write_status=False))
    assert off.write_status is False


async def test_env_switch_and_older_capacity_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WVA_SCALE_TO_ZERO", "true")
    async with running(StaticSource()) as (cluster, comp, _):
        assert comp.zero_config.enabled("any", "ns")  # environment level
        _zero_config(cluster, {"default": "enable_scale_to_zero: false"})
        assert not comp.zero_config.enabled("any", "ns")  # ConfigMap default beats the environment
        cm = copy.deepcopy(cluster.get("ConfigMap", "capacity-scaling-config", "gpu-autoscaler"))
        assert cm is not None
        cm["data"] = {"default": "kvCacheUtilizationThreshold: 0.9\nqueueDepthThreshold: 8"}
        cluster.upsert(cm)
        assert (comp.configs.default.kv_cache_threshold, comp.configs.default.queue_length_threshold) == (
            0.9,
            8,
        )
        assert any("'default'" in w and "deprecated" in w for w in comp.describe()["config"]["warnings"])


class CountingSource(StaticSource):
    """Records the zero rules' queries: their number must not grow with the number of models."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def request_counts(self, window: str) -> dict[tuple[str, str], float]:
        self.calls.append(f"count[{window}]")
        return await super().request_counts(window)

    async def queue_sizes(self) -> dict[str, float]:
        self.calls.append("queue")
        return await super().queue_sizes()


@pytest.mark.parametrize(
    ("zero_config", "llama_at_zero", "calls"),
    [
        ({}, False, []),  # scale-to-zero off everywhere, nothing at zero: no extra query
        ({"default": "enable_scale_to_zero: true"}, False, ["count[600s]"]),  # one per retention, not model
        (
            {"default": "enable_scale_to_zero: true", "l": f"model_id: {LLAMA}\nretention_period: 1h"},
            False,
            ["count[600s]", "count[3600s]"],
        ),
        ({}, True, ["queue"]),  # a model at zero: the gateway queue
        ({"default": "enable_scale_to_zero: true"}, True, ["count[600s]", "queue"]),  # qwen still runs
    ],
)
async def test_zero_queries_per_cycle(
    zero_config: dict[str, str], llama_at_zero: bool, calls: list[str]
) -> None:
    source = CountingSource()
    async with running(source) as (cluster, comp, _):
        if zero_config:
            _zero_config(cluster, zero_config)
        if llama_at_zero:
            _allow_zero(cluster)
            _to_zero(cluster)
        source.calls.clear()
        await comp.run_cycle()
        assert source.calls == calls
