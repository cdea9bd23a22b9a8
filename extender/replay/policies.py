"""Placement policies for the replay: the study's six baselines, exact, and `extender` (our own core).

Baselines follow `shared/reference/fgd-trace-replay.md` §6-§8 (and the study's Go code): integer scores with
the same truncations, BestFit's integer normalisation, the GPU choice inside the node, and ties to the node
with the lowest tie-break rank. Scores are vectorised over the feasible nodes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from extender import fragmentation as fr
from extender.arrays import GPU_MILLI, ClusterState, IntArray, PodRequest

MAX_SPEC_CPU = 128000.0
MAX_SPEC_GPU = 8000.0
BASELINES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd")
#: `extender` runs the core with the service's settings; `extender-<resource policy>` overrides only the
#: resource policy (`extender-binpack` = the default before issue 7)
EXTENDER_VARIANTS = ("extender-binpack", "extender-spread", "extender-fragmentation")
POLICIES = (*BASELINES, "extender", *EXTENDER_VARIANTS)
#: the study's policy names in published/alloc_*.csv
PUBLISHED_NAMES = {
    "random": "01-Random",
    "dotprod": "02-DotProd",
    "clustering": "03-GpuClustering",
    "packing": "04-GpuPacking",
    "bestfit": "05-BestFit",
    "fgd": "06-FGD",
}


class Policy(Protocol):
    name: str

    def choose(self, req: PodRequest, rows: IntArray) -> tuple[int, list[int]]:
        """Pick a node among the feasible `rows` (non-empty) and the GPUs on it."""
        ...

    def placed(self, row: int, req: PodRequest, gpus: list[int]) -> None:
        """The pod was accounted on `row` (state already updated)."""
        ...


def pick(rows: IntArray, scores: np.ndarray, rank: IntArray) -> int:
    """Max score; ties → the node with the lowest tie-break rank (the study's name prefix)."""
    best = scores.max()
    cand = rows[scores == best]
    if len(cand) == 1:
        return int(cand[0])
    return int(cand[np.argmin(rank[cand])])


def best_gpus(state: ClusterState, row: int, req: PodRequest) -> list[int]:
    """The study's `best` GPU choice: a share → least left that fits, lowest index; whole → first free."""
    if not req.wants_gpu:
        return []
    if req.is_shared:
        return [state.best_fit_gpu(row, req.gpu_milli)]
    return state.first_free_gpus(row, req.gpu_count)


class _Base:
    name = "base"

    def __init__(self, state: ClusterState, rank: IntArray) -> None:
        self.state = state
        self.rank = rank

    def scores(self, req: PodRequest, rows: IntArray) -> np.ndarray:
        raise NotImplementedError

    def choose(self, req: PodRequest, rows: IntArray) -> tuple[int, list[int]]:
        row = int(rows[0]) if len(rows) == 1 else pick(rows, self.scores(req, rows), self.rank)
        return row, best_gpus(self.state, row, req)

    def placed(self, row: int, req: PodRequest, gpus: list[int]) -> None:
        return None


class RandomPolicy(_Base):
    """Uniform random feasible node; a share → uniform random fitting GPU; whole → first free GPUs."""

    name = "random"

    def __init__(self, state: ClusterState, rank: IntArray, seed: int) -> None:
        super().__init__(state, rank)
        self.rng = np.random.default_rng(seed + 1_000_003)

    def choose(self, req: PodRequest, rows: IntArray) -> tuple[int, list[int]]:
        row = int(rows[int(self.rng.integers(len(rows)))])
        if req.is_shared:
            left = self.state.gpu_left[row, : self.state.gpu_count[row]]
            fits = np.flatnonzero(left >= req.gpu_milli)
            return row, [int(fits[int(self.rng.integers(len(fits)))])]
        return row, best_gpus(self.state, row, req)


def _gpu_left(state: ClusterState, rows: IntArray) -> IntArray:
    return state.gpu_left[rows].sum(axis=1)  # type: ignore[no-any-return]


class DotProdPolicy(_Base):
    """Tetris dot product, dimext merge, norm max: int(100·(1 - (cpu·cpu' + gpu·gpu')/2))."""

    name = "dotprod"

    def scores(self, req: PodRequest, rows: IntArray) -> np.ndarray:
        s = self.state
        n_cpu = s.cpu_left[rows].astype(np.float64) / MAX_SPEC_CPU
        n_gpu = _gpu_left(s, rows).astype(np.float64) / MAX_SPEC_GPU
        p_cpu = float(req.cpu_milli) / MAX_SPEC_CPU
        p_gpu = float(req.total_gpu_milli) / MAX_SPEC_GPU
        dot = (0.0 + n_cpu * p_cpu) + n_gpu * p_gpu
        cur = 1.0 - dot / 2.0
        return np.trunc(100.0 * cur)


class ClusteringPolicy(_Base):
    """GPU clustering: prefer nodes holding only pods of the same GPU tag (share / k-GPU)."""

    name = "clustering"

    def __init__(self, state: ClusterState, rank: IntArray) -> None:
        super().__init__(state, rank)
        self.tags = np.zeros((state.n, state.max_gpus + 1), dtype=np.int64)

    @staticmethod
    def _tag(req: PodRequest) -> int:
        return 0 if req.is_shared else req.gpu_count

    def scores(self, req: PodRequest, rows: IntArray) -> np.ndarray:
        if not req.wants_gpu:
            return np.zeros(len(rows))
        gl = _gpu_left(self.state, rows)
        b = 25 * (8000 - gl) // 8000
        held = self.tags[rows]
        ntags = (held > 0).sum(axis=1)
        has = held[:, self._tag(req)] > 0
        return np.where(has, np.where(ntags == 1, b + 75, b + 50), np.where(ntags == 0, b + 25, b))

    def placed(self, row: int, req: PodRequest, gpus: list[int]) -> None:
        if req.wants_gpu:
            self.tags[row, self._tag(req)] += 1


class PackingPolicy(_Base):
    """GPU packing: shared GPUs first, then free GPUs on used nodes, then free nodes (gpu_packing_score)."""

    name = "packing"

    def scores(self, req: PodRequest, rows: IntArray) -> np.ndarray:
        if not req.wants_gpu:
            return np.zeros(len(rows))
        s = self.state
        ff = s.full_free[rows]
        gc = s.gpu_count[rows]
        case3 = np.maximum(33 - ff, ff)
        if req.gpu_count > 1 or req.gpu_milli >= GPU_MILLI:
            # whole GPUs: only fully free GPUs fit, all of them counted as fully free ones used
            other = np.full(len(rows), max(50 - req.gpu_count, 33))
        else:
            left = s.gpu_left[rows]
            masked = np.where(left >= req.gpu_milli, left, np.iinfo(np.int64).max)
            least = masked.min(axis=1)
            case1 = np.maximum(100 - (least * 100 // GPU_MILLI) // 10, 50)
            other = np.where(least == GPU_MILLI, max(50 - 1, 33), case1)
        return np.where(ff == gc, case3, other)


class BestFitPolicy(_Base):
    """BestFit: int((1 - ½(cpu_left - c)/128000 - ½(gpu_left - g)/8000)·100), then integer normalisation."""

    name = "bestfit"

    def scores(self, req: PodRequest, rows: IntArray) -> np.ndarray:
        s = self.state
        score = 0.0 + (s.cpu_left[rows] - req.cpu_milli).astype(np.float64) / MAX_SPEC_CPU * 0.5
        score = score + (_gpu_left(s, rows) - req.total_gpu_milli).astype(np.float64) / MAX_SPEC_GPU * 0.5
        raw = np.trunc((1.0 - score) * 100.0).astype(np.int64)
        lo, hi = int(raw.min()), int(raw.max())
        if hi == lo:
            return np.zeros(len(rows), dtype=np.int64)
        return (raw - lo) * 100 // (hi - lo)  # type: ignore[no-any-return]


class FGDPolicy(_Base):
    """FGD: the fragmentation gradient with the workload's typical pods handed in advance (§5-§6)."""

    name = "fgd"

    def __init__(self, state: ClusterState, rank: IntArray, typical: fr.TypicalPods) -> None:
        super().__init__(state, rank)
        self.cache = fr.FragCache(fr.FragTable(typical, state.models))

    def _eval(self, req: PodRequest, rows: IntArray) -> tuple[np.ndarray, IntArray]:
        cands = self.cache.candidates(self.state, rows, req)
        return fr.best_per_row(cands, fr.fgd_int_scores(cands.delta))

    def choose(self, req: PodRequest, rows: IntArray) -> tuple[int, list[int]]:
        scores, gpu = self._eval(req, rows)
        pos = 0 if len(rows) == 1 else int(np.flatnonzero(rows == pick(rows, scores, self.rank))[0])
        row = int(rows[pos])
        if req.is_shared:
            return row, [int(gpu[pos])]
        return row, best_gpus(self.state, row, req)


class ExtenderPolicy(_Base):
    """The extender's own prioritize core (`extender.core`), configured by the service's settings.

    Node = max of `score_nodes` (float, before the 0..10 rounding of the HTTP reply), ties → tie-break rank;
    GPUs = `choose_gpus`. The fragmentation learner sees every pod as it arrives, as the extender would.
    """

    name = "extender"

    def __init__(
        self,
        state: ClusterState,
        rank: IntArray,
        config: Any | None = None,
        resource_policy: str | None = None,
    ) -> None:
        super().__init__(state, rank)
        from extender import core

        self.core = core
        if config is None:
            from app.settings import load_settings

            config = core.ScoringConfig.from_settings(load_settings())
        if resource_policy is not None:
            config = dataclasses.replace(config, resource_policy=resource_policy)
        self.config = config
        self.learner = fr.TypicalPodLearner()

    def choose(self, req: PodRequest, rows: IntArray) -> tuple[int, list[int]]:
        self.learner.observe(req)
        frag = self.learner if self.config.resource_policy == "fragmentation" else None
        if len(rows) == 1:
            row = int(rows[0])
        else:
            scores = np.asarray(self.core.score_nodes(self.state, rows, req, self.config, None, frag))
            row = pick(rows, scores, self.rank)
        return row, list(self.core.choose_gpus(self.state, row, req, self.config, None, frag))


def make_policy(
    name: str,
    state: ClusterState,
    rank: IntArray,
    seed: int,
    typical: fr.TypicalPods | None = None,
    config: Any | None = None,
) -> Policy:
    if name == "random":
        return RandomPolicy(state, rank, seed)
    if name == "dotprod":
        return DotProdPolicy(state, rank)
    if name == "clustering":
        return ClusteringPolicy(state, rank)
    if name == "packing":
        return PackingPolicy(state, rank)
    if name == "bestfit":
        return BestFitPolicy(state, rank)
    if name == "fgd":
        if typical is None:
            raise ValueError("fgd needs the typical pods")
        return FGDPolicy(state, rank, typical)
    if name == "extender":
        return ExtenderPolicy(state, rank, config)
    if name in EXTENDER_VARIANTS:
        return ExtenderPolicy(state, rank, config, resource_policy=name.removeprefix("extender-"))
    raise ValueError(f"unknown policy {name!r} (choose from {', '.join(POLICIES)})")
