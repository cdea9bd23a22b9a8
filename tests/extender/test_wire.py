"""Wire format against real kube-scheduler request bodies (k8s.io/kube-scheduler/extender/v1, PascalCase)."""

from __future__ import annotations

import json
from typing import Any

from extender.wire import ExtenderFilterResult, HostPriorityList
from tests.extender.conftest import make_pod, sample

FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def test_filter_nodenames_sample(sample_client: Any) -> None:
    client, _, _ = sample_client
    body = sample("extender-filter-nodenames.json")
    resp = client.post("/filter", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    out = resp.json()
    assert set(out) == FILTER_KEYS
    ExtenderFilterResult.model_validate(out)
    assert out["Nodes"] is None
    assert out["Error"] == ""
    # a 2-GPU pod with topology: required; the A100 node is all NV12, the L40S pairs are PCIe only
    assert out["NodeNames"] == ["0001-gpu-a100-0"]
    assert out["FailedNodes"] == {}
    assert out["FailedAndUnresolvableNodes"] == {
        "0000-gpu-l40s-0": "no all-NVLink set of 2 GPUs on this node (largest: 1)"
    }


def test_filter_full_nodes_sample_replies_nodes(sample_client: Any) -> None:
    client, _, _ = sample_client
    body = sample("extender-filter-nodes.json")
    out = client.post("/filter", json=body).json()
    assert set(out) == FILTER_KEYS
    assert out["NodeNames"] is None  # nodeCacheCapable=false: the scheduler reads only Nodes
    names = [n["metadata"]["name"] for n in out["Nodes"]["items"]]
    assert names == ["0001-gpu-a100-0"]
    a100 = next(n for n in body["Nodes"]["items"] if n["metadata"]["name"] == "0001-gpu-a100-0")
    assert out["Nodes"]["items"][0] == a100  # the Node object goes back untouched
    assert "0000-gpu-l40s-0" in out["FailedAndUnresolvableNodes"]


def test_full_nodes_mode_works_without_the_view(make_client: Any) -> None:
    client, _, comp = make_client([])  # the view knows no node: the request's Node objects are the truth
    out = client.post("/filter", json=sample("extender-filter-nodes.json")).json()
    assert [n["metadata"]["name"] for n in out["Nodes"]["items"]] == ["0001-gpu-a100-0"]
    assert comp.adapter.state.n == 2


def test_prioritize_samples_bare_array(sample_client: Any) -> None:
    client, _, _ = sample_client
    for name in ("extender-prioritize-nodenames.json", "extender-prioritize-nodes.json"):
        body = sample(name)
        resp = client.post("/prioritize", json=body)
        assert resp.status_code == 200
        out = resp.json()
        assert isinstance(out, list)
        HostPriorityList.validate_python(out)
        assert all(set(h) == {"Host", "Score"} and isinstance(h["Score"], int) for h in out)
        assert sorted(h["Host"] for h in out) == ["0000-gpu-l40s-0", "0001-gpu-a100-0"]
        scores = {h["Host"]: h["Score"] for h in out}
        assert scores["0000-gpu-l40s-0"] == 0  # infeasible for this pod
        assert 1 <= scores["0001-gpu-a100-0"] <= 10


def test_lowercase_keys_are_accepted(sample_client: Any) -> None:
    client, _, _ = sample_client
    body = sample("extender-filter-nodenames.json")
    lower = {"pod": body["Pod"], "nodes": None, "nodenames": body["NodeNames"]}
    out = client.post("/filter", json=lower).json()
    assert out["NodeNames"] == ["0001-gpu-a100-0"]


def test_unknown_node_name_is_unresolvable(sample_client: Any) -> None:
    client, _, _ = sample_client
    body = {"Pod": make_pod("p", gpus=1), "Nodes": None, "NodeNames": ["0001-gpu-a100-0", "ghost"]}
    out = client.post("/filter", json=body).json()
    assert out["NodeNames"] == ["0001-gpu-a100-0"]
    assert out["FailedAndUnresolvableNodes"] == {"ghost": "node is not in the extender's cluster view"}
    prio = client.post("/prioritize", json=body).json()
    assert [h["Host"] for h in prio] == ["0001-gpu-a100-0", "ghost"]
    assert prio[1]["Score"] == 0


def test_pod_without_gpu_passes_through(sample_client: Any) -> None:
    client, _, _ = sample_client
    names = ["0000-gpu-l40s-0", "0001-gpu-a100-0", "not-even-known"]
    body = {"Pod": make_pod("etl", cpu="16"), "Nodes": None, "NodeNames": names}
    out = client.post("/filter", json=body).json()
    assert out["NodeNames"] == names and out["FailedNodes"] == {} and out["FailedAndUnresolvableNodes"] == {}
    prio = client.post("/prioritize", json=body).json()
    assert {h["Score"] for h in prio} == {5} and [h["Host"] for h in prio] == names
    full = sample("extender-filter-nodes.json")
    full["Pod"] = make_pod("etl")
    out = client.post("/filter", json=full).json()
    assert out["Nodes"]["items"] == full["Nodes"]["items"]


def test_metrics_exported(sample_client: Any) -> None:
    client, _, _ = sample_client
    client.post("/filter", json=sample("extender-filter-nodenames.json"))
    client.post("/prioritize", json=sample("extender-prioritize-nodenames.json"))
    client.post("/filter", content=b"{")
    text = client.get("/metrics").text
    assert 'gpu_autoscaler_extender_requests_total{outcome="ok",verb="filter"}' in text
    assert 'gpu_autoscaler_extender_requests_total{outcome="bad_request",verb="filter"}' in text
    assert 'gpu_autoscaler_extender_duration_seconds_bucket{le="0.005",verb="prioritize"}' in text
