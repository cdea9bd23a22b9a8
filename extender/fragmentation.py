"""GPU fragmentation: the FGD measure (Weng et al., ATC'23), an online typical-pod learner, and the extender's
`fragmentation` resource policy.

One copy of the measure serves two callers: the trace replay's published `fgd` baseline (typical pods
handed in advance, integer scores truncated as the study does) and the extender (typical pods learnt online
from the pods it has seen). Everything is vectorised over candidate node states.

The measure (`shared/reference/fgd-trace-replay.md` §6): for a node with GPU-left vector `left`, CPU left
`cpu` and model `model`, each typical pod p (weight w_p) counts as fragment either all idle GPU milli `L`,
or, when p fits (model accepted, p.num GPUs each with >= p.milli left, CPU enough), only the milli on GPUs
too small for it. F = sum over p, summed per class bucket in the study's order so the floats match its Go
code bit for bit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from extender.arrays import GPU_MILLI, ClusterState, IntArray, PodRequest

FloatArray = npt.NDArray[np.float64]

#: pod annotation asking a share of one GPU (GPU sharing on a time-slicing / MPS node pool)
GPU_MILLI_ANNOTATION = "gpu-autoscaler.io/gpu-milli"
#: GPU Feature Discovery label naming the sharing strategy of a node pool
SHARING_LABEL = "nvidia.com/gpu.sharing-strategy"
SHARING_STRATEGIES = ("time-slicing", "mps")

#: a typical-pod spec: (cpu milli, gpu milli per GPU, GPU count, accepted models ('|'-joined, "" = any))
Spec = tuple[int, int, int, str]

# class buckets of the study (frag.go FragRatioDataMap); Q3's fragment part goes to the Q2 bucket
_Q1, _Q2, _Q4, _XL, _XR, _NA = 0, 1, 3, 4, 5, 6
_BUCKETS = (_Q1, _Q2, _Q4, _XL, _XR, _NA)


def parse_gpu_milli(annotations: dict[str, str] | None) -> int | None:
    """`gpu-autoscaler.io/gpu-milli: "<1..999>"` → the share in milli; None when absent.

    Raises ValueError (one line) on a malformed value, so the extender can reject the pod with a reason.
    """
    if not annotations or GPU_MILLI_ANNOTATION not in annotations:
        return None
    raw = str(annotations[GPU_MILLI_ANNOTATION]).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{GPU_MILLI_ANNOTATION}: {raw!r} is not an integer 1..999") from None
    if not 0 < value < GPU_MILLI:
        raise ValueError(f"{GPU_MILLI_ANNOTATION}: {value} is outside 1..999")
    return value


def is_sharing_node(labels: dict[str, str] | None) -> bool:
    """A node pool whose GPUs may be shared (GFD label time-slicing or mps)."""
    return bool(labels) and str((labels or {}).get(SHARING_LABEL, "")).lower() in SHARING_STRATEGIES


def spec_of(req: PodRequest) -> Spec:
    """The typical-pod key of a request, as the study builds it (memory ignored)."""
    if not req.wants_gpu:
        return (req.cpu_milli, 0, 0, "")
    return (req.cpu_milli, req.gpu_milli, req.gpu_count, "|".join(req.gpu_models))


@dataclass(frozen=True)
class TypicalPods:
    """The target workload of the fragmentation measure: specs and weights (summing to 1)."""

    specs: tuple[Spec, ...]
    weights: tuple[float, ...]
    coverage: float = 1.0

    @classmethod
    def from_counts(cls, counts: dict[Spec, float], threshold_pct: float = 95.0) -> TypicalPods:
        """The study's rule (frag.go GetTypicalPods): by count desc, ties by spec desc, take specs until the
        cumulative count reaches `threshold_pct` % of all pods, then renormalise."""
        total = float(sum(counts.values()))
        if total <= 0:
            return cls((), (), 0.0)
        ordered = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        expected = threshold_pct * total / 100.0
        cum = 0.0
        chosen: list[tuple[Spec, float]] = []
        i = 0
        while cum < expected and i < len(ordered):
            spec, cnt = ordered[i]
            cum += cnt
            chosen.append((spec, cnt / total))
            i += 1
        if i >= len(ordered):
            return cls(tuple(s for s, _ in chosen), tuple(p for _, p in chosen), cum / total)
        norm = cum / total
        return cls(tuple(s for s, _ in chosen), tuple(p / norm for _, p in chosen), cum / total)

    @classmethod
    def from_requests(cls, reqs: Iterable[PodRequest], threshold_pct: float = 95.0) -> TypicalPods:
        counts: Counter[Spec] = Counter(spec_of(r) for r in reqs)
        return cls.from_counts(dict(counts), threshold_pct)


class FragTable:
    """TypicalPods compiled to arrays for one ClusterState's model ids (rebuilt when models are added)."""

    def __init__(self, typical: TypicalPods, models: Sequence[str]) -> None:
        self.typical = typical
        self.n_models = len(models)
        t = len(typical.specs)
        self.cpu = np.array([s[0] for s in typical.specs], dtype=np.int64).reshape(t)
        self.milli = np.array([s[1] for s in typical.specs], dtype=np.int64).reshape(t)
        self.num = np.array([s[2] for s in typical.specs], dtype=np.int64).reshape(t)
        self.w = np.array(typical.weights, dtype=np.float64).reshape(t)
        self.is_gpu = self.milli > 0
        uniq = sorted({int(m) for m in self.milli if m > 0}) or [GPU_MILLI]
        self.u_milli = np.array(uniq, dtype=np.int64)
        self.uidx = np.array([uniq.index(int(m)) if m > 0 else 0 for m in self.milli], dtype=np.int64)
        access = np.ones((max(1, len(models)), t), dtype=np.bool_)
        for j, spec in enumerate(typical.specs):
            if spec[1] > 0 and spec[3]:
                accepted = set(spec[3].split("|"))
                for mi, model in enumerate(models):
                    access[mi, j] = model in accepted
        self.access = access
        # CPU enters F only through `cpu >= p.cpu`: nodes with the same count of p.cpu values <= cpu match
        self.cpu_sorted = np.unique(self.cpu)

    def frag(self, left: IntArray, cpu: IntArray, model: IntArray) -> FloatArray:
        """F for K node states (rows of `left` [K, G], `cpu` [K], `model` ids [K]); float64 [K]."""
        k = left.shape[0]
        if k == 0 or len(self.w) == 0:
            return np.zeros(k, dtype=np.float64)
        total = left.sum(axis=1)
        ge = left[:, :, None] >= self.u_milli[None, None, :]
        cnt = ge.sum(axis=1)[:, self.uidx]
        big = (left[:, :, None] * ge).sum(axis=1)[:, self.uidx]
        cpu_ok = cpu[:, None] >= self.cpu[None, :]
        acc = self.access[model]
        gpu_ok = cnt >= self.num[None, :]
        q3 = self.is_gpu & acc & gpu_ok & cpu_ok
        bucket = np.where(
            ~self.is_gpu,
            np.where(cpu_ok, _XL, _XR),
            np.where(~acc, _NA, np.where(gpu_ok, np.where(cpu_ok, _Q2, _Q4), np.where(cpu_ok, _Q2, _Q1))),
        )
        amount = np.where(q3, total[:, None] - big, total[:, None])
        val = self.w[None, :] * amount.astype(np.float64)
        # per-bucket sequential sums (cumsum is sequential), then buckets in the study's order
        stacked = np.where(bucket[:, None, :] == np.array(_BUCKETS)[None, :, None], val[:, None, :], 0.0)
        sums = np.cumsum(stacked, axis=2)[:, :, -1]
        out = np.zeros(k, dtype=np.float64)
        for b in range(len(_BUCKETS)):
            out = out + sums[:, b]
        return out

    def frag_dedup(self, left: IntArray, cpu: IntArray, model: IntArray) -> FloatArray:
        """`frag` computed once per distinct (model, CPU class, GPU-left multiset): many nodes look alike."""
        k = left.shape[0]
        if k < 64:
            return self.frag(left, cpu, model)
        srt = np.sort(left, axis=1)
        cls = np.searchsorted(self.cpu_sorted, cpu, side="right")
        h = _row_hash(np.concatenate([srt, cls[:, None], model[:, None]], axis=1))
        uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
        if len(uniq) > 0.8 * k:
            return self.frag(left, cpu, model)
        return self.frag(left[first], cpu[first], model[first])[inv.reshape(-1)]


