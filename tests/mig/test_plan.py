"""The MIG layout planner over Node/Pod objects: demand vs layouts, running-pod protection, parallelism,
cooldown, the mig-manager states, the target mix."""

from __future__ import annotations

from typing import Any

import pytest

from app.cluster.selectors import parse_selector
from app.gpu.migparted import parse_mig_config
from app.mig.inputs import ANN_REQUEST, mig_demand, mig_nodes, pod_facts, recent_from_pods
from app.mig.plan import MigPlan, PlanParams, change_blocker, plan
from app.mig.rollout import Request, rfc3339
from tests.mig.conftest import CONFIG, mig_pod, node_obj, pod_obj

NOW = 1_750_000_000.0
CONFIGS = parse_mig_config(CONFIG, "test")
SELECTOR = parse_selector("nvidia.com/mig.config")


def make_plan(
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
    recent: dict[str, int] | None = None,
    **params: Any,
) -> MigPlan:
    facts = pod_facts(pods)
    defaults: dict[str, Any] = {"now": NOW, "target_mix": {"1g": 0.7, "2g": 0.2, "3g": 0.1}}
    return plan(
        mig_nodes(nodes, facts, SELECTOR),
        mig_demand(facts, recent or {}),
        CONFIGS,
        PlanParams(**{**defaults, **params}),
    )


def pending(profile: str, n: int) -> list[dict[str, Any]]:
    return [mig_pod(f"{profile}-{i}", profile) for i in range(n)]


def request(config: str, previous: str, ago: float, result: str = "") -> dict[str, str]:
    return {ANN_REQUEST: Request(config, previous, NOW - ago, result).to_annotation()}


# -- demand vs layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pods", "recent", "action", "target", "reason"),
    [
        ([], {}, "keep", "mixed", "current layout serves the demand best"),
        # two 3g slices are free, four are asked: `inference` frees two more and keeps GPU 0 as it is
        (pending("3g.40gb", 4), {}, "reconfigure", "inference", "covers 2 pending 3g.40gb"),
        # pending demand the current layout covers changes nothing
        (pending("3g.40gb", 2), {}, "keep", "mixed", "serves the demand best"),
        # 20 pending 1g: only all-1g.10gb (28) covers them
        (pending("1g.10gb", 20), {}, "reconfigure", "all-1g.10gb", "covers 6 pending 1g.10gb"),
        # no queue, but the webhook chose ten 3g slices lately
        ([], {"3g.40gb": 10}, "reconfigure", "all-3g.40gb", "covers 6 recently chosen 3g.40gb"),
    ],
)
def test_the_layout_covering_the_most_unmet_demand(
    pods: list[dict[str, Any]], recent: dict[str, int], action: str, target: str, reason: str
) -> None:
    result = make_plan([node_obj("a")], pods, recent)
    (np,) = result.nodes
    assert (np.action, np.target) == (action, target)
    assert reason in np.reason


def test_pending_beats_recent_and_the_mix() -> None:
    # recent wants 1g slices, the queue wants 3g slices: the queue wins
    result = make_plan([node_obj("a")], pending("3g.40gb", 4), {"1g.10gb": 30})
    assert result.nodes[0].target == "inference"


def test_unmet_is_what_the_plan_leaves_uncovered() -> None:
    result = make_plan([node_obj("a")], pending("3g.40gb", 10) + pending("7g.80gb", 1))
    assert result.nodes[0].target == "all-3g.40gb"
    assert result.unmet == {"3g.40gb": 2, "7g.80gb": 1}
    doc = result.as_dict()
    assert set(doc) >= {"nodes", "unmet"}
    assert set(doc["nodes"][0]) >= {"node", "current", "target", "action", "reason", "blocked_by"}


