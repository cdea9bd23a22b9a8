"""Issue 7: `fragmentation` is the default resource policy, CPU-only pods go through it, and the balance part
is GPU-first under it (extender/scores/balance.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.settings import Settings
from extender import fragmentation as fr
from extender.arrays import ClusterState, NodeCapacity, PodRequest
from extender.core import ScoringConfig, choose_gpus, score_nodes, score_parts
from extender.inventory import PodAsk
from extender.scores.balance import balance_scores

CPU_ONLY = PodRequest(cpu_milli=4000, memory_mib=8192)
ONE = PodRequest(cpu_milli=8000, memory_mib=16384, gpu_count=1, gpu_milli=1000)


def _two_nodes() -> ClusterState:
    st_ = ClusterState.from_nodes([NodeCapacity("a", 96000, 393216, 8), NodeCapacity("b", 96000, 393216, 8)])
    st_.place(1, PodRequest(cpu_milli=8000, memory_mib=1024, gpu_count=6, gpu_milli=1000), [0, 1, 2, 3, 4, 5])
    return st_


def test_defaults_are_fragmentation_with_the_briefs_weights() -> None:
    cfg = ScoringConfig()
    assert cfg.resource_policy == "fragmentation"
    assert (cfg.topology_weight, cfg.resource_weight, cfg.balance_weight) == (0.40, 0.35, 0.25)
    assert ScoringConfig.from_settings(Settings()) == cfg


def test_cpu_only_pod_prefers_the_node_with_fewer_idle_gpus() -> None:
    state = _two_nodes()  # node b has 2 idle GPUs, node a 8
    learner = fr.TypicalPodLearner()
    learner.observe(ONE)
    learner.observe(CPU_ONLY)
    parts = score_parts(state, np.array([0, 1]), CPU_ONLY, ScoringConfig(), None, learner)
    assert parts.resource[1] > parts.resource[0]
    assert parts.total[1] > parts.total[0]
    assert choose_gpus(state, 1, CPU_ONLY, ScoringConfig(), None, learner) == []


def test_cpu_only_pod_stays_neutral_for_binpack_and_spread() -> None:
    state = _two_nodes()
    for policy in ("binpack", "spread"):
        s = score_nodes(state, np.array([0, 1]), CPU_ONLY, ScoringConfig(resource_policy=policy))
        assert s.tolist() == [50.0, 50.0]


def test_gpu_first_balance_penalises_only_cpu_running_ahead_of_gpus() -> None:
    state = ClusterState.from_nodes([NodeCapacity(n, 64000, 256000, 8) for n in ("a", "b", "c")])
    state.place(1, PodRequest(cpu_milli=48000, memory_mib=1024), [])  # CPU 75 % used, GPUs idle
    state.place(2, PodRequest(cpu_milli=1000, memory_mib=1024, gpu_count=6, gpu_milli=1000), list(range(6)))
    ask = PodAsk(req=ONE)
    frag = balance_scores(state, np.array([0, 1, 2]), ask, "fragmentation")
    # GPUs ahead of CPU (node c) is what the fragmentation policy wants: no penalty
    assert frag[2] == 100.0 and frag[0] == 100.0
    assert frag[1] < 70.0
    # the symmetric (Kubernetes) rule penalises node c too
    sym = balance_scores(state, np.array([0, 1, 2]), ask, "binpack")
    assert sym[2] < 100.0 and sym[1] < 100.0


@settings(max_examples=150, deadline=None)
@given(
    gpus=st.lists(st.integers(0, 8), min_size=1, max_size=6),
    used=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 64000), st.integers(0, 256000)), max_size=6),
    cpu=st.integers(0, 32000),
    mem=st.integers(0, 128000),
    k=st.integers(0, 4),
    milli=st.sampled_from([1000, 300, 500]),
)
def test_fragmentation_scores_stay_in_range(
    gpus: list[int], used: list[tuple[int, int, int]], cpu: int, mem: int, k: int, milli: int
) -> None:
    state = ClusterState.from_nodes([NodeCapacity(f"n{i}", 64000, 256000, g) for i, g in enumerate(gpus)])
    for i, (g, c, m) in enumerate(used[: len(gpus)]):
        g = min(g, gpus[i])
        state.place(i, PodRequest(cpu_milli=c, memory_mib=m, gpu_count=g, gpu_milli=1000), list(range(g)))
    req = PodRequest(
        cpu_milli=cpu, memory_mib=mem, gpu_count=min(k, 1) if milli < 1000 else k, gpu_milli=milli
    )
    if req.gpu_count == 0:
        req = PodRequest(cpu_milli=cpu, memory_mib=mem)
    rows = np.flatnonzero(state.feasible(req))
    learner = fr.TypicalPodLearner()
    learner.observe(req)
    parts = score_parts(state, rows, req, ScoringConfig(), None, learner)
    for part in (parts.topology, parts.resource, parts.balance, parts.total):
        assert part.shape == rows.shape and np.all((part >= 0) & (part <= 100))
    if len(rows):
        gpus_chosen = choose_gpus(state, int(rows[0]), req, ScoringConfig(), None, learner)
        assert len(gpus_chosen) == (req.gpu_count if req.wants_gpu else 0)


def _models_state() -> ClusterState:
    """3 nodes: two of model A (8 GPUs each), one of model B (4 GPUs, CPU-rich)."""
    return ClusterState.from_nodes(
        [NodeCapacity("a0", 64000, 256000, 8, "A"), NodeCapacity("a1", 64000, 256000, 8, "A"),
         NodeCapacity("b0", 128000, 256000, 4, "B")]
    )  # fmt: skip


def test_node_pressure_by_hand() -> None:
    state = _models_state()
    rows = np.array([0, 1, 2])
    # half the GPU demand accepts only B, whose 4 GPUs are 1/5 of the idle ones: 0.5 x (5 - 1) = 2 -> 2/3
    typical = fr.TypicalPods(((8000, 1000, 1, "B"), (8000, 1000, 1, "")), (0.5, 0.5))
    p = fr.node_pressure(typical, state, rows)
    assert p[0] == p[1] == 0.0 and abs(p[2] - 2 / 3) < 1e-12
    # B filled by its own pods: its idle share falls, the pressure rises; none idle and still wanted: 1
    state.place(2, PodRequest(8000, 1024, 2, 1000), [0, 1])
    assert fr.node_pressure(typical, state, rows)[2] > 2 / 3
    state.place(2, PodRequest(8000, 1024, 2, 1000), [2, 3])
    assert fr.node_pressure(typical, state, rows)[2] == 1.0
    # a spec that fits every kind of node binds nothing
    assert not fr.node_pressure(fr.TypicalPods(((8000, 1000, 1, ""),), (1.0,)), state, rows).any()
    # bound by CPU (only B has 100 cores) or by GPU count (only A has 8 GPUs), not only by model
    fresh = _models_state()
    by_cpu = fr.node_pressure(fr.TypicalPods(((100000, 1000, 1, ""),), (1.0,)), fresh, rows)
    assert by_cpu[2] > 0 and not by_cpu[:2].any()
    eight = fr.TypicalPods(((8000, 1000, 8, ""),), (1.0,))
    assert not fr.node_pressure(eight, fresh, rows).any()  # A holds 16 of 20 idle GPUs: room enough
    fresh.place(0, PodRequest(8000, 1024, 6, 1000), list(range(6)))
    fresh.place(1, PodRequest(8000, 1024, 6, 1000), list(range(6)))
    by_count = fr.node_pressure(eight, fresh, rows)  # now 4 of 8: half, bound
    assert by_count[0] == by_count[1] == 0.5 and by_count[2] == 0


def test_balance_leaves_gpus_that_constrained_pods_need() -> None:
    """A CPU-heavy pod that could run anywhere: GPU-first balance prefers the CPU-rich B node, unless pods
    that accept only B are being seen; then the node of the model nobody needs in particular wins."""
    state = _models_state()
    heavy = PodRequest(cpu_milli=32000, memory_mib=8192, gpu_count=1, gpu_milli=1000)
    rows = np.array([0, 1, 2])
    learner = fr.TypicalPodLearner()
    learner.observe(heavy)
    free = score_parts(state, rows, heavy, ScoringConfig(), None, learner)
    assert free.balance[2] > free.balance[0]
    for _ in range(3):
        learner.observe(PodRequest(8000, 1024, 1, 1000, ("B",)))
    bound = score_parts(state, rows, heavy, ScoringConfig(), None, learner)
    assert bound.balance[2] < free.balance[2] and bound.balance[0] == free.balance[0]
    assert bound.total[0] > bound.total[2]
    # a CPU-only pod takes no GPU from them: its balance is not scaled
    cpu_only = PodRequest(cpu_milli=32000, memory_mib=8192)
    assert np.array_equal(
        score_parts(state, rows, cpu_only, ScoringConfig(), None, learner).balance,
        balance_scores(state, rows, PodAsk(req=cpu_only), "fragmentation"),
    )
