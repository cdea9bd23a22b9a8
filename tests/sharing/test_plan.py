"""The device plugin's configs as the plugin reads them, and the sharing-pool planner."""

from __future__ import annotations

from typing import Any

import pytest

from app.cluster.selectors import parse_selector
from app.mig.inputs import pod_facts
from app.mig.rollout import Request
from app.sharing.config import parse_config, parse_configmap
from app.sharing.inputs import ANN_REQUEST, pending_shares, share_nodes
from app.sharing.plan import SharingParams, SharingPlan, pack, plan
from tests.mig.conftest import pod_obj

NOW = 1_750_000_000.0


def _ts(kind: str, replicas: int) -> str:
    """A device-plugin config file sharing nvidia.com/gpu with `kind` (timeSlicing | mps)."""
    return (
        f"version: v1\nsharing:\n  {kind}:\n    resources:\n"
        f"    - name: nvidia.com/gpu\n      replicas: {replicas}\n"
    )


CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "device-plugin-config", "namespace": "gpu-operator"},
    "data": {
        "default": "version: v1\nflags:\n  migStrategy: none\n",
        "ts-2": _ts("timeSlicing", 2),
        "ts-4": _ts("timeSlicing", 4),
        "mps-4": _ts("mps", 4),
        "broken": _ts("timeSlicing", 1),
    },
}
CONFIGS = parse_configmap(CONFIGMAP, "gpu-operator/device-plugin-config")


def gpu_node(
    name: str,
    gpus: int = 4,
    config: str | None = "default",
    sharing: str = "none",
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-L40S" + ("-SHARED" if sharing != "none" else ""),
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": "46068",
        "nvidia.com/gpu.sharing-strategy": sharing,
        "nvidia.com/gpu.replicas": str(replicas),
        "nvidia.com/mig.capable": "false",
    }
    if config is not None:
        labels["nvidia.com/device-plugin.config"] = config
    alloc = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": str(gpus * replicas)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "status": {"allocatable": alloc},
    }


def share_pod(name: str, milli: int, node: str | None = None) -> dict[str, Any]:
    return pod_obj(
        name, {"nvidia.com/gpu": "1"}, node, annotations={"gpu-autoscaler.io/gpu-milli": str(milli)}
    )


def make_plan(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], **params: Any) -> SharingPlan:
    facts = pod_facts(pods)
    share, skipped = share_nodes(nodes, facts, parse_selector("nvidia.com/device-plugin.config"))
    assert skipped == []
    return plan(share, pending_shares(facts), CONFIGS, SharingParams(**{"now": NOW, **params}))


def test_configs_read_as_the_device_plugin_reads_them() -> None:
    assert {n: (c.strategy, c.replicas) for n, c in CONFIGS.configs.items()} == {
        "default": ("none", 1),
        "ts-2": ("time-slicing", 2),
        "ts-4": ("time-slicing", 4),
        "mps-4": ("mps", 4),
    }
    assert CONFIGS.errors == [
        "device-plugin config gpu-operator/device-plugin-config: broken: sharing.timeSlicing.resources[0]: "
        "number of replicas must be >= 2"
    ]
    text = "sharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n"
    renamed = parse_config("r", text + "    - name: nvidia.com/gpu\n      replicas: 8\n")
    assert (renamed.resource, renamed.replicas) == ("nvidia.com/gpu.shared", 8)
    with pytest.raises(ValueError, match="unknown version"):
        parse_config("x", "version: v2\n")
    assert parse_configmap(None, "ns/cm").errors == ["ConfigMap ns/cm not found: no sharing config to pick"]


@pytest.mark.parametrize(
    ("shares", "replicas", "mps", "expected"),
    [
        ([250, 250, 250, 250], 4, False, (1, 0)),
        ([250] * 5, 4, False, (2, 0)),  # a fifth replica is needed
        ([600, 600], 4, False, (2, 0)),  # 1000 m per GPU
        ([100] * 5, 2, False, (3, 0)),  # two replicas per GPU
        ([300, 200], 4, True, (1, 1)),  # an MPS replica of 4 holds 250 m
        ([], 4, False, (0, 0)),
    ],
)
def test_packing(shares: list[int], replicas: int, mps: bool, expected: tuple[int, int]) -> None:
    assert pack(shares, replicas, mps) == expected


