"""The pure core: topology tables, score parts, GPU choice, the 0..10 mapping, the fragmentation branch."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from extender.arrays import ClusterState, NodeCapacity, PodRequest
from extender.core import (
    ScoringConfig,
    best_index,
    choose_gpus,
    decisive_scores,
    filter_nodes,
    score_nodes,
    score_parts,
)
from extender.inventory import PodAsk
from extender.kube_arrays import GpuClusterState
from extender.topology import NEUTRAL, TopologyIndex, TopologyShape, link_score
from tests.extender.conftest import BRIDGED_4, L40S_4, NV18_8, PCIE_8

ONE = PodRequest(cpu_milli=1000, memory_mib=1024, gpu_count=1, gpu_milli=1000)
TWO = PodRequest(cpu_milli=1000, memory_mib=1024, gpu_count=2, gpu_milli=1000)


def build(*specs: tuple[int, list[list[str]] | None]) -> tuple[ClusterState, TopologyIndex]:
    st = ClusterState.from_nodes(
        [NodeCapacity(f"n{i}", 64000, 512000, g, "m") for i, (g, _) in enumerate(specs)]
    )
    topo = TopologyIndex()
    for i, (_, links) in enumerate(specs):
        topo.set_node(i, links)
    return st, topo


def test_link_order() -> None:
    order = [link_score(t) for t in ("NV18", "NV12", "NV1", "PIX", "PXB", "PHB", "NODE", "SYS")]
    assert order == sorted(order, reverse=True) and order[0] == 100.0


def test_shapes_are_shared() -> None:
    _, topo = build((8, NV18_8), (8, NV18_8), (4, L40S_4))
    assert len(topo.shapes) == 2


def test_two_gpus_get_the_nvlink_pair() -> None:
    st, topo = build((4, BRIDGED_4))
    assert choose_gpus(st, 0, TWO, ScoringConfig(), topo) == [0, 1]
    st.place(0, ONE, [0])  # pair 0-1 broken: 2-3 is the NVLink pair left
    assert choose_gpus(st, 0, TWO, ScoringConfig(), topo) == [2, 3]


def test_single_gpu_does_not_break_an_nvlink_island() -> None:
    st, topo = build((4, BRIDGED_4))
    st.place(0, ONE, [2])  # free: 0, 1 (NVLink pair), 3 (alone)
    assert choose_gpus(st, 0, ONE, ScoringConfig(), topo) == [3]


def test_single_gpu_has_no_interconnect_to_gain() -> None:
    """One GPU (or a share of one): topology is neutral on every node, so packing alone decides where."""
    st, topo = build((8, NV18_8), (4, L40S_4), (8, None))
    st.place(0, TWO, [0, 1])
    for req in (ONE, PodRequest(cpu_milli=100, gpu_count=1, gpu_milli=300)):
        parts = score_parts(st, np.array([0, 1, 2]), req, ScoringConfig(), topo)
        assert parts.topology.tolist() == [NEUTRAL] * 3


PIX_PAIRS_8 = [
    ["X" if i == j else "SYS" if i // 4 != j // 4 else "PIX" if i // 2 == j // 2 else "PXB" for j in range(8)]
    for i in range(8)
]
NODE_SYS_4 = [["X" if i == j else "NODE" if i // 2 == j // 2 else "SYS" for j in range(4)] for i in range(4)]
SYS_2 = [["X", "SYS"], ["SYS", "X"]]


@pytest.mark.parametrize(
    ("links", "lo", "hi"),
    [
        (NV18_8, 85.0, 100.0),  # NVLink: 50..100, NV18 at the top of the band
        (PIX_PAIRS_8, 78.0, 90.0),  # a PIX pair: one PCIe switch, one NUMA node
        (NODE_SYS_4, 67.0, 75.0),  # a NODE pair: one NUMA node through host bridges
        (SYS_2, 50.0, 50.0),  # across sockets: no better than unknown
        (None, 50.0, 50.0),  # unknown
    ],
)
def test_topology_bands_for_a_pair(links: list[list[str]] | None, lo: float, hi: float) -> None:
    st, topo = build((len(links) if links else 8, links))
    t = float(score_parts(st, np.array([0]), TWO, ScoringConfig(), topo).topology[0])
    assert lo <= t <= hi


def test_known_topology_never_scores_below_unknown() -> None:
    """Every pair, every free mask: the topology part of a feasible set is >= NEUTRAL."""
    for links in (NV18_8, PIX_PAIRS_8, NODE_SYS_4, SYS_2, L40S_4, BRIDGED_4):
        shape = TopologyShape(tuple(tuple(r) for r in links))
        feasible = shape.score[~np.isnan(shape.score)]
        assert feasible.min() >= NEUTRAL and feasible.max() <= 100.0


def test_nvlink_pair_beats_every_pcie_pair_when_both_keep_their_node_whole() -> None:
    """Bandwidth orders the bands: the weakest NVLink pair (NV1) is above the best PCIe pair (PIX)."""
    nv1 = [["X", "NV1"], ["NV1", "X"]]
    pix = [["X", "PIX"], ["PIX", "X"]]
    st, topo = build((2, nv1), (2, pix))
    t = score_parts(st, np.array([0, 1]), TWO, ScoringConfig(), topo).topology
    assert t[0] > t[1]


def test_unknown_topology_is_neutral() -> None:
    st, topo = build((8, None), (8, NV18_8))
    parts = score_parts(st, np.array([0, 1]), TWO, ScoringConfig(), topo)
    assert parts.topology[0] == NEUTRAL and parts.topology[1] > NEUTRAL
    assert np.all(score_parts(st, np.array([0, 1]), TWO, ScoringConfig(), None).topology == NEUTRAL)


def test_binpack_and_spread() -> None:
    st, topo = build((8, NV18_8), (8, NV18_8))
    st.place(0, PodRequest(gpu_count=4, gpu_milli=1000), [0, 1, 2, 3])
    rows = np.array([0, 1])
    pack = score_parts(st, rows, ONE, ScoringConfig(resource_policy="binpack"), topo).resource
    spread = score_parts(st, rows, ONE, ScoringConfig(resource_policy="spread"), topo).resource
    assert pack[0] > pack[1] and spread[0] < spread[1]


def test_memory_fit_prefers_smallest_gpu_that_fits() -> None:
    st = GpuClusterState()
    st.add_gpu_node(NodeCapacity("big", 64000, 512000, 8, "h200"), gpu_mem_mib=143771)
    st.add_gpu_node(NodeCapacity("small", 64000, 512000, 8, "a100"), gpu_mem_mib=81920)
    ask = PodAsk(req=ONE, gpu_memory_mib=40 * 1024)
    res = score_parts(st, np.array([0, 1]), ask, ScoringConfig(resource_policy="binpack")).resource
    assert res[1] > res[0]


def test_balance_penalises_lopsided_nodes() -> None:
    st = ClusterState.from_nodes([NodeCapacity("a", 64000, 512000, 8), NodeCapacity("b", 64000, 512000, 8)])
    st.place(1, PodRequest(cpu_milli=60000, memory_mib=500000), [])
    bal = score_parts(st, np.array([0, 1]), ONE, ScoringConfig()).balance
    assert bal[0] > bal[1]


def test_scores_in_range_and_mapping() -> None:
    st, topo = build((8, NV18_8), (4, L40S_4), (8, None))
    s = score_nodes(st, np.array([0, 1, 2]), TWO, ScoringConfig(), topo)
    assert np.all((s >= 0) & (s <= 100))


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        ([], []),
        ([42.0], [10]),
        ([70.0, 70.0, 70.0], [10, 8, 8]),  # equals: the first is ours, and kube-scheduler must follow
        ([60.0, 64.9, 65.0, 54.9], [7, 8, 10, 6]),
        ([99.0, 94.0, 94.1, 0.0, np.nan], [10, 7, 8, 0, 0]),
        ([50.0, 50.01], [8, 10]),  # a hair ahead is still ahead
    ],
)
def test_decisive_scores(totals: list[float], expected: list[int]) -> None:
    assert decisive_scores(np.array(totals)).tolist() == expected


def test_shared_gpu_best_fit() -> None:
    st, topo = build((4, BRIDGED_4))
    st.place(0, PodRequest(gpu_count=1, gpu_milli=300), [3])
    st.place(0, PodRequest(gpu_count=1, gpu_milli=600), [1])
    half = PodRequest(gpu_count=1, gpu_milli=300)
    assert choose_gpus(st, 0, half, ScoringConfig(), topo) == [1]  # 400 left: the tightest fit
    assert score_parts(st, np.array([0]), half, ScoringConfig(), topo).topology[0] == NEUTRAL


def test_filter_reasons() -> None:
    st, topo = build((8, NV18_8), (4, L40S_4))
    st.place(0, PodRequest(gpu_count=6, gpu_milli=1000), [0, 1, 2, 3, 4, 5])
    out = filter_nodes(st, np.array([0, 1]), PodRequest(gpu_count=4, gpu_milli=1000), topo)
    assert out.failed == {0: "needs 4 free GPUs, node has 2"}
    assert out.passed.tolist() == [1]
    out = filter_nodes(st, np.array([0, 1]), PodRequest(gpu_count=6, gpu_milli=1000), topo)
    assert out.unresolvable == {1: "needs 6 GPUs, node has 4 in total"}
    req = PodAsk(req=TWO, topology="required")
    out = filter_nodes(st, np.array([0, 1]), req, topo)
    assert out.passed.tolist() == [0]
    assert out.unresolvable[1].startswith("no all-NVLink set of 2 GPUs")


def test_greedy_above_eight_gpus() -> None:
    links = [
        ["X" if i == j else ("NV18" if (i < 8) == (j < 8) else "SYS") for j in range(16)] for i in range(16)
    ]
    shape = TopologyShape(tuple(tuple(r) for r in links))
    assert not shape.exact
    val, mask = shape.lookup((1 << 16) - 1, 4)
    assert val > 0 and bin(mask).count("1") == 4
    assert shape.largest_nvlink((1 << 16) - 1) == 8


def test_fragmentation_policy_delegates() -> None:
    frag = importlib.import_module("extender.fragmentation")
    st, topo = build((8, NV18_8), (8, NV18_8))
    learner = frag.TypicalPodLearner()
    learner.observe(ONE)
    cfg = ScoringConfig(resource_policy="fragmentation")
    s = score_nodes(st, np.array([0, 1]), ONE, cfg, topo, learner)
    assert s.shape == (2,) and np.all((s >= 0) & (s <= 100))
    assert len(choose_gpus(st, 0, ONE, cfg, topo, learner)) == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ScoringConfig(resource_policy="tetris")
    with pytest.raises(ValueError):
        ScoringConfig(0, 0, 0)


def test_best_index_breaks_ties_toward_the_fullest_node() -> None:
    st = ClusterState.from_nodes([NodeCapacity(f"n{i}", 64000, 512000, 8, "m") for i in range(3)])
    st.place(2, TWO, [0, 1])
    rows = np.arange(3)
    assert best_index(st, rows, np.array([70.0, 70.0, 70.0])) == 2  # equal totals: the busiest node
    assert best_index(st, rows, np.array([70.0, 70.5, 70.0])) == 1  # a higher total wins outright
    assert best_index(st, rows[:2], np.array([70.0, 70.0])) == 0  # equally full: the lowest row
    assert best_index(st, rows[1::-1], np.array([70.0, 70.0])) == 1  # ... whatever order they came in


def test_best_index_keeps_the_better_linked_node_whole() -> None:
    st, topo = build((8, NV18_8), (8, PCIE_8), (8, NV18_8))
    rows = np.arange(3)
    # a 1-GPU pod's equal totals on empty nodes: the PCIe node takes it, in any input order
    assert best_index(st, rows, np.full(3, 60.0), topo) == 1
    assert best_index(st, rows[::-1], np.full(3, 60.0), topo) == 1
    st.place(0, TWO, [0, 1])
    assert best_index(st, rows, np.full(3, 60.0), topo) == 0  # fuller still comes first
