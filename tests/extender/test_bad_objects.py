"""Malformed Nodes and Pods are isolated: named with a reason, counted once per resourceVersion, filtered out,
and never stop the start, a request about other nodes, or the watch (issue 11, item 1)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.bad_objects import BAD
from app.metrics import REGISTRY
from extender.core import ScoringConfig
from extender.inventory import InventoryError, parse_node, parse_pod
from extender.service import ExtenderService
from extender.view_adapter import NodeStateAdapter
from extender.wire import ExtenderArgs
from tests.extender.conftest import make_node, make_pod

Node = dict[str, Any]


def _alloc(key: str, value: Any) -> Callable[[Node], None]:
    def edit(n: Node) -> None:
        n["status"]["allocatable"][key] = value

    return edit


def _topology(edit_topo: Callable[[dict[str, Any]], Any]) -> Callable[[Node], None]:
    def edit(n: Node) -> None:
        ann = n["metadata"]["annotations"]
        topo = json.loads(ann["gpu-autoscaler.io/topology"])
        out = edit_topo(topo)
        ann["gpu-autoscaler.io/topology"] = out if isinstance(out, str) else json.dumps(topo)

    return edit


def _label(key: str, value: str) -> Callable[[Node], None]:
    def edit(n: Node) -> None:
        n["metadata"]["labels"][key] = value

    return edit


def _mig(profile: str, n: int, **labels: str) -> Callable[[Node], None]:
    def edit(node: Node) -> None:
        node["status"]["allocatable"][f"nvidia.com/mig-{profile}"] = str(n)
        node["metadata"]["labels"].update(labels)

    return edit


def _set(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], Any]:
    def run(topo: dict[str, Any]) -> None:
        edit(topo)

    return run


#: (case, edit of a good 4-GPU H100 node, reason label)
BAD_NODES: list[tuple[str, Callable[[Node], None], str]] = [
    ("negative gpu", _alloc("nvidia.com/gpu", "-2"), "negative_allocatable"),
    ("negative cpu", _alloc("cpu", "-4"), "negative_allocatable"),
    ("negative memory", _alloc("memory", "-1Gi"), "negative_allocatable"),
    ("non-numeric gpu", _alloc("nvidia.com/gpu", "four"), "bad_quantity"),
    ("non-numeric cpu", _alloc("cpu", "lots"), "bad_quantity"),
    ("gpu as a list", _alloc("nvidia.com/gpu", [4]), "bad_quantity"),
    (
        "gpu 1e9 (labels only)",
        lambda n: (n["metadata"]["annotations"].clear(), _alloc("nvidia.com/gpu", "1e9")(n)),
        "too_many_gpus",
    ),
    ("exponent overflow", _alloc("memory", "1e99999999"), "bad_quantity"),
    ("topology not JSON", _topology(lambda t: "{gpus: oops"), "topology_not_json"),
    ("topology without gpus", _topology(lambda t: json.dumps({"version": 1})), "topology_invalid"),
    (
        "topology gpu not an object",
        _topology(_set(lambda t: t["gpus"].__setitem__(0, 7))),
        "topology_invalid",
    ),
    (
        "topology duplicate index",
        _topology(_set(lambda t: t["gpus"][1].__setitem__("index", 0))),
        "topology_invalid",
    ),
    ("topology links not square", _topology(_set(lambda t: t["links"].pop())), "topology_invalid"),
    (
        "topology lists fewer GPUs than allocatable",
        _topology(_set(lambda t: t.update(gpus=t["gpus"][:2], links=[r[:2] for r in t["links"][:2]]))),
        "topology_mismatch",
    ),
    (
        "topology mixes products",
        _topology(_set(lambda t: t["gpus"][3].__setitem__("product", "NVIDIA A100-SXM4-80GB"))),
        "unknown_product",
    ),
    (
        "topology product differs from label",
        _label("nvidia.com/gpu.product", "NVIDIA-L40S"),
        "unknown_product",
    ),
    ("MIG slices with mig.strategy none", _mig("1g.10gb", 7), "mig_mismatch"),
    (
        "MIG allocatable above the label count",
        _mig("1g.10gb", 7, **{"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.count": "3"}),
        "mig_mismatch",
    ),
    (
        "MIG profile the product does not have",
        _mig("1g.5gb", 7, **{"nvidia.com/mig.strategy": "mixed"}),  # an A100-40GB profile on an H100 80GB
        "mig_mismatch",
    ),
    ("labels not a map", lambda n: n["metadata"].__setitem__("labels", ["a"]), "malformed"),
]


def good_node(name: str = "bad-0", rv: str = "7") -> Node:
    return make_node(name, gpus=4, resource_version=rv)


@pytest.fixture(autouse=True)
def fresh_table() -> Iterator[None]:
    BAD.reset()
    yield
    BAD.reset()


def counted(kind: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("gpu_autoscaler_bad_objects_total", {"kind": kind, "reason": reason})
    return value or 0.0


@pytest.mark.parametrize(("case", "edit", "reason"), BAD_NODES, ids=[c for c, _, _ in BAD_NODES])
def test_parse_node_names_the_reason(case: str, edit: Callable[[Node], None], reason: str) -> None:
    node = good_node()
    edit(node)
    with pytest.raises(InventoryError) as info:
        parse_node(node)
    assert info.value.reason == reason, str(info.value)
    assert "bad-0" in str(info.value) or reason == "bad_quantity"


@pytest.mark.parametrize(
    "edit",
    [
        _mig("1g.10gb", 7, **{"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.count": "7"}),
        _mig("1g.10gb", 5, **{"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.count": "7"}),
        _mig("1g.10gb.me", 1, **{"nvidia.com/mig.strategy": "mixed"}),
        _alloc("nvidia.com/gpu", "3"),  # one GPU unhealthy per the device plugin: topology dropped, node kept
        _alloc("nvidia.com/mig-1g.10gb", "0"),
    ],
    ids=["labels agree", "fewer healthy slices", "media-extension profile", "unhealthy GPU", "zero slices"],
)
def test_consistent_nodes_still_read(edit: Callable[[Node], None]) -> None:
    node = good_node()
    edit(node)
    parse_node(node)


def test_mig_on_a_gpu_newer_than_the_geometry_table_is_accepted() -> None:
    node = make_node("b", gpus=0, product="NVIDIA B300", annotate=False, mig={"1g.23gb": 7})
    assert parse_node(node).mig == {"1g.23gb": 7}


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda p: p["spec"]["containers"][0]["resources"]["requests"].__setitem__("cpu", "-1"),
            "negative_request",
        ),
        (
            lambda p: p["spec"]["containers"][0]["resources"]["requests"].__setitem__("nvidia.com/gpu", "x"),
            "bad_quantity",
        ),
        (
            lambda p: p["metadata"]["annotations"].__setitem__("gpu-autoscaler.io/gpu-memory", "big"),
            "bad_annotation",
        ),
        (lambda p: p["metadata"].__setitem__("annotations", "x"), "malformed"),
    ],
    ids=["negative cpu", "gpu not a number", "gpu-memory not a quantity", "annotations not a map"],
)
def test_parse_pod_names_the_reason(edit: Callable[[dict[str, Any]], None], reason: str) -> None:
    pod = make_pod("p", gpus=1)
    edit(pod)
    with pytest.raises(InventoryError) as info:
        parse_pod(pod)
    assert info.value.reason == reason


# -- the node state: start, watch events, full-Nodes requests ---------------------------------------------
def service(nodes: list[Node]) -> ExtenderService:
    adapter = NodeStateAdapter(ScoringConfig(resource_policy="binpack"))
    for n in nodes:
        adapter.upsert_node(n)
    return ExtenderService(adapter, adapter.config)


def filter_names(svc: ExtenderService, names: list[str], gpus: int = 1) -> dict[str, Any]:
    return svc.filter(ExtenderArgs(Pod=make_pod("p", gpus=gpus), NodeNames=names))


@pytest.mark.parametrize(("case", "edit", "reason"), BAD_NODES, ids=[c for c, _, _ in BAD_NODES])
def test_bad_node_is_filtered_out_with_its_reason(
    case: str, edit: Callable[[Node], None], reason: str
) -> None:
    bad = good_node()
    edit(bad)
    before = counted("Node", reason)
    svc = service([make_node("ok-0", gpus=4), bad, make_node("ok-1", gpus=4)])
    out = filter_names(svc, ["ok-0", "bad-0", "ok-1"])
    assert out["NodeNames"] == ["ok-0", "ok-1"] and not out["Error"]
    why = out["FailedAndUnresolvableNodes"]["bad-0"]
    assert why.startswith(f"cannot read node ({reason}):"), why
    scores = svc.prioritize(ExtenderArgs(Pod=make_pod("p", gpus=1), NodeNames=["ok-0", "bad-0", "ok-1"]))
    assert {s["Host"]: s["Score"] for s in scores}["bad-0"] == 0
    assert counted("Node", reason) == before + 1


def test_logged_and_counted_once_per_resource_version(caplog: pytest.LogCaptureFixture) -> None:
    bad = good_node(rv="7")
    bad["status"]["allocatable"]["nvidia.com/gpu"] = "-2"
    adapter = NodeStateAdapter()
    before = counted("Node", "negative_allocatable")
    with caplog.at_level(logging.WARNING, logger="app.bad_objects"):
        for _ in range(3):  # a resync, then a full-Nodes request, carry the same version
            adapter.upsert_node(copy.deepcopy(bad))
        adapter.ensure_nodes([copy.deepcopy(bad)])
        assert counted("Node", "negative_allocatable") == before + 1
        bad["metadata"]["resourceVersion"] = "8"
        adapter.upsert_node(bad)
    assert counted("Node", "negative_allocatable") == before + 2
    lines = [r for r in caplog.records if r.getMessage() == "bad object ignored"]
    assert [(r.object, r.resourceVersion, r.reason) for r in lines] == [  # type: ignore[attr-defined]
        ("bad-0", "7", "negative_allocatable"),
        ("bad-0", "8", "negative_allocatable"),
    ]


def test_a_good_node_turning_bad_leaves_the_state_and_comes_back() -> None:
    svc = service([good_node(rv="1"), make_node("ok-0", gpus=4)])
    assert filter_names(svc, ["bad-0", "ok-0"])["NodeNames"] == ["bad-0", "ok-0"]
    bad = good_node(rv="2")
    bad["status"]["allocatable"]["nvidia.com/gpu"] = "-2"
    from app.cluster.base import ClusterEvent

    svc.adapter.on_event(ClusterEvent("MODIFIED", "Node", bad))
    out = filter_names(svc, ["bad-0", "ok-0"])
    assert out["NodeNames"] == ["ok-0"] and "negative" in out["FailedAndUnresolvableNodes"]["bad-0"]
    assert [b.name for b in BAD.current()] == ["bad-0"]
    svc.adapter.on_event(ClusterEvent("MODIFIED", "Node", good_node(rv="3")))
    assert filter_names(svc, ["bad-0", "ok-0"])["NodeNames"] == ["bad-0", "ok-0"]
    assert BAD.current() == []


def test_full_nodes_request_isolates_the_bad_node() -> None:
    bad = good_node()
    bad["status"]["allocatable"]["nvidia.com/gpu"] = "-2"
    items = [make_node("ok-0", gpus=4), bad, {"metadata": {"name": "x"}, "status": {"allocatable": 5}}]
    svc = service([])
    out = svc.filter(ExtenderArgs(Pod=make_pod("p", gpus=1), Nodes={"items": items}))
    assert [n["metadata"]["name"] for n in out["Nodes"]["items"]] == ["ok-0"]
    assert set(out["FailedAndUnresolvableNodes"]) == {"bad-0", "x"}
    scores = svc.prioritize(ExtenderArgs(Pod=make_pod("p", gpus=1), Nodes={"items": items}))
    assert [s["Host"] for s in scores] == ["ok-0", "bad-0", "x"] and scores[1]["Score"] == 0


def test_bad_pods_never_stop_the_start_and_a_bound_pod_keeps_its_gpus() -> None:
    from app.cluster.base import ClusterEvent
    from app.cluster.snapshot import SnapshotCluster

    bound = make_pod("held", gpus=2, node="ok-0", phase="Running")
    weird = make_pod("weird", gpus=1, node="ok-0", phase="Running")
    weird["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "-1"
    garbage = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "g", "namespace": "x"}, "spec": "?"}
    cluster = SnapshotCluster()
    cluster._ready.set()
    for obj in (make_node("ok-0", gpus=4), bound, weird):
        cluster.upsert(copy.deepcopy(obj))
    cluster._apply(ClusterEvent("ADDED", "Pod", garbage))  # as a watch would deliver it, unchecked
    adapter = NodeStateAdapter()
    adapter.attach(cluster)  # must not raise
    row = adapter.state.index["ok-0"]
    assert int(adapter.state.full_free[row]) == 2
    assert {b.name for b in BAD.current()} == {"ml-team/weird", "x/g"}
    # the bound pod's next version is unreadable: it still holds its GPUs until it says it let go
    broken = copy.deepcopy(bound)
    broken["metadata"]["resourceVersion"] = "9"
    broken["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "two"
    adapter.on_event(ClusterEvent("MODIFIED", "Pod", broken))
    assert int(adapter.state.full_free[row]) == 2
    broken["status"]["phase"] = "Succeeded"
    adapter.on_event(ClusterEvent("MODIFIED", "Pod", broken))
    assert int(adapter.state.full_free[row]) == 4
    adapter.on_event(ClusterEvent("DELETED", "Pod", weird))
    assert {b.name for b in BAD.current()} == {"ml-team/held", "x/g"}
