"""A real kube-scheduler (v1.20 framework inside the FGD study's simulator) drives the running service.

Every case runs in both node modes (`nodeCacheCapable` true: NodeNames + the service's own cluster view;
false: full Node objects in each call), on a fresh service (cold: the learner knows only its prior) and on a
warm one (its cluster view holds running pods it learns the workload from). The extender weight is 5, as in
manifests/scheduler; kube-scheduler's default score plugins stay on, so its NodeResourcesLeastAllocated
spreading competes with our packing exactly as in a cluster.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.extender.conftest import L40S_4, PCIE_8, make_node
from tests.integration.kube_scheduler_sim import (
    gpu_pod,
    renamed,
    run_simon,
    serve,
    simon_binary,
    simon_node_names,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(simon_binary() is None, reason="../shared/tools/kube-scheduler-sim/simon.xz not here"),
]


def cold_start_nodes(with_l4: bool = False) -> list[dict[str, Any]]:
    """The issue's cluster: two empty 8x H100 nodes (NVSwitch, PCIe) and an NVSwitch one 6/8 busy."""
    nodes = [
        make_node("h100-nvswitch-a"),
        make_node("h100-pcie-b", product="NVIDIA H100 PCIe", links=PCIE_8),
        make_node("h100-nvswitch-c", allocated=(0, 1, 2, 3, 4, 5)),
    ]
    if with_l4:
        nodes.append(
            make_node(
                "l4-d", gpus=4, product="NVIDIA L4", memory_mib=23034, links=L40S_4, cpu="48", memory="192Gi"
            )
        )
    return nodes


def history(sizes: list[int]) -> list[dict[str, Any]]:
    """Running pods of the given GPU counts on other nodes: what a warm service has learnt from."""
    nodes = [make_node(f"hist-{i}") for i in range(max(1, (sum(sizes) + 7) // 8 + 2))]
    free = {n["metadata"]["name"]: 8 for n in nodes}
    objs: list[dict[str, Any]] = list(nodes)
    for i, k in enumerate(sizes):
        node = next(n for n, f in free.items() if f >= k)
        free[node] -= k
        pod = gpu_pod(f"hist-{i}", k, namespace="history")
        pod["spec"]["nodeName"] = node
        pod["status"]["phase"] = "Running"
        objs.append(pod)
    return objs


WARMTH = {
    "cold": [],
    "warm-mixed": [1] * 20 + [2] * 8 + [4] * 4 + [8] * 4,
    "warm-ones": [1] * 60,  # a history without big pods: packing must not depend on having seen one
}


def schedule(
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    cache_mode: bool,
    warmth: str = "cold",
) -> tuple[dict[str, str | None], dict[str, float]]:
    view = history(WARMTH[warmth])
    if cache_mode:
        view += renamed(nodes, simon_node_names(nodes))
    # simon has no watch to show the service its bindings: assumptions must outlive the run
    with serve(view, "--assume-ttl-seconds", "600") as svc:
        result = run_simon(nodes, pods, svc.url, node_cache_capable=cache_mode)
        stats = svc.stats()
    return {k.split("/", 1)[1]: v for k, v in result.placements.items()}, stats


MODES = [pytest.param(True, id="nodeCacheCapable"), pytest.param(False, id="full-Nodes")]


@pytest.mark.parametrize("cache_mode", MODES)
@pytest.mark.parametrize("warmth", list(WARMTH))
def test_single_gpu_pod_goes_to_the_busy_node(cache_mode: bool, warmth: str) -> None:
    placed, _ = schedule(cold_start_nodes(), [gpu_pod("one-0", 1)], cache_mode, warmth)
    assert placed == {"one-0": "h100-nvswitch-c"}


@pytest.mark.parametrize("cache_mode", MODES)
@pytest.mark.parametrize("warmth", list(WARMTH))
def test_4_2_1_8_all_placed(cache_mode: bool, warmth: str) -> None:
    pods = [gpu_pod("a-0", 4), gpu_pod("b-0", 2), gpu_pod("c-0", 1), gpu_pod("d-0", 8)]
    placed, stats = schedule(cold_start_nodes(with_l4=True), pods, cache_mode, warmth)
    assert all(placed.values()), placed
    assert placed["b-0"] == "h100-nvswitch-c"  # the 2 GPUs left on the busy node, exactly
    # the 8-GPU pod got a whole node: nobody else landed there
    others = {n for p, n in placed.items() if p != "d-0"}
    assert placed["d-0"] not in others
    assert stats.get("assumptions_contradicted", 0) == 0  # kube-scheduler followed every choice


@pytest.mark.parametrize("cache_mode", MODES)
def test_pair_gets_nvlink_and_product_constraint_holds(cache_mode: bool) -> None:
    nodes = [
        make_node("pcie-0", product="NVIDIA H100 PCIe", links=PCIE_8),
        make_node("nvl-0"),
        make_node(
            "l4-0", gpus=4, product="NVIDIA L4", memory_mib=23034, links=L40S_4, cpu="48", memory="192Gi"
        ),
    ]
    pods = [  # simon schedules in name order
        gpu_pod("a-pair-0", 2),
        gpu_pod("b-l4-only-0", 1, annotations={"gpu-autoscaler.io/gpu-product": "L4"}),
        gpu_pod("c-big-mem-0", 1, annotations={"gpu-autoscaler.io/gpu-memory": "40Gi"}),
    ]
    placed, _ = schedule(nodes, pods, cache_mode)
    assert placed["a-pair-0"] == "nvl-0"
    assert placed["b-l4-only-0"] == "l4-0"
    assert placed["c-big-mem-0"] == "nvl-0"  # packs next to the pair


@pytest.mark.parametrize("cache_mode", MODES)
def test_single_gpu_pod_spares_the_nvswitch_node_and_the_pair_follows(cache_mode: bool) -> None:
    """Equal totals on two empty H100 nodes: the 1-GPU pod takes a PCIe GPU, every run (kube-scheduler's
    node order must not decide), and the pair then packs next to it on a PIX pair."""
    nodes = [make_node("pcie-0", product="NVIDIA H100 PCIe", links=PCIE_8), make_node("nvl-0")]
    placed, _ = schedule(nodes, [gpu_pod("a-one-0", 1), gpu_pod("b-pair-0", 2)], cache_mode)
    assert placed == {"a-one-0": "pcie-0", "b-pair-0": "pcie-0"}


def test_kube_scheduler_places_as_many_with_the_extender_as_without() -> None:
    """Tight packing through the real scheduler: 200 pods of 1 or 2 GPUs fill 40 nodes to ~92 %. Every pod
    kube-scheduler alone places must be placed with the extender too (nothing hidden by guesses)."""
    rng = random.Random(7)
    nodes = [make_node(f"gpu-{i:03d}") for i in range(40)]
    pods = [gpu_pod(f"job-{i:03d}", rng.choice([1, 2]), cpu="2", memory="8Gi") for i in range(200)]
    alone = run_simon(nodes, pods, None)
    placed, stats = schedule(nodes, pods, cache_mode=True)
    assert sum(1 for n in placed.values() if n) >= alone.placed
    assert stats.get("assumptions_contradicted", 0) == 0
