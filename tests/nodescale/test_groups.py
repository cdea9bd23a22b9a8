"""Node groups as Cluster Autoscaler's Cluster API provider reads them, their template nodes, and the
kube-scheduler predicates the simulation adds to the extender's filter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.nodescale.groups import (
    build_groups,
    selector_accepts,
    template_from_annotations,
    template_from_node,
)
from app.nodescale.predicates import affinity_mismatch, pod_fits_node, toleration_matches
from extender.inventory import parse_node
from tests.nodescale.objects import NOW, PRICES, Obj, machine, machine_deployment, node, pod

CAP = "capacity.cluster-autoscaler.kubernetes.io/"


@pytest.mark.parametrize(
    ("tol", "taint", "ok"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        (
            {"key": "k", "value": "v"},
            {"key": "k", "value": "v", "effect": "NoExecute"},
            True,
        ),  # Equal, any effect
        ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
        ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
        (
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
        ),
        ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_toleration_matches(tol: Obj, taint: Obj, ok: bool) -> None:
    assert toleration_matches(tol, taint) is ok


def _affinity(*terms: Obj) -> dict[str, Any]:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


@pytest.mark.parametrize(
    ("affinity", "fits"),
    [
        (
            _affinity(
                {"matchExpressions": [{"key": "nvidia.com/gpu.count", "operator": "Gt", "values": ["4"]}]}
            ),
            True,
        ),
        (
            _affinity(
                {"matchExpressions": [{"key": "nvidia.com/gpu.count", "operator": "Lt", "values": ["4"]}]}
            ),
            False,
        ),
        (
            _affinity(
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["x"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            ),
            True,
        ),  # OR of terms
        (_affinity({"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]}), True),
        (_affinity({}), False),  # an empty term matches nothing
    ],
)
def test_required_node_affinity(affinity: dict[str, Any], fits: bool) -> None:
    p = pod("p")
    p["spec"]["affinity"] = affinity
    assert (affinity_mismatch(p, node("n1")) is None) is fits


def test_untolerated_taint_is_named() -> None:
    n = node(
        "n",
        taints=[
            {"key": "lifecycle", "value": "spot", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ],
    )
    assert (
        pod_fits_node(pod("p", tolerations=[]), n) == "pod does not tolerate taint lifecycle=spot:NoSchedule"
    )
    assert pod_fits_node(pod("p", tolerations=[{"key": "lifecycle", "operator": "Exists"}]), n) is None


def test_template_from_annotations() -> None:
    md = machine_deployment(
        "z",
        0,
        annotations={
            CAP + "cpu": "96",
            CAP + "memory": "1000Gi",
            CAP + "gpu-type": "nvidia.com/gpu",
            CAP + "gpu-count": "8",
            CAP
            + "labels": "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,nvidia.com/gpu.memory=81559,pool=gpu",
            CAP + "taints": "dedicated=gpu-override:NoSchedule,spot:NoExecute",
        },
    )
    md["spec"]["template"]["metadata"]["labels"] |= {
        "node-role.kubernetes.io/gpu": "",
        "team": "not-propagated",
    }
    md["spec"]["template"]["spec"]["taints"] = [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "kept", "value": "1", "effect": "NoSchedule"},
    ]
    t, why = template_from_annotations(md)
    assert t is not None and why == ""
    assert t["status"]["allocatable"] == {
        "cpu": "96",
        "memory": "1000Gi",
        "pods": "110",
        "nvidia.com/gpu": "8",
    }
    labels = t["metadata"]["labels"]
    assert labels["pool"] == "gpu" and "node-role.kubernetes.io/gpu" in labels and "team" not in labels
    assert {(x["key"], x.get("value"), x.get("effect")) for x in t["spec"]["taints"]} == {
        (
            "dedicated",
            "gpu-override",
            "NoSchedule",
        ),  # the annotation overrides the spec taint (same key+effect)
        ("kept", "1", "NoSchedule"),
        ("spot", None, "NoExecute"),
    }
    info = parse_node(t)
    assert (info.capacity.gpu_count, info.gpu_memory_mib, info.product) == (8, 81559, "NVIDIA-H100-80GB-HBM3")


@pytest.mark.parametrize(
    ("ann", "why"),
    [
        ({CAP + "cpu": "96"}, "cpu/memory annotations"),
        ({CAP + "cpu": "lots", CAP + "memory": "1Gi"}, "not a quantity"),
        ({CAP + "cpu": "8", CAP + "memory": "1Gi", CAP + "gpu-count": "two"}, "not an integer"),
    ],
)
def test_template_annotations_that_do_not_make_a_node(ann: dict[str, str], why: str) -> None:
    t, reason = template_from_annotations(machine_deployment("z", 0, annotations=ann))
    assert t is None and why in reason


def test_template_from_a_live_node_is_fresh() -> None:
    live = node(
        "h0",
        topology=True,
        unschedulable=True,
        taints=[
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
        ],
    )
    topo = json.loads(live["metadata"]["annotations"]["gpu-autoscaler.io/topology"])
    topo["gpus"][0]["allocated"] = True
    live["metadata"]["annotations"]["gpu-autoscaler.io/topology"] = json.dumps(topo)
    live["metadata"]["annotations"]["cluster.x-k8s.io/machine"] = "m0"
    t = template_from_node(live)
    assert "unschedulable" not in t["spec"] and [x["key"] for x in t["spec"]["taints"]] == ["dedicated"]
    assert list(t["metadata"]["annotations"]) == ["gpu-autoscaler.io/topology"]
    assert not any(
        g["allocated"] for g in json.loads(t["metadata"]["annotations"]["gpu-autoscaler.io/topology"])["gpus"]
    )
    assert live["spec"]["unschedulable"] is True, "the live node is not modified"


@pytest.mark.parametrize(
    ("selector", "labels", "ok"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a=1", {"a": "2"}, False),
        ("a!=1", {"a": "2"}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a=1,b", {"a": "1"}, False),
    ],
)
def test_group_selector(selector: str, labels: dict[str, str], ok: bool) -> None:
    assert selector_accepts(selector, labels) is ok


def test_build_groups() -> None:
    n0, n1 = node("n0"), node("n1")
    n1["metadata"]["annotations"] = {
        "cluster.x-k8s.io/machine": "b-m1",
        "cluster.x-k8s.io/cluster-namespace": "capi",
    }
    mds = [
        machine_deployment(
            "a", 1, 0, 3, labels={"owner": "gpu"}, annotations={"gpu-autoscaler.io/usd-per-gpu-hour": "1.25"}
        ),
        machine_deployment(
            "b", 1, 0, 3, labels={"owner": "gpu"}, annotations={"cluster.x-k8s.io/paused": ""}
        ),
        machine_deployment("c", 1, 0, 3, labels={"owner": "ca"}),
        machine_deployment("d", 1, 4, 3, labels={"owner": "gpu"}),
        {
            **machine_deployment("e", 1),
            "metadata": {"name": "e", "namespace": "capi", "annotations": {}},
        },  # no group
    ]
    machines = [machine("a-m0", "a", "n0"), machine("b-m1", "b", None)]  # b's Node named by its annotation
    gs = build_groups(
        mds,
        machines,
        [n0, n1],
        now=NOW,
        prices=PRICES,
        selector="owner=gpu",
        spot_labels=(("node.kubernetes.io/lifecycle", "spot"),),
    )
    assert [g.key for g in gs.groups] == ["capi/a", "capi/b"]
    assert gs.skipped == {
        "capi/c": "labels do not match node_group_selector 'owner=gpu'",
        "capi/d": "max size 3 is below min size 4",
    }
    a, b = gs.groups
    assert a.nodes == ["n0"] and a.usd_per_gpu_hour == 1.25 and a.template_source == "node/n0" and a.gpus == 8
    assert b.nodes == ["n1"] and b.problem.startswith("paused") and gs.node_group["n1"] is b
    assert gs.node_machine["n1"].name == "b-m1"