def test_the_pool_grows_by_idle_nodes_with_the_config_needing_fewest_gpus() -> None:
    nodes = [gpu_node("big", gpus=8), gpu_node("small", gpus=2), gpu_node("busy", gpus=4)]
    pods = [*(share_pod(f"s{i}", 250) for i in range(6)), pod_obj("w", {"nvidia.com/gpu": "1"}, "busy")]
    result = make_plan(nodes, pods)
    assert result.pool["config"] == "ts-4" and result.pool["gpus_needed"] == 2
    by_node = {n.node: n for n in result.nodes}
    assert (by_node["small"].action, by_node["small"].target) == ("reconfigure", "ts-4")
    assert by_node["big"].action == "keep" and by_node["busy"].action == "keep"
    assert result.unmet == {"gpus": 0, "pods": 0}
    assert set(result.as_dict()["nodes"][0]) >= {
        "node",
        "current",
        "target",
        "action",
        "reason",
        "blocked_by",
    }


def test_a_node_running_gpu_pods_is_never_changed() -> None:
    nodes = [gpu_node("busy", gpus=4)]
    pods = [share_pod("s", 300), pod_obj("w", {"nvidia.com/gpu": "1"}, "busy")]
    (np,) = make_plan(nodes, pods).nodes
    assert np.action == "blocked" and np.blocked_by == ["team/w"] and np.target == "ts-2"
    assert make_plan(nodes, pods).unmet["gpus"] == 1


def test_max_parallel_and_cooldown() -> None:
    nodes = [gpu_node("a", gpus=1), gpu_node("b", gpus=1)]
    pods = [share_pod(f"s{i}", 600) for i in range(2)]
    result = make_plan(nodes, pods, max_parallel=1)
    assert sorted(n.action for n in result.nodes) == ["blocked", "reconfigure"]
    held = next(n for n in result.nodes if n.action == "blocked")
    assert "at most 1 node(s) change at once" in held.reason and held.blocked_by == []
    cooling = {ANN_REQUEST: Request("default", "ts-2", NOW - 60, "success").to_annotation()}
    result = make_plan([gpu_node("a", gpus=2, annotations=cooling)], pods, cooldown_s=600)
    assert result.nodes[0].action == "blocked" and "cooldown" in result.nodes[0].reason


def test_an_idle_pool_shrinks_back_to_the_off_config() -> None:
    nodes = [
        gpu_node("p1", gpus=2, config="ts-4", sharing="time-slicing", replicas=4),
        gpu_node("p2", gpus=2, config="ts-4", sharing="time-slicing", replicas=4),
    ]
    pods = [share_pod("s1", 250, "p1")]
    by_node = {n.node: n for n in make_plan(nodes, pods).nodes}
    assert by_node["p1"].action == "keep" and "in the sharing pool" in by_node["p1"].reason
    assert (by_node["p2"].action, by_node["p2"].target) == ("reconfigure", "default")


def test_requests_in_flight_and_done() -> None:
    asked = {ANN_REQUEST: Request("ts-4", "default", NOW - 30).to_annotation()}
    waiting = gpu_node("n", gpus=2, config="ts-4", annotations=asked)  # GFD still says no sharing
    (np,) = make_plan([waiting], [share_pod("s", 250)]).nodes
    assert (np.request, np.action) == ("in_progress", "keep")
    (np,) = make_plan([waiting], [share_pod("s", 250)], timeout_s=10).nodes
    assert np.request == "stuck"
    done = gpu_node("n", gpus=2, config="ts-4", sharing="time-slicing", replicas=4, annotations=asked)
    (np,) = make_plan([done], [share_pod("s", 250)]).nodes
    assert np.request == "success"


def test_unmanaged_and_mig_nodes() -> None:
    nodes = [gpu_node("free", gpus=2, config=None)]
    (np,) = make_plan(nodes, [share_pod("s", 250)]).nodes
    assert np.action == "keep" and "not managed" in np.reason
    mig = gpu_node("mig", gpus=2)
    mig["status"]["allocatable"] = {"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "14"}
    assert make_plan([mig], []).nodes == []