def test_the_target_mix_moves_an_idle_node_only_for_a_real_gain() -> None:
    # all 3g is far from 70/20/10; `mixed` is the closest layout
    result = make_plan([node_obj("a", config="all-3g.40gb")])
    assert (result.nodes[0].action, result.nodes[0].target) == ("reconfigure", "mixed")
    assert "target mix" in result.nodes[0].reason
    # with no mix at all, nothing moves
    result = make_plan([node_obj("a", config="all-3g.40gb")], target_mix={})
    assert result.nodes[0].action == "keep"


# -- running pods ------------------------------------------------------------------------------------
def test_a_running_pod_holds_the_gpus_it_uses() -> None:
    # nb on GPU 0 (agent's `allocated`): `inference` leaves GPU 0 alone, so it may still happen
    pods = [mig_pod("nb", "1g.10gb", node="a"), *pending("3g.40gb", 4)]
    result = make_plan([node_obj("a", allocated=(0,))], pods)
    assert (result.nodes[0].action, result.nodes[0].changed_gpus) == ("reconfigure", [1, 2])
    # a pod on GPU 1 as well: every layout that frees 3g slices changes a used GPU
    result = make_plan([node_obj("a", allocated=(0, 1))], pods)
    np = result.nodes[0]
    assert np.action == "blocked" and np.blocked_by == ["team/nb"]
    assert "running pods use GPU(s) it would change" in np.reason
    assert result.unmet == {"3g.40gb": 2}


def test_unknown_gpu_use_counts_every_gpu_as_used() -> None:
    pods = [mig_pod("nb", "1g.10gb", node="a"), *pending("3g.40gb", 4)]
    result = make_plan([node_obj("a", allocated=None)], pods)
    assert result.nodes[0].action == "blocked" and result.nodes[0].blocked_by == ["team/nb"]
    # no running pod: no GPU is used, the change goes ahead
    result = make_plan([node_obj("a", allocated=None)], pending("3g.40gb", 4))
    assert result.nodes[0].action == "reconfigure"


def test_an_annotation_marking_no_gpu_is_not_proof_of_idle_gpus() -> None:
    # today's agent writes allocated=false everywhere (it cannot map pods to GPUs): with a pod running,
    # every GPU counts as used
    pods = [mig_pod("nb", "1g.10gb", node="a"), *pending("3g.40gb", 4)]
    result = make_plan([node_obj("a", allocated=())], pods)
    assert result.nodes[0].action == "blocked" and result.nodes[0].blocked_by == ["team/nb"]


def test_whole_gpu_pods_hold_their_gpus_too() -> None:
    pods = [pod_obj("train", {"nvidia.com/gpu": "1"}, node="a"), *pending("3g.40gb", 4)]
    result = make_plan([node_obj("a", allocated=None)], pods)
    assert result.nodes[0].blocked_by == ["team/train"]


def test_the_fresh_view_check_before_writing() -> None:
    facts = pod_facts([mig_pod("nb", "1g.10gb", node="a")])
    (node,) = mig_nodes([node_obj("a", allocated=(1,))], facts, SELECTOR)
    assert "running pods" in change_blocker(node, "inference", CONFIGS)
    assert change_blocker(node, "mixed", CONFIGS) == ""
    (busy,) = mig_nodes([node_obj("a", state="pending")], pod_facts([]), SELECTOR)
    assert "pending" in change_blocker(busy, "inference", CONFIGS)


# -- parallelism, cooldown, mig-manager states --------------------------------------------------------
def test_at_most_max_parallel_nodes_at_a_time() -> None:
    nodes = [node_obj("a"), node_obj("b"), node_obj("c")]
    demand = pending("3g.40gb", 20)  # one node all-3g covers 12 of them, two cover 18
    result = make_plan(nodes, demand, max_parallel=1)
    actions = [n.action for n in result.nodes]
    assert actions.count("reconfigure") == 1 and actions.count("blocked") == 2
    held = next(n for n in result.nodes if n.action == "blocked")
    assert "at most 1 node(s) reconfigure at once" in held.reason and held.blocked_by == []
    result = make_plan(nodes, demand, max_parallel=2)
    assert [n.action for n in result.nodes].count("reconfigure") == 2


