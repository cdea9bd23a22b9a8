"""Hypothesis over random — and partly broken — clusters and pods (issue 11, item 5): no exception escapes
the node state or the verbs, in either node mode, and filter and prioritize agree on which nodes are
feasible."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core import ScoringConfig
from extender.inventory import InventoryError, parse_pod
from extender.service import ExtenderService
from extender.view_adapter import NodeStateAdapter, node_name
from extender.wire import ExtenderArgs
from tests.extender.conftest import make_node, make_pod

TOKENS = ["NV18", "NV12", "NV4", "PIX", "PXB", "PHB", "NODE", "SYS", "X", "", "??"]
#: what real objects carry, and what broken ones do
QUANTITIES = st.one_of(
    st.sampled_from(
        ["0", "1", "2", "4", "8", "16", "-2", "1.5", "500m", "64Gi", "1e3", "four", "", "1e99999999"]
    ),
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
PRODUCTS = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "Tesla T4", "NVIDIA B300", ""]
LABEL_KEYS = ["nvidia.com/gpu.product", "nvidia.com/mig.strategy", "nvidia.com/gpu.count"]
LABEL_VALUES = ["none", "mixed", "x", "-1", "NVIDIA-L40S"]
PROFILES = ["1g.10gb", "2g.20gb", "3g.40gb", "1g.5gb", "7g.80gb", "banana"]


@st.composite
def node_objects(draw: Any, i: int) -> dict[str, Any]:
    g = draw(st.integers(0, 8))
    product = draw(st.sampled_from(PRODUCTS))
    mig = {
        p: draw(st.integers(0, 7)) for p in draw(st.lists(st.sampled_from(PROFILES), max_size=2, unique=True))
    }
    links = None
    if g and draw(st.booleans()):
        links = [[draw(st.sampled_from(TOKENS)) if a != b else "X" for b in range(g)] for a in range(g)]
    node = make_node(
        f"n{i}",
        gpus=g,
        product=product or "NVIDIA H100 80GB HBM3",
        links=links,
        allocated=tuple(j for j in range(g) if draw(st.booleans())),
        mig=mig or None,
        annotate=links is not None,
        resource_version=str(draw(st.integers(1, 3))),
    )
    for _ in range(draw(st.integers(0, 2))):  # break something, sometimes
        what = draw(st.sampled_from(["alloc", "annotation", "label", "topology"]))
        if what == "alloc":
            key = draw(st.sampled_from(["nvidia.com/gpu", "cpu", "memory", "nvidia.com/mig-1g.10gb"]))
            node["status"]["allocatable"][key] = draw(QUANTITIES)
        elif what == "annotation":
            node["metadata"]["annotations"]["gpu-autoscaler.io/topology"] = draw(
                st.sampled_from(["{", "[]", '{"gpus": 3}', '{"gpus": [1]}', "null", json.dumps({"gpus": []})])
            )
        elif what == "label":
            key = draw(
                st.sampled_from([f"nvidia.com/{k}" for k in ("gpu.product", "mig.strategy", "gpu.count")])
            )
            node["metadata"]["labels"][key] = draw(
                st.sampled_from(["none", "mixed", "x", "-1", "NVIDIA-L40S"])
            )
        else:
            ann = node["metadata"]["annotations"].get("gpu-autoscaler.io/topology")
            if ann and ann.startswith('{"version"'):
                topo = json.loads(ann)
                if topo["gpus"]:
                    topo["gpus"][0]["index"] = draw(st.sampled_from([-1, "0", 1, None, 99]))
                node["metadata"]["annotations"]["gpu-autoscaler.io/topology"] = json.dumps(topo)
    if draw(st.integers(0, 9)) == 0:  # a shape no Node has
        node[draw(st.sampled_from(["metadata", "status"]))] = draw(st.sampled_from([None, [], "x", {}]))
    return node


@st.composite
def clusters(draw: Any) -> list[dict[str, Any]]:
    return [draw(node_objects(i)) for i in range(draw(st.integers(1, 5)))]


@st.composite
def pod_objects(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["gpu", "mig", "share", "none"]))
    ann: dict[str, str] = {}
    if draw(st.booleans()):
        ann["gpu-autoscaler.io/topology"] = draw(st.sampled_from(["required", "preferred", "none", "x"]))
    if draw(st.booleans()):
        ann["gpu-autoscaler.io/gpu-memory"] = draw(st.sampled_from(["10Gi", "40Gi", "90Gi", "lots", "-1Gi"]))
    if draw(st.booleans()):
        ann["gpu-autoscaler.io/gpu-product"] = draw(st.sampled_from(["H100", "A100,L40S", "T4", ",", ""]))
    if kind == "share":
        ann["gpu-autoscaler.io/gpu-milli"] = draw(st.sampled_from(["250", "500", "999", "0", "1500", "x"]))
    pod = make_pod(
        "p",
        gpus=draw(st.integers(1, 9)) if kind in ("gpu", "share") else 0,
        mig=draw(st.sampled_from(PROFILES)) if kind == "mig" else "",
        annotations=ann,
    )
    if draw(st.integers(0, 4)) == 0:  # a broken quantity: the route answers 400 for it
        pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = draw(QUANTITIES)
    return pod


def service(objs: list[dict[str, Any]], policy: str) -> ExtenderService:
    adapter = NodeStateAdapter(ScoringConfig(resource_policy=policy))
    for o in objs:
        adapter.upsert_node(copy.deepcopy(o))  # never raises, whatever the object
    return ExtenderService(adapter, adapter.config)


def names_of(objs: list[dict[str, Any]]) -> list[str]:
    return [node_name(o) for o in objs]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objs=clusters(),
    pod=pod_objects(),
    policy=st.sampled_from(["binpack", "spread", "fragmentation"]),
    full=st.booleans(),
)
def test_verbs_never_raise_and_agree_on_feasible_nodes(
    objs: list[dict[str, Any]], pod: dict[str, Any], policy: str, full: bool
) -> None:
    try:
        ask = parse_pod(pod)
    except InventoryError:
        return  # the route answers 400 naming the field (tests/extender/test_errors.py)
    svc = service([] if full else objs, policy)
    names = names_of(objs)
    if full:
        args = ExtenderArgs(Pod=pod, Nodes={"items": copy.deepcopy(objs)})
    else:
        args = ExtenderArgs(Pod=pod, NodeNames=[*names, "ghost"])
    out = svc.filter(args, ask)
    passed = names_of(out["Nodes"]["items"]) if full else list(out["NodeNames"])
    failed = set(out["FailedNodes"]) | set(out["FailedAndUnresolvableNodes"])
    assert not failed & set(passed) and not out["Error"]
    scores = svc.prioritize(args, ask)
    assert all(0 <= s["Score"] <= 10 for s in scores)
    if not ask.wants_gpu:
        return
    # agreement: a node prioritize scores above 0 passed the filter, and prioritize steers the pod to a
    # node the filter passed iff there is one
    assert {s["Host"] for s in scores if s["Score"] > 0} <= set(passed)
    steered = svc.last_placement.get(ask.key)
    if passed:
        assert steered is not None and steered.node in passed
    else:
        assert not any(s["Score"] for s in scores)
