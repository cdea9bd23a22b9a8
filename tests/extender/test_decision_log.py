"""The extender's decision log: what the console shows for "why there, why not elsewhere"."""

from __future__ import annotations

from typing import Any

import numpy as np

from extender.core import ScoreParts
from extender.decision_log import DecisionLog
from extender.inventory import parse_pod
from extender.service import Placement
from tests.extender.conftest import L40S_4, make_node, make_pod


def _ask(name: str = "p", gpus: int = 1) -> Any:
    return parse_pod(make_pod(name, gpus=gpus))


def _parts(*totals: float) -> ScoreParts:
    t = np.array(totals, dtype=np.float64)
    return ScoreParts(t * 0.5, t * 0.8, np.full(len(t), 100.0), t)


def test_filter_then_prioritize_is_one_decision_with_ranked_nodes_and_grouped_reasons() -> None:
    log = DecisionLog(clock=lambda: 1000.0)
    ask = _ask("train", 4)
    names = ["n0", "n1", "n2", "n3", "n4"]
    failed = {"n3": "needs 4 free GPUs, node has 2 free", "n4": "needs 4 free GPUs, node has 2 free"}
    log.filtered(ask, {"n0", "n1", "n2"}, failed, {"gone": "node is not in the view"}, None)
    placement = Placement("n2", [0, 1, 2, 3], 9, {"total": 90.0})
    rows = np.array([0, 1, 2], dtype=np.int64)
    log.scored(ask, names, rows, _parts(40.0, 70.0, 90.0), np.array([4, 7, 9]), placement)
    (e,) = log.entries()
    assert e["pod"] == "ml-team/train" and e["ask"] == "4" and e["outcome"] == "placed"
    assert (e["candidates"], e["passed"], e["scored"]) == (6, 3, 3)
    assert e["node"] == "n2" and e["gpus"] == [0, 1, 2, 3] and e["score"] == 9
    assert [n["node"] for n in e["nodes"]] == ["n2", "n1", "n0"]  # best first
    assert e["nodes"][0] == {
        "node": "n2",
        "topology": 45.0,
        "resource": 72.0,
        "balance": 100.0,
        "total": 90.0,
        "score": 9,
        "chosen": True,
    }
    assert not e["nodes"][1]["chosen"]
    assert e["reasons"] == [
        {
            "reason": "needs 4 free GPUs, node has 2 free",
            "unresolvable": False,
            "count": 2,
            "nodes": ["n3", "n4"],
        },
        {"reason": "node is not in the view", "unresolvable": True, "count": 1, "nodes": ["gone"]},
    ]


def test_outcomes_unschedulable_filtered_and_single_node_placement() -> None:
    log = DecisionLog()
    log.filtered(_ask("none"), set(), {"n0": "no GPU"}, {}, None)
    log.filtered(_ask("many"), {"n0", "n1"}, {}, {}, None)
    log.filtered(_ask("one"), {"n1"}, {"n0": "busy"}, {}, Placement("n1", [3], 10))
    # a placement on a node that did not pass is an earlier call's, not this one's
    log.filtered(_ask("stale"), {"n0"}, {}, {}, Placement("n9", [0], 10))
    by_pod = {e["name"]: e for e in log.entries()}
    assert by_pod["none"]["outcome"] == "unschedulable"
    assert by_pod["many"]["outcome"] == "filtered"
    assert by_pod["one"]["outcome"] == "placed" and by_pod["one"]["node"] == "n1"
    assert by_pod["stale"]["outcome"] == "filtered" and by_pod["stale"]["node"] is None
    assert [e["name"] for e in log.entries()] == ["stale", "one", "many", "none"]  # newest first


def test_bounded_newest_kept_and_retry_moves_to_the_front() -> None:
    log = DecisionLog(maxlen=3)
    for i in range(5):
        log.filtered(_ask(f"p{i}"), set(), {}, {}, None)
    assert [e["name"] for e in log.entries()] == ["p4", "p3", "p2"]
    log.filtered(_ask("p2"), {"n0"}, {}, {}, None)  # the scheduler retries p2
    assert [e["name"] for e in log.entries()] == ["p2", "p4", "p3"] and len(log) == 3
    assert [e["name"] for e in log.entries(limit=1)] == ["p2"]


def test_reasons_keep_a_few_node_names_and_the_count() -> None:
    log = DecisionLog()
    failed = {f"n{i}": "GPUs busy" for i in range(50)}
    log.filtered(_ask(), set(), failed, {}, None)
    (group,) = log.entries(nodes_per_reason=3)[0]["reasons"]
    assert group["count"] == 50 and group["nodes"] == ["n0", "n1", "n2"]


def test_prioritize_without_feasible_rows_keeps_no_placement() -> None:
    log = DecisionLog()
    empty = np.array([], dtype=np.int64)
    log.scored(_ask(), [], empty, _parts(), np.array([], dtype=np.int64), Placement("old", [0], 5))
    (e,) = log.entries()
    assert e["outcome"] == "unschedulable" and e["node"] is None and e["nodes"] == []


def test_the_service_records_both_verbs(make_client: Any) -> None:
    client, _, comp = make_client(
        [
            make_node("h100-a", gpus=8),
            make_node("h100-c", gpus=8),
            make_node("l40s-b", gpus=4, product="NVIDIA L40S", links=L40S_4),
        ],
        # this test offers a node kube-scheduler would have filtered out (h100-a, full by its own count):
        # keep the assumption rather than yield to that (impossible) evidence
        assume_yields_to_scheduler=False,
    )
    pod = make_pod("needs-8", gpus=8)
    body = {"Pod": pod, "Nodes": None, "NodeNames": ["h100-a", "l40s-b", "ghost"]}  # h100-c not asked
    assert client.post("/filter", json=body).status_code == 200
    pod2 = make_pod("needs-2", gpus=2, annotations={"gpu-autoscaler.io/gpu-product": "H100,L40S"})
    body2 = {"Pod": pod2, "Nodes": None, "NodeNames": ["h100-a", "h100-c", "l40s-b"]}
    client.post("/filter", json=body2)
    prio = client.post("/prioritize", json=body2).json()
    entries = {e["name"]: e for e in comp.service.decisions.entries()}
    eight = entries["needs-8"]
    assert eight["outcome"] == "placed" and eight["node"] == "h100-a" and eight["passed"] == 1
    reasons = {r["reason"]: r for r in eight["reasons"]}
    assert reasons["needs 8 GPUs, node has 4 in total"]["nodes"] == ["l40s-b"]
    assert reasons["node is not in the extender's cluster view"]["unresolvable"]
    two = entries["needs-2"]
    best = max(prio, key=lambda h: h["Score"])["Host"]
    # h100-a is full (needs-8 is assumed there): filtered out; the other two scored
    assert two["outcome"] == "placed" and two["node"] == best and two["scored"] == 2
    assert [n["chosen"] for n in two["nodes"]].count(True) == 1
    assert {n["node"] for n in two["nodes"]} == {"h100-c", "l40s-b"}
    assert [r["nodes"] for r in two["reasons"]] == [["h100-a"]]
