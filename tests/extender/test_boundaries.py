"""The extender's filters and score parts at their exact boundaries (issue 11, item 8).

Each filter is checked with a node *exactly* at its limit (passes) and one just past it (fails, with the
reason sentence users see in FailedNodes), and unresolvable ("can never fit") apart from resolvable ("busy
now"). Score parts are checked against values worked out by hand from the formulas in their docstrings.
"""

from __future__ import annotations

import numpy as np
import pytest

from extender.arrays import GPU_MILLI, ClusterState, NodeCapacity, PodRequest
from extender.core import decisive_scores
from extender.filters import run_filters
from extender.inventory import PodAsk
from extender.kube_arrays import GpuClusterState
from extender.scores.balance import balance_scores, gpu_first_balance
from extender.scores.resource import memory_fit, resource_scores
from extender.scores.topology import topology_scores
from extender.topology import TopologyIndex

NV = [["X", "NV18"], ["NV18", "X"]]
PCIE = [["X", "SYS"], ["SYS", "X"]]


def gpu_state(*nodes: tuple[str, int, int], mem_mib: int = 81920) -> GpuClusterState:
    """Nodes (name, GPUs, GPUs busy): whole GPUs, the busy ones taken by one pod each."""
    st = GpuClusterState()
    for name, gpus, busy in nodes:
        row = st.add_gpu_node(NodeCapacity(name, 64000, 512000, gpus, "h100"), mem_mib)
        for g in range(busy):
            st.place(row, PodRequest(gpu_count=1, gpu_milli=GPU_MILLI), [g])
    return st


def ask(gpus: int = 1, milli: int = GPU_MILLI, **kw: object) -> PodAsk:
    cpu = int(kw.pop("cpu", 0))  # type: ignore[call-overload]
    mem = int(kw.pop("mem", 0))  # type: ignore[call-overload]
    req = PodRequest(cpu_milli=cpu, memory_mib=mem, gpu_count=gpus, gpu_milli=milli if gpus else 0)
    return PodAsk(req=req, **kw)  # type: ignore[arg-type]


def outcome(st: ClusterState, a: PodAsk, topo: TopologyIndex | None = None, cpu: bool = False) -> tuple:  # type: ignore[type-arg]
    out = run_filters(st, np.arange(st.n), a, topo, check_cpu_memory=cpu)
    names = st.names
    return (
        [names[r] for r in out.passed.tolist()],
        {names[r]: m for r, m in out.failed.items()},
        {names[r]: m for r, m in out.unresolvable.items()},
    )


# -- filters -----------------------------------------------------------------------------------------------
def test_total_gpus_exactly_the_ask_is_busy_not_impossible() -> None:
    st = gpu_state(("exact-busy", 2, 2), ("exact-free", 2, 0), ("short", 1, 0), ("none", 0, 0))
    passed, failed, never = outcome(st, ask(2))
    assert passed == ["exact-free"]
    assert failed == {"exact-busy": "needs 2 free GPUs, node has 0"}  # preemption may help: resolvable
    assert never == {
        "short": "needs 2 GPUs, node has 1 in total",
        "none": "node has no whole GPUs (allocatable nvidia.com/gpu is 0)",
    }
    _, failed, _ = outcome(gpu_state(("one-left", 2, 1)), ask(2))
    assert failed == {"one-left": "needs 2 free GPUs, node has 1"}
    _, failed, _ = outcome(gpu_state(("busy", 1, 1)), ask(1))
    assert failed == {"busy": "needs 1 free GPU, node has 0"}


def test_a_share_fits_a_gpu_with_exactly_that_much_left() -> None:
    st = gpu_state(("a", 1, 0), ("b", 1, 0))
    st.sharing[:] = True
    st.place(0, PodRequest(gpu_count=1, gpu_milli=750), [0])  # 250 left
    st.place(1, PodRequest(gpu_count=1, gpu_milli=751), [0])  # 249 left
    passed, failed, _ = outcome(st, ask(1, 250))
    assert passed == ["a"] and failed == {"b": "needs 250m of one GPU, the freest GPU has 249m"}


def test_a_share_needs_a_sharing_node_and_a_valid_ask() -> None:
    st = gpu_state(("plain", 1, 0))
    _, _, never = outcome(st, ask(1, 500))
    assert never["plain"].startswith("pod asks 500m of one GPU (gpu-autoscaler.io/gpu-milli); node does not")
    _, _, never = outcome(st, ask(1, invalid="annotation gpu-autoscaler.io/gpu-milli: 1500 is not 1..999"))
    assert never == {"plain": "annotation gpu-autoscaler.io/gpu-milli: 1500 is not 1..999"}


