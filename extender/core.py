"""The scheduling core: pure functions over (pod request, node state). No HTTP, no Kubernetes client.

Callers: the extender's routes, the trace-replay simulator (~100,000 calls per run), the node autoscaler.

    score = w_t·topology + w_r·resource + w_b·balance        (each part 0..100, weights normalised to sum 1)
    extender score = decisive_scores(scores)                 (0..10, MaxExtenderPriority: see there)

`req` may be a plain `PodRequest` (trace rows) or a `PodAsk` (real pods: MIG slices, GPU memory, product,
topology and gang annotations). Node state changes only through `ClusterState.place` / `release`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from extender import fragmentation as frag_policy
from extender.arrays import GPU_MILLI, ClusterState, IntArray, PodRequest
from extender.filters import FilterOutcome, run_filters
from extender.fragmentation import TypicalPodLearner
from extender.inventory import PodAsk
from extender.scores.balance import balance_scores
from extender.scores.resource import resource_scores
from extender.scores.topology import topology_scores
from extender.topology import FloatArray, TopologyIndex, free_masks

MAX_EXTENDER_PRIORITY = 10
#: every node this many points (of 100) below the best scores at least one step lower per step
DECISIVE_STEP = 5.0
#: the best node's lead over every other node, in extender points (x weight x 10 in kube-scheduler's sum)
DECISIVE_LEAD = 2
POLICIES = ("binpack", "spread", "fragmentation")

__all__ = [
    "MAX_EXTENDER_PRIORITY",
    "FilterOutcome",
    "ScoreParts",
    "ScoringConfig",
    "as_ask",
    "best_index",
    "choose_gpus",
    "decisive_scores",
    "filter_nodes",
    "score_nodes",
    "score_parts",
]


@dataclass(frozen=True)
class ScoringConfig:
    topology_weight: float = 0.40
    resource_weight: float = 0.35
    balance_weight: float = 0.25
    resource_policy: str = "fragmentation"  # "fragmentation" | "binpack" | "spread"

    def __post_init__(self) -> None:
        if self.resource_policy not in POLICIES:
            raise ValueError(f"resource_policy must be one of {POLICIES}, got {self.resource_policy!r}")
        weights = (self.topology_weight, self.resource_weight, self.balance_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")

    @classmethod
    def from_settings(cls, settings: Any) -> ScoringConfig:
        return cls(
            topology_weight=float(settings.topology_weight),
            resource_weight=float(settings.resource_weight),
            balance_weight=float(settings.balance_weight),
            resource_policy=str(settings.resource_policy),
        )

    @property
    def normalised_weights(self) -> tuple[float, float, float]:
        total = self.topology_weight + self.resource_weight + self.balance_weight
        return self.topology_weight / total, self.resource_weight / total, self.balance_weight / total


@dataclass(frozen=True)
class ScoreParts:
    """Each part 0..100 and their weighted sum, aligned with the rows scored."""

    topology: FloatArray
    resource: FloatArray
    balance: FloatArray
    total: FloatArray


def as_ask(req: PodRequest | PodAsk) -> PodAsk:
    return req if isinstance(req, PodAsk) else PodAsk(req=req, products=req.gpu_models)


def score_parts(
    state: ClusterState,
    rows: IntArray,
    req: PodRequest | PodAsk,
    config: ScoringConfig,
    topo: TopologyIndex | None = None,
    frag: TypicalPodLearner | None = None,
) -> ScoreParts:
    """The three parts and the total for every row (all assumed feasible). Vectorised across rows."""
    rows = np.asarray(rows, dtype=np.int64)
    ask = as_ask(req)
    wt, wr, wb = config.normalised_weights
    fragmentation = config.resource_policy == "fragmentation"
    if not ask.wants_gpu and not fragmentation:
        neutral = np.full(len(rows), 50.0)
        return ScoreParts(neutral, neutral, neutral, neutral)
    # a CPU-only pod has no GPU topology to care about
    t = topology_scores(state, rows, ask, topo) if ask.wants_gpu and wt else np.full(len(rows), 50.0)
    if fragmentation:
        # CPU-only pods too: they go where GPUs are gone, keeping CPU next to idle GPUs
        r = np.asarray(frag_policy.resource_scores(state, rows, ask.req, frag), dtype=np.float64)
    else:
        r = resource_scores(state, rows, ask, config.resource_policy)
    # only pods that take GPUs compete with the pods bound to a kind of node (a CPU-only pod's CPU is the
    # GPU-first balance's own business)
    bound = fragmentation and frag is not None and ask.wants_gpu
    pressure = frag.node_pressure(state, rows) if bound and frag is not None else None
    b = balance_scores(state, rows, ask, config.resource_policy, pressure) if wb else np.full(len(rows), 50.0)
    total = np.clip(wt * t + wr * r + wb * b, 0.0, 100.0)
    return ScoreParts(t, r, b, total)


def score_nodes(
    state: ClusterState,
    rows: np.ndarray,
    req: PodRequest | PodAsk,
    config: ScoringConfig,
    topo: TopologyIndex | None = None,
    frag: TypicalPodLearner | None = None,
) -> np.ndarray:
    """Float scores 0..100 (weighted sum of the three parts), aligned with `rows` (all feasible).
    Nodes without topology get the neutral topology part; `frag` goes to the fragmentation policy."""
    return score_parts(state, rows, req, config, topo, frag).total


def best_index(
    state: ClusterState, rows: IntArray, totals: np.ndarray, topo: TopologyIndex | None = None
) -> int:
    """The node the extender picks among `rows` (aligned with `totals`): the highest total; among equal
    totals the node with the most GPU capacity already in use (packing: an empty node stays whole for a
    bigger pod even when the learnt workload says nothing about bigger pods); then the node whose free GPUs
    are worth least to multi-GPU pods (a 1-GPU pod takes a PCIe GPU, the NVSwitch node stays whole for the
    pair or quad that needs it; nodes without known topology count as worth nothing); then the lowest row.

    Every step is the service's own: kube-scheduler sends NodeNames in no fixed order, and a pick that
    followed that order would land the same pod on different nodes from run to run.

    The trace replay breaks ties with the study's node ranks instead, as kube-scheduler's own tie-break
    did there; this rule is for the live extender, whose ties kube-scheduler must not break."""
    t = np.nan_to_num(np.asarray(totals, dtype=np.float64), nan=0.0)
    if t.size == 0:
        raise ValueError("no rows")
    top = np.flatnonzero(t >= t.max() - 1e-9)
    if len(top) == 1:
        return int(top[0])
    r = np.asarray(rows, dtype=np.int64)[top]
    cap = np.maximum(state.gpu_count[r], 1) * GPU_MILLI
    used = 1.0 - state.gpu_left[r].sum(axis=1) / cap
    keep = used >= used.max() - 1e-9
    top, r = top[keep], r[keep]
    if len(top) > 1 and topo is not None:
        masks = free_masks(state, r)
        sids = topo.shape_ids(r)
        worth = np.zeros(len(r))  # nodes without known topology: worth nothing
        for sid in np.unique(sids[sids >= 0]).tolist():
            shape = topo.shapes[sid]
            on = sids == sid
            m = masks[on] & ((1 << shape.n) - 1)
            worth[on] = shape.potential[m] if shape.exact else [shape.free_potential(int(x)) for x in m]
        keep = worth <= worth.min() + 1e-9
        top, r = top[keep], r[keep]
    return int(top[int(np.argmin(r))])


def decisive_scores(scores: np.ndarray, best: int | None = None) -> IntArray:
    """0..100 floats -> 0..10 ints (MaxExtenderPriority) that leave kube-scheduler no tie to break.

    The best node (`best`, by default the first of equals) gets 10; every other
    node gets at most 10 - DECISIVE_LEAD, one step lower per DECISIVE_STEP points it trails the best:

        score = 10                                              for the best node
              = max(0, 10 - DECISIVE_LEAD - floor(gap / DECISIVE_STEP))   otherwise (gap = best - total)

    Why: kube-scheduler adds its own plugins' scores (NodeResourcesLeastAllocated prefers the emptiest node,
    the opposite of packing) to ours x weight x 10. Rounding totals to tenths ties nodes up to 9 points apart
    and hands the choice to that spreading; a lead of 2 (100 points at weight 5) keeps the decision ours,
    and the pod lands where the extender assumed it, so the next pod sees the truth. NaN counts as 0."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    best = int(np.argmax(s)) if best is None else best
    gap = np.maximum(s[best] - s, 0.0)
    top = MAX_EXTENDER_PRIORITY - DECISIVE_LEAD
    out = np.clip(top - np.floor(gap / DECISIVE_STEP), 0, top).astype(np.int64)
    out[best] = MAX_EXTENDER_PRIORITY
    return out  # type: ignore[no-any-return]


