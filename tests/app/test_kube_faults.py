"""Kubernetes faults (issue 11, item 4): a watch that drops, then answers 410 Gone, while pods are bound,
deleted and nodes added behind its back; the relist leaves the extender's state exactly right: no node or
pod lost or counted twice, no assumed pod left behind. A capacity ConfigMap edited into invalid YAML keeps
the previous config, and says so."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubernetes.client import ApiException

from app.autoscaler.component import AutoscalerComponent
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.metrics import REGISTRY
from app.settings import Settings
from extender.core import ScoringConfig
from extender.inventory import parse_pod
from extender.service import ExtenderService
from extender.view_adapter import TERMINAL_PHASES, NodeStateAdapter, pod_key
from extender.wire import ExtenderArgs
from tests.app.test_kube import FakeApi, as_list_items, make
from tests.extender.conftest import make_node, make_pod
from tests.waiting import until

GONE = ApiException(status=410, reason="Gone")


def pending(name: str, gpus: int) -> dict[str, Any]:
    pod = make_pod(name, gpus=gpus, namespace="ml-team")
    pod.pop("kind")
    pod.pop("apiVersion")
    pod["metadata"]["resourceVersion"] = "1"
    return pod


def bound(pod: dict[str, Any], node: str) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["spec"]["nodeName"] = node
    out["status"] = {"phase": "Running"}
    out["metadata"]["resourceVersion"] = "2"
    return out


def free_gpus(adapter: NodeStateAdapter) -> dict[str, int]:
    st = adapter.state
    return {n: int(st.full_free[r]) for n, r in st.index.items() if st.alive[r]}


async def test_dropped_watch_then_410_relists_without_losing_or_doubling_anything() -> None:
    api = FakeApi()
    p, q = pending("p", 2), pending("q", 1)  # two pods waiting for a node
    api.lists["Pod"] = [*as_list_items("Pod"), p, q]
    view = make(api)
    await view.start()
    adapter = NodeStateAdapter(ScoringConfig(resource_policy="binpack"))
    adapter.attach(view)
    svc = ExtenderService(adapter, adapter.config)
    try:
        before = free_gpus(adapter)
        names = sorted(before)
        # the extender steers both pods, holding their GPUs (assumed) until the pods show up bound
        chosen = {}
        for pod in (p, q):
            svc.prioritize(ExtenderArgs(Pod=pod, NodeNames=names))
            chosen[pod["metadata"]["name"]] = svc.last_placement[pod["metadata"]["uid"]].node
        assert len(adapter.assume) == 2
        # behind the watch's back: p is bound where we steered it, q deleted, a GPU node joins,
        # and a running pod (llama-8b-h100 on dgx-h100-1) finishes and is deleted
        gone_pod = next(o for o in as_list_items("Pod") if o["spec"].get("nodeName") == "dgx-h100-1")
        after_pods = [
            o for o in as_list_items("Pod") if o["metadata"]["name"] != gone_pod["metadata"]["name"]
        ]
        after_pods.append(bound(p, chosen["p"]))
        new_node = make_node("dgx-h100-9", gpus=8)
        new_node.pop("kind")
        new_node.pop("apiVersion")
        api.lists["Pod"] = after_pods
        api.lists["Node"] = [*as_list_items("Node"), new_node]
        api.watches["Pod"] = [RuntimeError("connection reset by peer"), GONE]
        api.watches["Node"] = [GONE]
        lists = dict(api.list_calls)
        with view._streams_lock:
            streams = list(view._streams)
        for s in streams:  # the idle watches end: the scripted drops and 410s come next
            s.close()
        await until(
            lambda: (
                api.list_calls["Pod"] > lists["Pod"]
                and api.list_calls["Node"] > lists["Node"]
                and "dgx-h100-9" in free_gpus(adapter)
                and not adapter.assume
            ),
            timeout=10,
        )
        await asyncio.sleep(0.05)  # any late event would land now
        after = free_gpus(adapter)
        assert sorted(after) == sorted([*names, "dgx-h100-9"])  # every node once, the new one too
        assert len(adapter.state.names) == len(set(adapter.state.names))
        expected = dict(before, **{"dgx-h100-9": 8})
        expected[chosen["p"]] -= 2  # p holds its GPUs once: bound, no longer assumed
        expected["dgx-h100-1"] += parse_pod(gone_pod).req.gpu_count
        assert after == expected
        assert adapter.assume.on_node(chosen["q"]) == []  # q is gone: nothing assumed for it
        active = [
            o
            for o in after_pods
            if o["spec"].get("nodeName") and (o.get("status") or {}).get("phase") not in TERMINAL_PHASES
        ]
        assert set(adapter.bound) == {pod_key(o) for o in active}  # each pod once
    finally:
        adapter.detach()
        await view.stop()


async def test_invalid_yaml_configmap_keeps_the_previous_config() -> None:
    settings = Settings(cluster="demo", autoscaler_interval=3600)
    cluster = SnapshotCluster()
    comp = AutoscalerComponent(settings)
    app = create_app(settings, cluster=cluster, components=[lambda s: comp])
    async with app.router.lifespan_context(app):
        cm = copy.deepcopy(cluster.get("ConfigMap", "capacity-scaling-config", "gpu-autoscaler"))
        assert cm is not None
        cm["data"] = {"default": "kvCacheThreshold: 0.9\nkvSpareTrigger: 0.2"}
        cluster.upsert(cm)
        assert comp.configs.default.kv_cache_threshold == 0.9
        errors = REGISTRY.get_sample_value(
            "gpu_autoscaler_config_reload_errors_total", {"configmap": "capacity-scaling-config"}
        )
        broken = copy.deepcopy(cm)
        broken["data"] = {"default": "kvCacheThreshold: [0.5\n  oops: {"}
        cluster.upsert(broken)
        assert comp.configs.default.kv_cache_threshold == 0.9, "the previous config stays"
        assert comp.configs.default_source == "configmap"
        assert "not valid YAML" in (comp.describe()["config"]["reload_error"] or "")
        after = REGISTRY.get_sample_value(
            "gpu_autoscaler_config_reload_errors_total", {"configmap": "capacity-scaling-config"}
        )
        assert (after or 0) == (errors or 0) + 1
        fixed = copy.deepcopy(cm)
        fixed["data"] = {"default": "kvCacheThreshold: 0.7\nkvSpareTrigger: 0.1"}
        cluster.upsert(fixed)
        assert comp.configs.default.kv_cache_threshold == 0.7
        assert comp.describe()["config"]["reload_error"] is None
