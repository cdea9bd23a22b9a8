"""Hypothesis properties of the verbs over random clusters and pods (service level: no HTTP needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.arrays import ClusterState, NodeCapacity, PodRequest
from extender.core import ScoringConfig, decisive_scores, score_nodes
from extender.inventory import parse_pod
from extender.service import ExtenderService
from extender.topology import TopologyIndex
from extender.view_adapter import NodeStateAdapter
from extender.wire import ExtenderArgs
from tests.extender.conftest import make_node, make_pod

TOKENS = ["NV18", "NV12", "NV4", "PIX", "PXB", "PHB", "NODE", "SYS"]


@st.composite
def nodes(draw: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        g = draw(st.integers(0, 8))
        links = None
        if g and draw(st.booleans()):
            links = [["X"] * g for _ in range(g)]
            for a in range(g):
                for b in range(a + 1, g):
                    links[a][b] = links[b][a] = draw(st.sampled_from(TOKENS))
        allocated = tuple(j for j in range(g) if draw(st.booleans()))
        mig = {"1g.10gb": draw(st.integers(0, 7))} if draw(st.booleans()) else None
        out.append(
            make_node(f"n{i}", gpus=g, links=links, allocated=allocated, mig=mig, annotate=links is not None)
        )
    return out


@st.composite
def pods(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["gpu", "mig", "none"]))
    ann = {}
    if draw(st.booleans()):
        ann["gpu-autoscaler.io/topology"] = draw(st.sampled_from(["required", "preferred", "none"]))
    if draw(st.booleans()):
        ann["gpu-autoscaler.io/gpu-memory"] = draw(st.sampled_from(["10Gi", "40Gi", "90Gi"]))
    return make_pod(
        "p",
        gpus=draw(st.integers(1, 9)) if kind == "gpu" else 0,
        mig="1g.10gb" if kind == "mig" else "",
        annotations=ann,
    )


def _service(objs: list[dict[str, Any]], policy: str = "binpack") -> ExtenderService:
    adapter = NodeStateAdapter(ScoringConfig(resource_policy=policy))
    for o in objs:
        adapter.upsert_node(o)
    return ExtenderService(adapter, adapter.config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objs=nodes(), pod=pods(), extra=st.lists(st.sampled_from(["ghost", "n0", "n1"]), max_size=3))
def test_filter_never_passes_a_node_with_too_few_gpus(
    objs: list[dict[str, Any]], pod: dict[str, Any], extra: list[str]
) -> None:
    svc = _service(objs)
    names = [o["metadata"]["name"] for o in objs] + extra
    st_ = svc.adapter.state
    free_before = {n: int(st_.full_free[st_.index[n]]) for n in st_.names}
    out = svc.filter(ExtenderArgs(Pod=pod, NodeNames=names))
    k = parse_pod(pod).req.gpu_count
    for n in out["NodeNames"]:
        assert n in names
        if k:
            assert free_before[n] >= k
    # every input node is either passed or failed, never both
    failed = set(out["FailedNodes"]) | set(out["FailedAndUnresolvableNodes"])
    assert not failed & set(out["NodeNames"])
    assert set(names) == failed | set(out["NodeNames"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objs=nodes(),
    pod=pods(),
    extra=st.lists(st.sampled_from(["ghost", "n0"]), max_size=2),
    policy=st.sampled_from(["binpack", "spread", "fragmentation"]),
)
def test_prioritize_scores_every_input_once_in_range(
    objs: list[dict[str, Any]], pod: dict[str, Any], extra: list[str], policy: str
) -> None:
    svc = _service(objs, policy)
    names = [o["metadata"]["name"] for o in objs] + extra
    out = svc.prioritize(ExtenderArgs(Pod=pod, NodeNames=names))
    assert [h["Host"] for h in out] == names
    assert all(isinstance(h["Score"], int) and 0 <= h["Score"] <= 10 for h in out)


@settings(max_examples=200, deadline=None)
@given(
    gpus=st.lists(st.integers(1, 8), min_size=1, max_size=8),
    k=st.integers(1, 8),
    milli=st.sampled_from([1000, 250, 500, 999]),
    weights=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 1)),
)
def test_core_scores_always_0_to_100(
    gpus: list[int], k: int, milli: int, weights: tuple[float, float, float]
) -> None:
    state = ClusterState.from_nodes([NodeCapacity(f"n{i}", 64000, 256000, g) for i, g in enumerate(gpus)])
    topo = TopologyIndex()
    for i, g in enumerate(gpus):
        topo.set_node(i, [["X" if a == b else "NV12" for b in range(g)] for a in range(g)] if i % 2 else None)
    req = PodRequest(cpu_milli=1000, memory_mib=1000, gpu_count=1 if milli < 1000 else k, gpu_milli=milli)
    rows = np.flatnonzero(state.feasible(req))
    cfg = ScoringConfig(*weights)
    s = score_nodes(state, rows, req, cfg, topo)
    assert s.shape == rows.shape and np.all((s >= 0) & (s <= 100))
    ints = decisive_scores(s)
    assert ints.dtype.kind == "i" and np.all((ints >= 0) & (ints <= 10))
    if len(s):
        best = int(np.argmax(s))
        assert ints[best] == 10 and (np.delete(ints, best) <= 8).all()  # the best leads by 2 at least
        # a node 5 points or more below the best scores strictly lower than any node closer to it
        far, near = s <= s[best] - 5, s > s[best] - 5
        if far.any() and near.any():
            assert ints[far].max() < ints[near].min()
        # monotone: a higher total never gets a lower score
        order = np.argsort(s, kind="stable")
        assert (np.diff(ints[order][s[order] < s[best]]) >= 0).all()