def filter_nodes(
    state: ClusterState,
    rows: IntArray,
    req: PodRequest | PodAsk,
    topo: TopologyIndex | None = None,
    check_cpu_memory: bool = False,
) -> FilterOutcome:
    """Which rows can take the pod now, with a reason per failed row (see extender/filters.py)."""
    return run_filters(state, rows, as_ask(req), topo, check_cpu_memory)


def choose_gpus(
    state: ClusterState,
    row: int,
    req: PodRequest | PodAsk,
    config: ScoringConfig,
    topo: TopologyIndex | None = None,
    frag: TypicalPodLearner | None = None,
) -> list[int]:
    """GPU columns the pod gets on that node: the table's best set for whole GPUs (topology-aware; for one
    GPU the one that keeps the best sets free), for shares best-fit (binpack / spread) or the GPU that
    fragments least (fragmentation). Raises ValueError if it does not fit."""
    ask = as_ask(req)
    r = ask.req
    if not r.wants_gpu:
        return []
    shape = topo.shape(row) if topo is not None and ask.topology != "none" else None
    if config.resource_policy == "fragmentation" and (r.gpu_milli < GPU_MILLI or shape is None):
        # shares: the GPU that fragments least; whole GPUs without a topology table: the first free ones
        return [int(g) for g in frag_policy.choose_gpu(state, row, r, frag)]
    if r.gpu_milli < GPU_MILLI:
        left = state.gpu_left[row, : state.gpu_count[row]]
        partial = np.flatnonzero((left >= r.gpu_milli) & (left < GPU_MILLI))
        if len(partial):  # best fit among partly used GPUs: least left, ties -> lowest index
            return [int(partial[np.argmin(left[partial])])]
    k = r.gpu_count
    if shape is not None and k <= shape.n:
        fm = int(free_masks(state, np.array([row], dtype=np.int64))[0]) & ((1 << shape.n) - 1)
        _, best = shape.lookup(fm, k)
        if best >= 0:
            return [g for g in range(shape.n) if best >> g & 1]
    if r.gpu_milli < GPU_MILLI:
        return [state.best_fit_gpu(row, r.gpu_milli)]
    return state.first_free_gpus(row, k)