def test_a_node_mig_manager_is_working_on_takes_a_slot() -> None:
    nodes = [node_obj("a"), node_obj("b", state="pending")]
    result = make_plan(nodes, pending("3g.40gb", 6), max_parallel=1)
    a, b = result.nodes
    assert a.action == "blocked" and "at most 1" in a.reason
    assert b.action == "keep" and "mig-manager is applying mixed (pending)" in b.reason


def test_cooldown_holds_a_node_after_a_change() -> None:
    node = node_obj("a", annotations=request("mixed", "all-1g.10gb", ago=600, result="success"))
    result = make_plan([node], pending("3g.40gb", 4), cooldown_s=1800)
    np = result.nodes[0]
    assert np.action == "blocked" and "cooldown" in np.reason and np.target == "inference"
    later = make_plan([node], pending("3g.40gb", 4), cooldown_s=300)
    assert later.nodes[0].action == "reconfigure"


def test_a_failed_node_is_left_alone() -> None:
    node = node_obj(
        "a", config="inference", state="failed", annotations=request("inference", "mixed", ago=60)
    )
    result = make_plan([node], pending("3g.40gb", 8))
    np = result.nodes[0]
    assert (np.action, np.target, np.request) == ("blocked", "inference", "failed")
    assert "left alone until someone changes nvidia.com/mig.config by hand" in np.reason


def test_a_request_in_flight_and_one_stuck() -> None:
    ann = request("inference", "mixed", ago=120)
    # label set, mig-manager has not started (state still success, slices still the old ones)
    node = node_obj("a", config="inference", annotations=ann, advertised="mixed")
    (np,) = make_plan([node]).nodes
    assert np.request == "in_progress" and np.action == "keep" and "waiting for mig-manager" in np.reason
    node = node_obj("a", config="inference", state="pending", annotations=request("inference", "mixed", 2000))
    (np,) = make_plan([node], timeout_s=900).nodes
    assert np.request == "stuck" and np.action == "blocked" and "still not in effect" in np.reason


def test_done_means_the_slices_are_advertised() -> None:
    ann = request("inference", "mixed", ago=120)
    node = node_obj("a", config="inference", annotations=ann, advertised="mixed")
    node["status"]["allocatable"].update({"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "4"})
    (np,) = make_plan([node]).nodes
    assert np.request == "success"


def test_nodes_the_planner_cannot_or_may_not_change() -> None:
    nodes = [
        node_obj("unmanaged", labels={}, annotations={}),
        node_obj("l4", product="NVIDIA-L4"),
        node_obj("nogpus", gpus=0, allocated=None),
    ]
    del nodes[0]["metadata"]["labels"]["nvidia.com/mig.config"]
    result = make_plan(nodes, pending("3g.40gb", 4))
    reasons = {n.node: (n.action, n.reason) for n in result.nodes}
    assert reasons["unmanaged"][0] == "keep" and "not managed" in reasons["unmanaged"][1]
    assert reasons["l4"] == ("keep", "unknown GPU model NVIDIA-L4: no MIG geometry")
    assert "GPU count unknown" in reasons["nogpus"][1]


def test_recent_choices_from_pods_count_only_the_window() -> None:
    ann = {"gpu-autoscaler.io/optimized": "true"}
    pods = [
        pod_obj("new", {"nvidia.com/mig-3g.40gb": "1"}, node="a", annotations=ann, created=rfc3339(NOW - 60)),
        pod_obj(
            "old", {"nvidia.com/mig-3g.40gb": "1"}, node="a", annotations=ann, created=rfc3339(NOW - 7200)
        ),
        pod_obj("hand", {"nvidia.com/mig-1g.10gb": "1"}, node="a", created=rfc3339(NOW - 60)),
    ]
    assert recent_from_pods(pods, NOW, 3600) == {"3g.40gb": 1}
