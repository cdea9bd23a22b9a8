"""GPU topology model: link matrix -> bandwidth-aware pair values -> per-free-mask lookup tables.

A node's link matrix (the `nvidia-smi topo -m` tokens of the `gpu-autoscaler.io/topology` annotation) is
turned into a *shape*. Nodes with the same matrix share one shape (a 5,000-node fleet of DGX H100 has one),
and each shape precomputes, over every free-GPU bitmask F (≤ 8 GPUs: 256 masks) and pod size k:

- `score[F, k]` — the topology part (0..100) of the best k-GPU set S ⊆ F, and `best[F, k]` that set;
- `nvl_max[F]` — the largest all-NVLink subset of F (for `gpu-autoscaler.io/topology: required`).

So a scheduling request does array lookups, never a search. Formulas (see docs/scheduling.md "Topology"):

    link(i, j)  = 90 + 10·min(1, 25·n / 450)  for NV<n> (n NVLinks at 25 GB/s per direction; NV18 = 100)
                = PIX 90, PXB 85 (behind PCIe switches), PHB 80, NODE 75 (one NUMA node), SYS 50 (and any
                  unknown token: crossing sockets is no better than not knowing)
    q(S)        = ½·min + ½·mean of link(i, j) over the pairs of S                       (50..100)
    best_q(X,m) = max q(S) over S ⊆ X, |S| = m;   P(X) = Σ_{m=2..|X|} best_q(X, m)   ("potential")
    keep(F,S)   = P(R) / max{P(R') : R' ⊆ F, |R'| = |R|}  with R = F minus S  (1 when |R| ≤ 1): 0..1, how
                  well connected the GPUs left behind are, against the best the pod could have left
    topo(F,S)   = 50 + (q(S) - 50)·(0.7 + 0.3·keep(F,S))   for |S| ≥ 2;   score[F,k] = max over |S| = k
    topo(F,S)   = 50 for |S| = 1: one GPU has no interconnect to gain (which GPU it takes is still chosen to
                  keep NVLink sets whole: `best[F, 1]`)

So the bands are: an all-NVLink set 50-100, a set on one NUMA node 50-90 (PIX highest, NODE lowest), a
cross-socket set 50, unknown topology 50 (NEUTRAL): known topology never scores below unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from extender.arrays import GPU_MILLI, ClusterState

NEUTRAL = 50.0
#: share of a set's quality above NEUTRAL that it always gets; the rest is earned by keeping future sets
QUALITY_SHARE = 0.7
KEEP_SHARE = 0.3
#: exact tables up to this many GPUs per node (2^8 masks x 3^8 subset pairs); larger nodes use greedy
TABLE_MAX_GPUS = 8
NVLINK_GBPS_PER_LINK = 25.0
NVLINK_REFERENCE_GBPS = 450.0  # NV18 (H100/H200 SXM, per direction)
PCIE_SCORES = {"PIX": 90.0, "PXB": 85.0, "PHB": 80.0, "NODE": 75.0, "SYS": 50.0}
_NV = re.compile(r"^NV(\d+)$", re.IGNORECASE)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def link_score(token: str) -> float:
    """One `nvidia-smi topo -m` token -> 50..100 (NVLink above every PCIe path, bandwidth within it;
    crossing sockets or an unknown token = NEUTRAL)."""
    t = token.strip().upper()
    m = _NV.match(t)
    if m:
        n = int(m.group(1))
        return 90.0 + 10.0 * min(1.0, NVLINK_GBPS_PER_LINK * n / NVLINK_REFERENCE_GBPS)
    return PCIE_SCORES.get(t, NEUTRAL)


def topo_value(quality: float, keep: float) -> float:
    """The topology part of a set of >= 2 GPUs: quality q (50..100), keep 0..1 -> 50..100."""
    return NEUTRAL + (quality - NEUTRAL) * (QUALITY_SHARE + KEEP_SHARE * keep)


def is_nvlink(token: str) -> bool:
    return bool(_NV.match(token.strip().upper()))


def _popcount(x: int) -> int:
    return int(x).bit_count()


@dataclass
class TopologyShape:
    """Precomputed tables for one link matrix of n GPUs."""

    links: tuple[tuple[str, ...], ...]
    n: int = 0
    pair: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    nvlink: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.bool_))
    score: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # [2^n, n+1]
    best: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))  # [2^n, n+1]
    quality: FloatArray = field(default_factory=lambda: np.zeros(0))  # q(S) per mask
    nvl_max: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [2^n]
    potential: FloatArray = field(default_factory=lambda: np.zeros(0))  # [2^n]: worth to multi-GPU pods
    exact: bool = True
    _memo: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n = len(self.links)
        pair = np.zeros((n, n))
        nv = np.zeros((n, n), dtype=np.bool_)
        for i in range(n):
            for j in range(n):
                if i != j:
                    # symmetric by construction: a one-sided NVLink counts as the weaker direction
                    pair[i, j] = min(link_score(self.links[i][j]), link_score(self.links[j][i]))
                    nv[i, j] = is_nvlink(self.links[i][j]) and is_nvlink(self.links[j][i])
        self.pair, self.nvlink = pair, nv
        self.exact = n <= TABLE_MAX_GPUS
        if self.exact:
            self._build_tables()

    # -- set quality ------------------------------------------------------------------------------
    def set_quality(self, mask: int) -> float:
        idx = [i for i in range(self.n) if mask >> i & 1]
        if len(idx) <= 1:
            return 100.0 if idx else 0.0
        sub = self.pair[np.ix_(idx, idx)]
        vals = sub[np.triu_indices(len(idx), 1)]
        return float(0.5 * vals.min() + 0.5 * vals.mean())

    def _build_tables(self) -> None:
        n = self.n
        size = 1 << n
        pop = np.array([_popcount(m) for m in range(size)], dtype=np.int64)
        quality = np.array([self.set_quality(m) for m in range(size)])
        # best_q[X, m] by DP over "drop one GPU"
        best_q = np.full((size, n + 1), -1.0)
        for x in range(size):
            best_q[x, pop[x]] = quality[x]
            for b in range(n):
                if x >> b & 1:
                    np.maximum(best_q[x], best_q[x & ~(1 << b)], out=best_q[x])
        potential = np.zeros(size)
        for x in range(size):
            potential[x] = best_q[x, 2 : pop[x] + 1].sum() if pop[x] >= 2 else 0.0
        # best_p[X, m]: the largest potential of an m-GPU subset of X (same DP)
        best_p = np.full((size, n + 1), -1.0)
        for x in range(size):
            best_p[x, pop[x]] = potential[x]
            for b in range(n):
                if x >> b & 1:
                    np.maximum(best_p[x], best_p[x & ~(1 << b)], out=best_p[x])
        # all-NVLink subsets and the largest one inside each mask
        all_nv = np.zeros(size, dtype=np.bool_)
        for x in range(size):
            idx = [i for i in range(n) if x >> i & 1]
            all_nv[x] = len(idx) <= 1 or bool(
                self.nvlink[np.ix_(idx, idx)][np.triu_indices(len(idx), 1)].all()
            )
        nvl_max = np.where(all_nv, pop, 0)
        for x in range(size):
            for b in range(n):
                if x >> b & 1:
                    nvl_max[x] = max(nvl_max[x], nvl_max[x & ~(1 << b)])
        score = np.full((size, n + 1), np.nan)
        best = np.full((size, n + 1), -1, dtype=np.int64)
        score[:, 0] = NEUTRAL
        best[:, 0] = 0
        for f in range(1, size):
            s = f
            while s:
                k = int(pop[s])
                rest = f & ~s
                top = best_p[f, pop[rest]]
                keep = potential[rest] / top if top > 0 else 1.0
                # one GPU: the set that keeps most (its part is NEUTRAL, see the module docstring)
                val = keep if k == 1 else topo_value(quality[s], keep)
                cur = score[f, k]
                # ties: lower GPU indices first (the device plugin's natural order)
                if np.isnan(cur) or val > cur + 1e-9 or (abs(val - cur) <= 1e-9 and s < best[f, k]):
                    score[f, k] = val
                    best[f, k] = s
                s = (s - 1) & f
        score[:, 1] = np.where(np.isnan(score[:, 1]), np.nan, NEUTRAL)
        self.score, self.best, self.quality, self.nvl_max = score, best, quality, nvl_max
        self.potential = potential

    # -- lookups (greedy fallback above TABLE_MAX_GPUS) ------------------------------------------------
    def lookup(self, free_mask: int, k: int) -> tuple[float, int]:
        """(topology part, chosen mask) for k GPUs out of `free_mask`; (nan, -1) if k > |free|."""
        if self.exact:
            return float(self.score[free_mask, k]), int(self.best[free_mask, k])
        key = (free_mask, k)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._greedy(free_mask, k)
            self._memo[key] = hit
        return hit

    def _greedy(self, free_mask: int, k: int) -> tuple[float, int]:
        free = [i for i in range(self.n) if free_mask >> i & 1]
        if k > len(free) or k <= 0:
            return (NEUTRAL, 0) if k == 0 else (float("nan"), -1)
        best_val, best_mask = -1.0, -1
        for seed in free:
            chosen = [seed]
            while len(chosen) < k:
                rest = [g for g in free if g not in chosen]
                nxt = max(rest, key=lambda g: min(self.pair[g, c] for c in chosen))
                chosen.append(nxt)
            mask = sum(1 << g for g in chosen)
            val = NEUTRAL if k == 1 else topo_value(self.set_quality(mask), 1.0)
            if val > best_val:
                best_val, best_mask = val, mask
        return best_val, best_mask

    def free_potential(self, free_mask: int) -> float:
        """What the free GPUs are worth to multi-GPU pods (sum over sizes of the best set's quality)."""
        if self.exact:
            return float(self.potential[free_mask])
        free = [i for i in range(self.n) if free_mask >> i & 1]
        return sum(self.lookup(free_mask, k)[0] for k in range(2, len(free) + 1))

    def largest_nvlink(self, free_mask: int) -> int:
        if self.exact:
            return int(self.nvl_max[free_mask])
        free = [i for i in range(self.n) if free_mask >> i & 1]
        best = 1 if free else 0
        for seed in free:  # greedy clique
            clique = [seed]
            for g in free:
                if g != seed and all(self.nvlink[g, c] for c in clique):
                    clique.append(g)
            best = max(best, len(clique))
        return best


class TopologyIndex:
    """Row -> topology shape (or unknown). Shapes are shared by identical link matrices."""

    def __init__(self) -> None:
        self.shapes: list[TopologyShape] = []
        self._by_links: dict[tuple[tuple[str, ...], ...], int] = {}
        self.shape_of_row = np.full(16, -1, dtype=np.int64)

    def set_node(self, row: int, links: Sequence[Sequence[str]] | None) -> None:
        """Attach (or clear, with None) the link matrix of the node at `row`."""
        if row >= len(self.shape_of_row):
            grown = np.full(max(row + 1, 2 * len(self.shape_of_row)), -1, dtype=np.int64)
            grown[: len(self.shape_of_row)] = self.shape_of_row
            self.shape_of_row = grown
        if not links or len(links) < 1:
            self.shape_of_row[row] = -1
            return
        key = tuple(tuple(str(t) for t in r) for r in links)
        sid = self._by_links.get(key)
        if sid is None:
            sid = len(self.shapes)
            self.shapes.append(TopologyShape(key))
            self._by_links[key] = sid
        self.shape_of_row[row] = sid

    def shape(self, row: int) -> TopologyShape | None:
        if row >= len(self.shape_of_row):
            return None
        sid = int(self.shape_of_row[row])
        return self.shapes[sid] if sid >= 0 else None

    def shape_ids(self, rows: IntArray) -> IntArray:
        ids = np.full(len(rows), -1, dtype=np.int64)
        inside = rows < len(self.shape_of_row)
        ids[inside] = self.shape_of_row[rows[inside]]
        return ids


def free_masks(state: ClusterState, rows: IntArray) -> IntArray:
    """Bitmask of whole free GPUs per row (bit g = column g fully free)."""
    g = state.gpu_left.shape[1]
    full = state.gpu_left[rows] == GPU_MILLI
    weights = np.left_shift(np.int64(1), np.arange(g, dtype=np.int64))
    return (full.astype(np.int64) @ weights).astype(np.int64)  # type: ignore[no-any-return]


def full_masks(state: ClusterState, rows: IntArray) -> IntArray:
    """Bitmask of every GPU column a node has (as if all were free)."""
    return (np.left_shift(np.int64(1), state.gpu_count[rows]) - 1).astype(np.int64)  # type: ignore[no-any-return]