def test_gpu_memory_exactly_the_ask_fits() -> None:
    st = GpuClusterState()
    for name, mem in (("exact", 40960), ("less", 40959), ("unknown", 0)):
        st.add_gpu_node(NodeCapacity(name, 64000, 512000, 1, "x"), mem)
    passed, _, never = outcome(st, ask(1, gpu_memory_mib=40960))
    assert passed == ["exact"]
    assert never == {
        "less": "needs 40 GiB per GPU, node's GPUs have 40 GiB",
        "unknown": "needs 40 GiB per GPU, node does not report its GPU memory",
    }
    _, _, never = outcome(st, ask(0, mig=(("1g.10gb", 1),), gpu_memory_mib=20 * 1024))
    assert set(never.values()) == {"MIG slice 1g.10gb is smaller than the 20 GiB asked"}


def test_product_filter_names_the_product() -> None:
    st = gpu_state(("n", 1, 0))
    _, _, never = outcome(st, ask(1, products=("a100",)))
    assert never == {"n": "GPU product h100 is not one of a100"}
    assert outcome(st, ask(1, products=("h1",)))[0] == ["n"]


def test_mig_slices_exactly_enough() -> None:
    st = GpuClusterState()
    for name, cap, used in (("exact", 2, 0), ("busy", 2, 1), ("small", 1, 0), ("none", 0, 0)):
        row = st.add_gpu_node(
            NodeCapacity(name, 64000, 512000, 0, "a100"), 0, {"1g.10gb": cap} if cap else {}
        )
        st.place_mig(row, (("1g.10gb", used),) if used else ())
    passed, failed, never = outcome(st, ask(0, mig=(("1g.10gb", 2),)))
    assert passed == ["exact"]
    assert failed == {"busy": "needs 2 free mig-1g.10gb slices, node has 1"}
    assert never == {
        "small": "needs 2 mig-1g.10gb slices, node has 1 in total",
        "none": "node offers no mig-1g.10gb slices",
    }
    _, failed, _ = outcome(st, ask(0, mig=(("1g.10gb", 1),)))
    assert "exact" not in failed and failed == {}
    _, _, never = outcome(st, ask(0, mig=(("7g.80gb", 1),)))
    assert set(never.values()) == {"node offers no mig-7g.80gb slices"}


def test_topology_required_exactly_the_nvlink_set_asked() -> None:
    st = gpu_state(("nv", 2, 0), ("pcie", 2, 0), ("nv-busy", 2, 1), ("blind", 2, 0))
    topo = TopologyIndex()
    for row, links in ((0, NV), (1, PCIE), (2, NV), (3, None)):
        topo.set_node(row, links)
    passed, failed, never = outcome(st, ask(2, topology="required"), topo)
    assert passed == ["nv"]
    assert never == {
        "pcie": "no all-NVLink set of 2 GPUs on this node (largest: 1)",
        "blind": "topology required but unknown (node has no gpu-autoscaler.io/topology annotation)",
    }
    assert failed == {"nv-busy": "no free all-NVLink set of 2 GPUs (largest free: 1)"}
    assert outcome(st, ask(2, topology="preferred"), topo)[0] == ["nv", "pcie", "blind"]


def test_cpu_and_memory_exactly_what_is_left_fits() -> None:
    st = ClusterState.from_nodes([NodeCapacity("a", 4000, 8192, 1), NodeCapacity("b", 3999, 8191, 1)])
    passed, failed, _ = outcome(st, ask(1, cpu=4000, mem=8191), cpu=True)
    assert passed == ["a"] and failed == {"b": "needs 4000m CPU, node has 3999m free"}
    passed, failed, _ = outcome(st, ask(1, cpu=100, mem=8192), cpu=True)
    assert passed == ["a"] and failed == {"b": "needs 8192 MiB memory, node has 8191 MiB free"}
    assert outcome(st, ask(1, cpu=9999), cpu=False)[0] == ["a", "b"]  # off in the extender


# -- score parts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gpu", "cpu", "mem", "has_cpu", "has_mem", "score"),
    [
        (0.2, 0.0, 0.8, True, True, 70.0),  # memory 0.6 ahead of the GPUs, over two resources
        (0.2, 0.5, 0.8, True, True, 55.0),  # (0.3 + 0.6) / 2
        (0.2, 0.5, 0.8, True, False, 70.0),  # memory unknown: CPU alone
        (0.2, 0.5, 0.8, False, True, 40.0),  # CPU unknown: memory alone
        (0.9, 0.5, 0.1, True, True, 100.0),  # GPUs ahead of CPU and memory: not penalised
        (0.2, 0.5, 0.8, False, False, 100.0),
    ],
)
def test_gpu_first_balance(
    gpu: float, cpu: float, mem: float, has_cpu: bool, has_mem: bool, score: float
) -> None:
    out = gpu_first_balance(*(np.array([v]) for v in (gpu, cpu, mem, has_cpu, has_mem)))
    assert out.tolist() == pytest.approx([score])


def test_balance_of_the_kubernetes_rule_and_the_gpu_first_one() -> None:
    st = ClusterState.from_nodes([NodeCapacity("n", 8000, 8000, 2)])
    a = ask(1, cpu=2000, mem=6000)  # after: GPU 0.5, CPU 0.25, memory 0.75
    std = np.std([0.5, 0.25, 0.75])
    assert balance_scores(st, np.array([0]), a, "binpack").tolist() == pytest.approx([100 * (1 - std)])
    assert balance_scores(st, np.array([0]), a, "fragmentation").tolist() == pytest.approx(
        [100 * (1 - 0.25 / 2)]
    )