#: distinct odd 64-bit multipliers, one per key column (fixed seed: hashes are stable across runs)
_HASH_MULT = np.random.default_rng(0x5EED).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)


def _row_hash(key: IntArray) -> npt.NDArray[np.uint64]:
    """64-bit hash of int rows (collisions ~2^-64 per pair: fine for deduplication)."""
    k = key.astype(np.uint64)
    mult = _HASH_MULT[: k.shape[1]]
    with np.errstate(over="ignore"):
        h = (k * mult[None, :]).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
    return h  # type: ignore[no-any-return]


# -- candidate placements ----------------------------------------------------------------------------
@dataclass
class Candidates:
    """Hypothetical placements of one pod on `rows`: for a shared-GPU pod one per (row, distinct GPU left),
    otherwise one per row. `delta[c]` = F_before - F_after (higher = less fragmentation created)."""

    rows: IntArray
    cand_row: IntArray  # index into rows
    cand_gpu: IntArray  # GPU index (-1 for non-shared pods)
    delta: FloatArray


def shared_candidates(state: ClusterState, rows: IntArray, req: PodRequest) -> tuple[IntArray, IntArray]:
    """(row position, GPU) pairs where a shared pod fits, keeping the lowest index of each distinct left."""
    left = state.gpu_left[rows]
    g = left.shape[1]
    fits = left >= req.gpu_milli
    eq = left[:, :, None] == left[:, None, :]
    earlier = np.tril(np.ones((g, g), dtype=np.bool_), k=-1)
    dup = (eq & earlier[None, :, :]).any(axis=2)
    r, c = np.nonzero(fits & ~dup)
    return r.astype(np.int64), c.astype(np.int64)


