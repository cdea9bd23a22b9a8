"""Filters: one function per rule, vectorised over node rows, each failure a short human sentence.

A rule reports *unresolvable* failures (preemption cannot help: too few GPUs in total, wrong product, no such
MIG profile, no NVLink island that large) apart from *resolvable* ones (GPUs busy now). kube-scheduler skips
FailedAndUnresolvableNodes when it looks for preemption victims.

Rules run in order; a node gets the reason of the first rule it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from extender.arrays import GPU_MILLI, BoolArray, ClusterState, IntArray
from extender.inventory import PodAsk, mig_profile_memory_gib
from extender.kube_arrays import GpuClusterState
from extender.topology import TopologyIndex, free_masks, full_masks

Reason = Callable[[int], str]  # row -> sentence


@dataclass(frozen=True)
class Failure:
    bad: BoolArray  # aligned with rows
    unresolvable: bool
    reason: Reason


@dataclass
class FilterOutcome:
    """`passed` rows in input order; failures keyed by row."""

    passed: IntArray
    failed: dict[int, str] = field(default_factory=dict)
    unresolvable: dict[int, str] = field(default_factory=dict)


def _constant(msg: str) -> Reason:
    def reason(row: int) -> str:
        return msg

    return reason


def _memo(value: Callable[[int], int], text: Callable[[int], str]) -> Reason:
    """A reason that depends on one number per row: each distinct number is formatted once (hundreds of
    failing nodes share a handful of messages)."""
    cache: dict[int, str] = {}

    def reason(row: int) -> str:
        v = value(row)
        msg = cache.get(v)
        if msg is None:
            msg = cache[v] = text(v)
        return msg

    return reason


def _gib(mib: int) -> str:
    return f"{mib / 1024:.0f} GiB"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- rules ----------------------------------------------------------------------------------------------
def filter_alive(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    return [Failure(~state.alive[rows], True, lambda r: "node is not in the extender's cluster view")]


def filter_gpu_total(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    k = ask.req.gpu_count
    if k <= 0:
        return []

    def why(r: int) -> str:
        n = int(state.gpu_count[r])
        if n == 0:
            return "node has no whole GPUs (allocatable nvidia.com/gpu is 0)"
        return f"needs {_plural(k, 'GPU')}, node has {n} in total"

    return [Failure(state.gpu_count[rows] < k, True, why)]


def filter_ask(state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None) -> list[Failure]:
    """A pod whose own annotations are unusable (e.g. gpu-milli "1500") fails everywhere, saying why."""
    if not ask.invalid:
        return []
    return [Failure(np.ones(len(rows), dtype=np.bool_), True, _constant(ask.invalid))]


def filter_sharing(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    """A share of one GPU only on nodes whose device plugin shares GPUs (time-slicing / MPS). The plain
    ClusterState (trace replay) has no such flag: every node shares there, as in the trace."""
    if not ask.req.is_shared or not isinstance(state, GpuClusterState):
        return []
    milli = ask.req.gpu_milli
    return [
        Failure(
            ~state.sharing[rows],
            True,
            _constant(
                f"pod asks {milli}m of one GPU (gpu-autoscaler.io/gpu-milli); node does not share GPUs "
                "(nvidia.com/gpu.sharing-strategy is not time-slicing or mps)"
            ),
        )
    ]


def filter_product(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    if not ask.products:
        return []
    ok = state.model_mask(ask.products, "substring")[rows]
    wanted = ",".join(ask.products)
    return [
        Failure(
            ~ok,
            True,
            lambda r: f"GPU product {state.models[state.model[r]] or 'unknown'} is not one of {wanted}",
        )
    ]


def filter_gpu_memory(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    need = ask.gpu_memory_mib
    if not need:
        return []
    out: list[Failure] = []
    if ask.mig:
        # a profile's name gives its memory in GB (usable ≈ 0.98 GiB per GB): 40gb -> ~40,000 MiB
        small = [p for p, _ in ask.mig if (mig_profile_memory_gib(p) or 0) * 1000 < need]
        if small:
            bad = np.ones(len(rows), dtype=np.bool_)
            out.append(
                Failure(bad, True, lambda r: f"MIG slice {small[0]} is smaller than the {_gib(need)} asked")
            )
        return out
    if not ask.req.wants_gpu or not isinstance(state, GpuClusterState):
        return out
    mem = state.gpu_mem_mib[rows]

    def why(r: int) -> str:
        m = int(state.gpu_mem_mib[r])
        if m == 0:
            return f"needs {_gib(need)} per GPU, node does not report its GPU memory"
        return f"needs {_gib(need)} per GPU, node's GPUs have {_gib(m)}"

    out.append(Failure(mem < need, True, why))
    return out


def filter_mig(state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None) -> list[Failure]:
    if not ask.mig:
        return []
    out: list[Failure] = []
    for profile, n in ask.mig:
        pid = state.mig_id(profile, create=False) if isinstance(state, GpuClusterState) else -1
        if pid < 0:
            out.append(
                Failure(
                    np.ones(len(rows), dtype=np.bool_),
                    True,
                    _constant(f"node offers no mig-{profile} slices"),
                )
            )
            continue
        assert isinstance(state, GpuClusterState)
        cap = state.mig_cap[rows, pid]
        left = state.mig_left[rows, pid]

        def why_total(r: int, p: str = profile, n: int = n, pid: int = pid) -> str:
            c = int(state.mig_cap[r, pid])  # type: ignore[attr-defined]
            return (
                f"node offers no mig-{p} slices"
                if c == 0
                else f"needs {n} mig-{p} slices, node has {c} in total"
            )

        def why_free(r: int, p: str = profile, n: int = n, pid: int = pid) -> str:
            free = max(0, int(state.mig_left[r, pid]))  # type: ignore[attr-defined]
            return f"needs {_plural(n, f'free mig-{p} slice')}, node has {free}"

        out.append(Failure(cap < n, True, why_total))
        out.append(Failure(left < n, False, why_free))
    return out


def filter_topology_required(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    k = ask.req.gpu_count
    if ask.topology != "required" or k < 2:
        return []
    n = len(rows)
    ids = topo.shape_ids(rows) if topo is not None else np.full(n, -1, dtype=np.int64)
    best_all = np.zeros(n, dtype=np.int64)
    best_free = np.zeros(n, dtype=np.int64)
    fm, am = free_masks(state, rows), full_masks(state, rows)
    for j in np.flatnonzero(ids >= 0):
        shape = topo.shapes[int(ids[j])]  # type: ignore[union-attr]
        lim = (1 << shape.n) - 1
        best_all[j] = shape.largest_nvlink(int(am[j]) & lim)
        best_free[j] = shape.largest_nvlink(int(fm[j]) & lim)
    pos = {int(r): j for j, r in enumerate(rows)}

    def why_unknown(r: int) -> str:
        return "topology required but unknown (node has no gpu-autoscaler.io/topology annotation)"

    def why_all(r: int) -> str:
        return f"no all-NVLink set of {k} GPUs on this node (largest: {int(best_all[pos[r]])})"

    def why_free(r: int) -> str:
        return f"no free all-NVLink set of {k} GPUs (largest free: {int(best_free[pos[r]])})"

    return [
        Failure(ids < 0, True, why_unknown),
        Failure(best_all < k, True, why_all),
        Failure(best_free < k, False, why_free),
    ]


def filter_free_gpus(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    req = ask.req
    if not req.wants_gpu:
        return []
    if req.gpu_milli >= GPU_MILLI:
        k = req.gpu_count
        free = state.full_free
        return [
            Failure(
                free[rows] < k,
                False,
                _memo(lambda r: int(free[r]), lambda v: f"needs {_plural(k, 'free GPU')}, node has {v}"),
            )
        ]
    most = state.gpu_left[rows].max(axis=1)
    bad = most < req.gpu_milli
    freest: dict[int, int] = {}  # row -> freest GPU's milli, built once from `most` on the first failure

    def value(r: int) -> int:
        if not freest:
            freest.update(zip(rows[bad].tolist(), most[bad].tolist(), strict=True))
        return freest[r]

    return [
        Failure(
            bad,
            False,
            _memo(value, lambda v: f"needs {req.gpu_milli}m of one GPU, the freest GPU has {v}m"),
        )
    ]


def filter_cpu_memory(
    state: ClusterState, rows: IntArray, ask: PodAsk, topo: TopologyIndex | None
) -> list[Failure]:
    """Off in the extender (kube-scheduler's NodeResourcesFit owns CPU/memory); on for offline callers."""
    req = ask.req
    return [
        Failure(
            state.cpu_left[rows] < req.cpu_milli,
            False,
            lambda r: f"needs {req.cpu_milli}m CPU, node has {int(state.cpu_left[r])}m free",
        ),
        Failure(
            state.mem_left[rows] < req.memory_mib,
            False,
            lambda r: f"needs {req.memory_mib} MiB memory, node has {int(state.mem_left[r])} MiB free",
        ),
    ]


Rule = Callable[[ClusterState, IntArray, PodAsk, "TopologyIndex | None"], list[Failure]]

#: every rule, unresolvable checks before resolvable ones inside each rule
RULES: tuple[Rule, ...] = (
    filter_alive,
    filter_ask,
    filter_gpu_total,
    filter_sharing,
    filter_product,
    filter_gpu_memory,
    filter_mig,
    filter_topology_required,
    filter_free_gpus,
)


def run_filters(
    state: ClusterState,
    rows: IntArray,
    ask: PodAsk,
    topo: TopologyIndex | None = None,
    check_cpu_memory: bool = False,
) -> FilterOutcome:
    """Apply the rules; the first failing rule names a node's reason. Unresolvable takes precedence."""
    rows = np.asarray(rows, dtype=np.int64)
    failed = np.zeros(len(rows), dtype=np.bool_)
    outcome = FilterOutcome(passed=rows)
    rules = (*RULES, filter_cpu_memory) if check_cpu_memory else RULES
    for rule in rules:
        for f in rule(state, rows, ask, topo):
            new = f.bad & ~failed
            if new.any():
                target = outcome.unresolvable if f.unresolvable else outcome.failed
                for r in rows[new].tolist():
                    target[r] = f.reason(r)
                failed |= new
        if failed.all():
            break
    outcome.passed = rows[~failed]
    return outcome