def test_resource_part_binpack_spread_and_memory_fit() -> None:
    st = gpu_state(("n", 4, 1), mem_mib=80 * 1024)
    rows = np.array([0])
    assert resource_scores(st, rows, ask(1), "binpack").tolist() == [50.0]  # 2 of 4 in use after
    assert resource_scores(st, rows, ask(1), "spread").tolist() == [50.0]
    assert resource_scores(st, rows, ask(2), "binpack").tolist() == [75.0]
    assert resource_scores(st, rows, ask(2), "spread").tolist() == [25.0]
    fit = memory_fit(st, rows, ask(1, gpu_memory_mib=20 * 1024))
    assert fit is not None and fit.tolist() == [25.0]
    assert resource_scores(st, rows, ask(1, gpu_memory_mib=20 * 1024), "binpack").tolist() == [
        pytest.approx(0.75 * 50 + 0.25 * 25)
    ]
    with pytest.raises(ValueError, match="unknown resource policy"):
        resource_scores(st, rows, ask(1), "fragmentation")


def test_topology_part_neutral_zero_and_full() -> None:
    st = gpu_state(("nv", 2, 0), ("blind", 2, 0))
    topo = TopologyIndex()
    topo.set_node(0, NV)
    rows = np.array([0, 1])
    assert topology_scores(st, rows, ask(1), None).tolist() == [50.0, 50.0]
    assert topology_scores(st, rows, ask(2, topology="none"), topo).tolist() == [50.0, 50.0]
    assert topology_scores(st, rows, ask(0), topo).tolist() == [50.0, 50.0]
    assert topology_scores(st, rows, ask(3), topo).tolist() == [0.0, 50.0]  # more GPUs than the shape has
    both = topology_scores(st, rows, ask(2), topo).tolist()
    # q = 100 (NV18); the pair is the node's whole potential, so nothing else could have been kept: keep = 1
    assert both == [100.0, 50.0]
    # one GPU or a share of one has no interconnect to gain: neutral, whether it fits a partly used GPU or not
    shared = gpu_state(("s", 3, 0))
    shared.place(0, PodRequest(gpu_count=1, gpu_milli=500), [2])
    t3 = TopologyIndex()
    t3.set_node(0, [["X" if i == j else "NV18" for j in range(3)] for i in range(3)])
    assert topology_scores(shared, np.array([0]), ask(1, 500), t3).tolist() == [50.0]
    assert topology_scores(shared, np.array([0]), ask(1, 501), t3).tolist() == [50.0]


@pytest.mark.parametrize(
    ("other", "extender"),
    [
        (80.0, 8),  # equal to the best: still the lead below it
        (75.01, 8),  # 4.99 behind: same step
        (75.0, 7),  # exactly one step (5 points) behind: one lower
        (70.01, 7),
        (70.0, 6),
        (40.0, 0),  # 8 steps behind: floor
        (0.0, 0),
        (float("nan"), 0),
    ],
)
def test_decisive_scores_step_boundaries(other: float, extender: int) -> None:
    """The best node gets 10; another gets 10 - lead - floor(gap / step), never below 0."""
    assert decisive_scores(np.array([80.0, other]), best=0).tolist() == [10, extender]


def test_decisive_scores_default_best_is_the_first_maximum() -> None:
    assert decisive_scores(np.array([50.0, 60.0, 60.0])).tolist() == [6, 10, 8]
    assert decisive_scores(np.array([float("nan"), 1.0])).tolist() == [8, 10]


def test_memory_fit_edges() -> None:
    st = GpuClusterState()
    for name, mem in (("small", 40 * 1024), ("blind", 0), ("big", 80 * 1024)):
        st.add_gpu_node(NodeCapacity(name, 64000, 512000, 1, "x"), mem)
    rows = np.array([0, 1, 2])
    fit = memory_fit(st, rows, ask(1, gpu_memory_mib=60 * 1024))
    assert fit is not None and fit.tolist() == [100.0, 0.0, 75.0]  # capped at 100; unknown memory: 0
    assert memory_fit(st, rows, ask(1)) is None
    assert memory_fit(st, rows, ask(0, mig=(("1g.10gb", 1),), gpu_memory_mib=1024)) is None
    plain = ClusterState.from_nodes([NodeCapacity("n", 1, 1, 1)])
    assert memory_fit(plain, np.array([0]), ask(1, gpu_memory_mib=1024)) is None


def test_memory_fit_on_a_node_reporting_one_mib() -> None:
    st = GpuClusterState()
    st.add_gpu_node(NodeCapacity("tiny", 64000, 512000, 1, "x"), 1)
    fit = memory_fit(st, np.array([0]), ask(1, gpu_memory_mib=1024))
    assert fit is not None and fit.tolist() == [100.0]  # known (1 MiB), far too small: capped, not "unknown"