def after_states(
    state: ClusterState, rows: IntArray, req: PodRequest
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Node states after placing `req` on each candidate: (cand_row, cand_gpu, left, cpu, model)."""
    left = state.gpu_left[rows]
    cpu = state.cpu_left[rows] - req.cpu_milli
    model = state.model[rows]
    if req.is_shared:
        r, c = shared_candidates(state, rows, req)
        new = left[r].copy()
        new[np.arange(len(r)), c] -= req.gpu_milli
        return r, c, new, cpu[r], model[r]
    r = np.arange(len(rows), dtype=np.int64)
    new = left.copy()
    if req.wants_gpu:
        full = new == GPU_MILLI
        take = full & (np.cumsum(full, axis=1) <= req.gpu_count)
        new[take] = 0
    return r, np.full(len(rows), -1, dtype=np.int64), new, cpu, model


def frag_candidates(
    state: ClusterState, rows: IntArray, req: PodRequest, table: FragTable, f_before: FloatArray
) -> Candidates:
    """ΔF of every candidate placement; `f_before` is F of each of `rows` now (aligned with rows)."""
    r, c, left, cpu, model = after_states(state, rows, req)
    f_after = table.frag_dedup(left, cpu, model)
    return Candidates(rows=rows, cand_row=r, cand_gpu=c, delta=f_before[r] - f_after)


def best_per_row(cands: Candidates, values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Per row: the max of `values` over its candidates and the lowest GPU index reaching it."""
    n = len(cands.rows)
    if cands.cand_gpu.size and cands.cand_gpu[0] == -1:
        return values.astype(np.float64), np.full(n, -1, dtype=np.int64)
    g = int(cands.cand_gpu.max()) + 1 if cands.cand_gpu.size else 1
    mat = np.full((n, g), -np.inf)
    mat[cands.cand_row, cands.cand_gpu] = values
    return mat.max(axis=1), mat.argmax(axis=1).astype(np.int64)


def fgd_int_scores(delta: FloatArray) -> FloatArray:
    """The study's score: int64(sigmoid(ΔF / 1000) · 100), truncated (fgd_score.go)."""
    with np.errstate(over="ignore"):
        sig = 1.0 / (1.0 + np.exp(-(delta / 1000.0)))
    return np.trunc(sig * 100.0)


# -- per-node F cache ------------------------------------------------------------------------------
#: distinct whole-GPU pod shapes whose per-node ΔF the cache keeps (then it starts over)
MAX_CACHED_SHAPES = 256


@dataclass
class FragCache:
    """F of every node of a state under one table, refreshed per node when `state.version` moves; and, per
    whole-GPU pod shape (CPU, GPU count), the ΔF of placing it on each node, refreshed the same way.

    Why the second: a scheduling request scores hundreds of nodes, but between two pods only the node the
    last one went to changed. Each node's F and ΔF depend on that node's row alone, so a cached value is
    exactly what a fresh computation gives (the trace replay's published baselines stay bit-for-bit)."""

    table: FragTable
    values: FloatArray = field(default_factory=lambda: np.zeros(0))
    versions: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    deltas: dict[tuple[int, int], tuple[FloatArray, IntArray]] = field(default_factory=dict)

    def get(self, state: ClusterState, rows: IntArray) -> FloatArray:
        n = state.n
        if len(self.values) != n:
            self.values = np.zeros(n)
            self.versions = np.full(n, -1, dtype=np.int64)
        stale = rows[self.versions[rows] != state.version[rows]]
        if len(stale):
            self.values[stale] = self.table.frag_dedup(
                state.gpu_left[stale], state.cpu_left[stale], state.model[stale]
            )
            self.versions[stale] = state.version[stale]
        return self.values[rows]

    def candidates(self, state: ClusterState, rows: IntArray, req: PodRequest) -> Candidates:
        """ΔF of every placement of `req` on `rows`, F before taken from this cache."""
        if req.is_shared or not req.wants_gpu:  # one candidate per distinct GPU: not cached
            return frag_candidates(state, rows, req, self.table, self.get(state, rows))
        n = state.n
        key = (req.cpu_milli, req.gpu_count)
        hit = self.deltas.get(key)
        if hit is None or len(hit[0]) != n:
            if len(self.deltas) >= MAX_CACHED_SHAPES:
                self.deltas.clear()
            hit = (np.zeros(n), np.full(n, -1, dtype=np.int64))
            self.deltas[key] = hit
        delta, versions = hit
        stale = rows[versions[rows] != state.version[rows]]
        if len(stale):
            fresh = frag_candidates(state, stale, req, self.table, self.get(state, stale))
            delta[stale] = fresh.delta
            versions[stale] = state.version[stale]
        k = len(rows)
        return Candidates(rows, np.arange(k, dtype=np.int64), np.full(k, -1, dtype=np.int64), delta[rows])


# -- online learner and the extender's policy ---------------------------------------------------------
#: What the learner believes before it has seen a pod: one pod each of 1, 2, 4 and 8 whole GPUs. Under it
#: FGD's measure makes packing emerge — a GPU taken from an empty node costs that node its 8-GPU (and 4-GPU)
#: slots, one taken from a half-full node costs little — so a fresh extender packs from its first pod. Four
#: pseudo-pods: real pods (the cluster view's, then every pod asked about) outweigh it within dozens.
PACKING_PRIOR: dict[Spec, float] = {(0, GPU_MILLI, n, ""): 1.0 for n in (1, 2, 4, 8)}
#: how many pod keys `observe_pod` remembers to count each pod once (then it starts over)
MAX_REMEMBERED_PODS = 100_000


class TypicalPodLearner:
    """Learns the workload's typical pods from the pods it has seen (FGD is handed them; a cluster is not).

    Counts every observed request's spec; the typical set (the study's 95 % rule) is rebuilt when the number
    of pods seen has grown by `refresh_fraction` since the last build (and always during the first
    `warmup` pods), so the per-node F cache stays valid between rebuilds. `half_life` (pods) makes old pods
    count less, for clusters whose mix drifts; None keeps plain counts (a trace replay). `prior` holds
    pseudo-counts the real pods add to (PACKING_PRIOR by default; `{}` for none).
    """

    def __init__(
        self,
        threshold_pct: float = 95.0,
        refresh_fraction: float = 0.05,
        warmup: int = 200,
        half_life: float | None = None,
        prior: dict[Spec, float] | None = None,
    ) -> None:
        self.threshold_pct = threshold_pct
        self.refresh_fraction = refresh_fraction
        self.warmup = warmup
        self.half_life = half_life
        self.counts: dict[Spec, float] = dict(PACKING_PRIOR if prior is None else prior)
        self.seen = 0
        self._built_at = -1
        self._typical: TypicalPods | None = None
        self._table: FragTable | None = None
        self._table_models = -1
        self._cache: FragCache | None = None
        self._keys: set[str] = set()
        self._bound: tuple[tuple[int, ...], BoundDemand] | None = None
        self.generation = 0

    def observe_pod(self, key: str, req: PodRequest) -> bool:
        """Record a pod once, however often it is seen (the cluster view at start, its watch events, the
        scheduler's calls for it). Returns whether it was new."""
        if key in self._keys:
            return False
        if len(self._keys) >= MAX_REMEMBERED_PODS:
            self._keys.clear()
        self._keys.add(key)
        self.observe(req)
        return True

    def observe(self, req: PodRequest) -> None:
        """Record one pod (call once per pod, when it is first seen)."""
        if self.half_life:
            decay = 0.5 ** (1.0 / self.half_life)
            for key in self.counts:
                self.counts[key] *= decay
        key = spec_of(req)
        self.counts[key] = self.counts.get(key, 0.0) + 1.0
        self.seen += 1

    @property
    def typical(self) -> TypicalPods:
        due = (
            self._typical is None
            or self.seen <= self.warmup
            or self.seen >= max(self._built_at, 1) * (1.0 + self.refresh_fraction)
        )
        if due and self.counts and self.seen != self._built_at:
            typical = TypicalPods.from_counts(self.counts, self.threshold_pct)
            self._typical = typical
            self._built_at = self.seen
            self._table = None
            self.generation += 1
        return self._typical or TypicalPods((), ())

    def table(self, state: ClusterState) -> FragTable:
        typical = self.typical
        if self._table is None or self._table_models != len(state.models):
            self._table = FragTable(typical, state.models)
            self._table_models = len(state.models)
            self._cache = FragCache(self._table)
        return self._table

    def cache(self, state: ClusterState) -> FragCache:
        self.table(state)
        assert self._cache is not None
        return self._cache

    def node_pressure(self, state: ClusterState, rows: IntArray) -> FloatArray:
        """`node_pressure` of the pods seen so far (every spec, not only the typical 95 %: bound specs are
        many and each is rare), aligned with `rows`; 0 while every pod seen fits every kind of node."""
        key = (self.generation, state.n, int(state.alive[: state.n].sum()))
        if self._bound is None or self._bound[0] != key:
            self._bound = (key, BoundDemand.of(TypicalPods.from_counts(self.counts, 100.0), state))
        return self._bound[1].pressure(state, rows)


#: a spec counts as bound while the kinds of node it fits hold at most this share of the idle GPU milli
BOUND_SHARE = 0.5


@dataclass(frozen=True)
class BoundDemand:
    """The GPU demand that only some kinds of node can take, by kind of node.

    A kind = nodes alike in GPU model, GPU count and CPU (what a typical-pod spec is checked against; the
    measure ignores memory, as the study's does). A spec is *bound* (`pressure`: while those kinds hold at
    most BOUND_SHARE of the idle GPU milli) when it fits an empty node
    of some kinds but not of all (its model list, its GPU count or its CPU rule the others out: a T4-only pod,
    an 8-GPU pod, an 8-GPU pod with 120 cores). Its demand share must be served by those kinds.
    """

    kind: IntArray  # kind id per node row of the state (-1: no GPU)
    fits: npt.NDArray[np.bool_]  # [bound spec, kind]
    demand: FloatArray  # share of the GPU demand per bound spec

    @classmethod
    def of(cls, typical: TypicalPods, state: ClusterState) -> BoundDemand:
        n = state.n
        gpu_rows = np.flatnonzero(state.alive[:n] & (state.gpu_count[:n] > 0))
        kind = np.full(n, -1, dtype=np.int64)
        shape = np.stack([state.model[gpu_rows], state.gpu_count[gpu_rows], state.cpu_cap[gpu_rows]], axis=1)
        uniq, inv = np.unique(shape, axis=0, return_inverse=True)
        kind[gpu_rows] = inv.reshape(-1)
        index = {m: i for i, m in enumerate(state.models)}
        total = sum(w * s[1] * s[2] for s, w in zip(typical.specs, typical.weights, strict=True) if s[1] > 0)
        fits: list[npt.NDArray[np.bool_]] = []
        demand: list[float] = []
        for (cpu, milli, num, models), w in zip(typical.specs, typical.weights, strict=True):
            if milli <= 0 or total <= 0:
                continue
            ok = (uniq[:, 1] >= num) & (uniq[:, 2] >= cpu)
            if models:
                ok &= np.isin(uniq[:, 0], [index[m] for m in models.split("|") if m in index])
            if ok.any() and not ok.all():
                fits.append(ok)
                demand.append(w * milli * num / total)
        k = len(uniq)
        mat = np.array(fits, dtype=np.bool_).reshape(len(fits), k)
        return cls(kind=kind, fits=mat, demand=np.array(demand, dtype=np.float64))

    def pressure(self, state: ClusterState, rows: IntArray) -> FloatArray:
        """Per row: r / (1 + r), r = sum over the bound specs its kind can take of (their demand share) /
        (the share of the cluster's idle GPU milli on the kinds they fit, now); 1 where they fit nowhere
        idle. 0 = nothing needs this kind in particular; 1/2 = bound pods ask exactly the idle share they
        have; towards 1 as they ask more."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float64)
        if not len(self.demand) or not len(rows):
            return out
        n = len(self.kind)
        gpu = np.flatnonzero(self.kind >= 0)
        idle = np.bincount(
            self.kind[gpu], weights=state.gpu_left[gpu].sum(axis=1), minlength=self.fits.shape[1]
        ).astype(np.float64)
        if idle.sum() <= 0:
            return out
        share = self.fits.astype(np.float64) @ (idle / idle.sum())  # idle share each bound spec can use
        # what a bound spec asks of the kinds it fits beyond what it would ask of a node that anything fits:
        # demand x (1 / share - 1), 0 for a spec that fits all idle capacity
        with np.errstate(divide="ignore"):
            per_spec = np.where(share > 0, self.demand * (1.0 / np.maximum(share, 1e-300) - 1.0), np.inf)
        # a spec that fits most of what is idle is not short of room: bound only while its kinds hold at most
        # half of the idle GPU milli
        per_spec = np.where(share <= BOUND_SHARE, per_spec, 0.0)
        r = np.where(self.fits, per_spec[:, None], 0.0).sum(axis=0)  # per kind
        p_kind = np.where(np.isfinite(r), r / (1.0 + np.where(np.isfinite(r), r, 0.0)), 1.0)
        kinds = self.kind[rows[rows < n]]
        out[rows < n] = np.where(kinds >= 0, p_kind[np.maximum(kinds, 0)], 0.0)
        return out


def node_pressure(typical: TypicalPods, state: ClusterState, rows: IntArray) -> FloatArray:
    """How much the pods that only some kinds of node can take (`BoundDemand`) lean on the kind of each of
    `rows`, 0..1: with r = their GPU demand share / the idle GPU share they can use, r / (1 + r)."""
    return BoundDemand.of(typical, state).pressure(state, rows)


def resource_scores(
    state: ClusterState, rows: IntArray, req: PodRequest, frag: TypicalPodLearner | None
) -> FloatArray:
    """The extender's `fragmentation` resource part: 0..100 floats aligned with `rows`, higher = better.

    GPU pods: FGD's integer score int(100·sigmoid(ΔF/1000)). The truncation is kept on purpose: it makes
    ties, which the balance part (GPU-first, extender/scores/balance.py) and then a fixed node order break;
    raw floats lose ~1 point in the trace replay (docs/simulation.md). CPU-only pods: the node with the least
    idle GPU, so CPU is spent where GPUs are gone and GPU-rich nodes keep the CPU their GPUs need.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros(0)
    if not req.wants_gpu:
        idle = state.gpu_left[rows].sum(axis=1).astype(np.float64)
        per_gpu = idle / np.maximum(state.max_gpus, 1)  # 0..1000
        return np.clip(100.0 - per_gpu / 10.0, 0.0, 100.0)  # type: ignore[no-any-return]
    if frag is None:
        frag = TypicalPodLearner()
        frag.observe(req)
    cands = frag.cache(state).candidates(state, rows, req)
    best, _ = best_per_row(cands, cands.delta)
    return fgd_int_scores(best)


def choose_gpu(state: ClusterState, row: int, req: PodRequest, frag: TypicalPodLearner | None) -> list[int]:
    """GPUs for `req` on node `row`: whole GPUs → the first free ones by index; a share → the GPU with the
    best integer fragmentation score, ties → the fullest GPU that fits, then the lowest index."""
    if not req.wants_gpu:
        return []
    if not req.is_shared:
        return state.first_free_gpus(row, req.gpu_count)
    if frag is None:
        return [state.best_fit_gpu(row, req.gpu_milli)]
    cands = frag.cache(state).candidates(state, np.array([row], dtype=np.int64), req)
    if not len(cands.cand_gpu):
        raise ValueError(f"node {state.names[row]} has no GPU with {req.gpu_milli} milli left")
    left = state.gpu_left[row, cands.cand_gpu]
    order = np.lexsort((cands.cand_gpu, left, -fgd_int_scores(cands.delta)))
    return [int(cands.cand_gpu[order[0]])]
