"""Node state as numpy arrays (ClusterState) for the scheduling core, changed only by `place` / `release`.

One state serves every caller — the extender's HTTP routes, the trace-replay simulator and the node
autoscaler — so the filters and scores they run are the same code over the same numbers.

Units: CPU in milli-cores, memory in MiB, GPU in milli-GPU (1000 = one whole GPU). A pod asks for
`gpu_count` GPUs of `gpu_milli` each: whole GPUs have gpu_milli = 1000, a shared GPU 1..999.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

GPU_MILLI = 1000

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What one pod asks of a node. Plain data: built from a Pod object or a trace row."""

    cpu_milli: int = 0
    memory_mib: int = 0
    gpu_count: int = 0
    gpu_milli: int = 0
    #: accepted GPU models; empty = any. Matching rule is the caller's (`ClusterState.model_mask`).
    gpu_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.cpu_milli, self.memory_mib, self.gpu_count, self.gpu_milli) < 0:
            raise ValueError(f"negative request: {self}")
        if self.gpu_count and not 0 < self.gpu_milli <= GPU_MILLI:
            raise ValueError(f"gpu_milli must be 1..{GPU_MILLI} when gpu_count > 0: {self}")
        if self.gpu_count > 1 and self.gpu_milli != GPU_MILLI:
            raise ValueError(f"multi-GPU requests must ask whole GPUs: {self}")

    @property
    def total_gpu_milli(self) -> int:
        return self.gpu_count * self.gpu_milli

    @property
    def is_shared(self) -> bool:
        """A fraction of one GPU (GPU sharing: time-slicing, MPS, the trace's gpu_milli < 1000)."""
        return self.gpu_count == 1 and self.gpu_milli < GPU_MILLI

    @property
    def wants_gpu(self) -> bool:
        return self.gpu_count > 0


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """Allocatable resources of one node."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpu_count: int
    model: str = ""


class ClusterState:
    """Per-node arrays. Row i is node `names[i]`; GPU columns beyond a node's count stay at 0 left.

    `full_free[i]` (whole free GPUs) is kept incrementally because every filter asks for it.
    `version[i]` bumps on each change to node i so per-node caches (topology sets…) know when to refresh.
    """

    def __init__(self, max_gpus: int = 8) -> None:
        self.max_gpus = max_gpus
        self.names: list[str] = []
        self.models: list[str] = []
        self.index: dict[str, int] = {}
        self._model_ids: dict[str, int] = {}
        self.n = 0
        cap = 16
        g = self.max_gpus
        self.gpu_count = np.zeros(cap, dtype=np.int64)
        self.gpu_left = np.zeros((cap, g), dtype=np.int64)
        self.full_free = np.zeros(cap, dtype=np.int64)
        self.cpu_cap = np.zeros(cap, dtype=np.int64)
        self.cpu_left = np.zeros(cap, dtype=np.int64)
        self.mem_cap = np.zeros(cap, dtype=np.int64)
        self.mem_left = np.zeros(cap, dtype=np.int64)
        self.model = np.zeros(cap, dtype=np.int64)
        self.alive = np.zeros(cap, dtype=np.bool_)
        self.version = np.zeros(cap, dtype=np.int64)
        self._mask_cache: dict[tuple[tuple[str, ...], str], BoolArray] = {}

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_nodes(cls, nodes: Sequence[NodeCapacity]) -> ClusterState:
        state = cls(max_gpus=max([8, *(n.gpu_count for n in nodes)]))
        for node in nodes:
            state.add_node(node)
        return state

    def _grow(self, rows: int, cols: int) -> None:
        if rows > len(self.gpu_count):
            new = max(rows, 2 * len(self.gpu_count))
            for name in (
                "gpu_count",
                "full_free",
                "cpu_cap",
                "cpu_left",
                "mem_cap",
                "mem_left",
                "model",
                "alive",
                "version",
            ):
                old = getattr(self, name)
                arr = np.zeros(new, dtype=old.dtype)
                arr[: len(old)] = old
                setattr(self, name, arr)
            left = np.zeros((new, self.gpu_left.shape[1]), dtype=np.int64)
            left[: self.gpu_left.shape[0]] = self.gpu_left
            self.gpu_left = left
        if cols > self.gpu_left.shape[1]:
            left = np.zeros((self.gpu_left.shape[0], cols), dtype=np.int64)
            left[:, : self.gpu_left.shape[1]] = self.gpu_left
            self.gpu_left = left
            self.max_gpus = cols

    def _model_id(self, model: str) -> int:
        if model not in self._model_ids:
            self._model_ids[model] = len(self.models)
            self.models.append(model)
            self._mask_cache.clear()
        return self._model_ids[model]

    def add_node(self, node: NodeCapacity) -> int:
        """Add (or reset) a node with nothing placed on it; returns its row."""
        if node.gpu_count < 0 or node.cpu_milli < 0 or node.memory_mib < 0:
            raise ValueError(f"negative capacity: {node}")
        i = self.index.get(node.name)
        if i is None:
            i = self.n
            self._grow(i + 1, node.gpu_count)
            self.n += 1
            self.index[node.name] = i
            self.names.append(node.name)
        else:
            self._grow(self.n, node.gpu_count)
        self.gpu_count[i] = node.gpu_count
        self.gpu_left[i, :] = 0
        self.gpu_left[i, : node.gpu_count] = GPU_MILLI
        self.full_free[i] = node.gpu_count
        self.cpu_cap[i] = self.cpu_left[i] = node.cpu_milli
        self.mem_cap[i] = self.mem_left[i] = node.memory_mib
        self.model[i] = self._model_id(node.model)
        self.alive[i] = True
        self.version[i] += 1
        self._mask_cache.clear()
        return i

    def remove_node(self, name: str) -> None:
        """Mark a node gone (its row stays, never feasible) — rows are never renumbered."""
        i = self.index.get(name)
        if i is not None:
            self.alive[i] = False
            self.version[i] += 1

    # -- views ------------------------------------------------------------------------------------
    @property
    def rows(self) -> slice:
        return slice(0, self.n)

    def model_mask(self, accepted: tuple[str, ...], match: str = "exact") -> BoolArray:
        """Nodes whose GPU model is accepted: `exact` (trace: model in list) or `substring` (case-insensitive
        substring of the product, the `gpu-autoscaler.io/gpu-product` annotation). Cached per list."""
        key = (accepted, match)
        cached = self._mask_cache.get(key)
        if cached is not None and len(cached) == self.n:
            return cached
        if not accepted:
            ok = np.ones(len(self.models), dtype=np.bool_)
        elif match == "exact":
            ok = np.array([m in accepted for m in self.models], dtype=np.bool_)
        else:
            wanted = [a.lower() for a in accepted]
            ok = np.array([any(w in m.lower() for w in wanted) for m in self.models], dtype=np.bool_)
        mask = ok[self.model[: self.n]] if len(ok) else np.zeros(self.n, dtype=np.bool_)
        self._mask_cache[key] = mask
        return mask

    def gpu_fit(self, req: PodRequest, rows: IntArray | None = None) -> BoolArray:
        """Nodes with enough GPU left in the right shape (count whole GPUs, or one GPU with the share)."""
        sel = slice(0, self.n) if rows is None else rows
        if not req.wants_gpu:
            return np.ones(self.n if rows is None else len(rows), dtype=np.bool_)
        if req.gpu_milli >= GPU_MILLI:
            return self.full_free[sel] >= req.gpu_count  # type: ignore[no-any-return]
        return (self.gpu_left[sel] >= req.gpu_milli).any(axis=1)  # type: ignore[no-any-return,return-value]

    def feasible(
        self, req: PodRequest, rows: IntArray | None = None, model_match: str = "exact"
    ) -> BoolArray:
        """The simulator's filters (NodeResourcesFit + GPU share + model), vectorised over `rows` (all nodes
        when None). Returns a boolean array aligned with `rows`."""
        sel = slice(0, self.n) if rows is None else rows
        ok = self.alive[sel] & (self.cpu_left[sel] >= req.cpu_milli) & (self.mem_left[sel] >= req.memory_mib)
        if req.wants_gpu:
            ok &= self.gpu_count[sel] > 0
            ok &= self.gpu_fit(req, rows)
            if req.gpu_models:
                ok &= self.model_mask(req.gpu_models, model_match)[sel]
        return ok  # type: ignore[no-any-return]

    # -- GPU choice inside a node (shared by policies) ------------------------------------------
    def first_free_gpus(self, i: int, k: int) -> list[int]:
        """The first k fully free GPUs by index (how the study and the device plugin pick whole GPUs)."""
        free = np.flatnonzero(self.gpu_left[i, : self.gpu_count[i]] == GPU_MILLI)
        if len(free) < k:
            raise ValueError(f"node {self.names[i]} has {len(free)} free GPUs, {k} asked")
        return [int(g) for g in free[:k]]

    def best_fit_gpu(self, i: int, milli: int) -> int:
        """The GPU with the least left that still fits `milli`; ties → lowest index."""
        left = self.gpu_left[i, : self.gpu_count[i]]
        cand = np.where(left >= milli, left, np.iinfo(np.int64).max)
        g = int(np.argmin(cand))
        if left[g] < milli:
            raise ValueError(f"node {self.names[i]} has no GPU with {milli} milli left")
        return g

    # -- mutations -------------------------------------------------------------------------------
    def place(self, i: int, req: PodRequest, gpus: Sequence[int]) -> None:
        """Account a pod on node row i, its GPU share taken from `gpus` (len == gpu_count)."""
        if len(gpus) != req.gpu_count:
            raise ValueError(f"{len(gpus)} GPU indices for a {req.gpu_count}-GPU pod")
        for g in gpus:
            if self.gpu_left[i, g] < req.gpu_milli or g >= self.gpu_count[i]:
                raise ValueError(f"GPU {g} of {self.names[i]} cannot take {req.gpu_milli} milli")
        for g in gpus:
            before = self.gpu_left[i, g]
            self.gpu_left[i, g] = before - req.gpu_milli
            if before == GPU_MILLI:
                self.full_free[i] -= 1
        self.cpu_left[i] -= req.cpu_milli
        self.mem_left[i] -= req.memory_mib
        self.version[i] += 1

    def release(self, i: int, req: PodRequest, gpus: Sequence[int]) -> None:
        """Undo `place` (a pod ended, or an assumed placement expired)."""
        for g in gpus:
            after = min(GPU_MILLI, int(self.gpu_left[i, g]) + req.gpu_milli)
            self.gpu_left[i, g] = after
            if after == GPU_MILLI:
                self.full_free[i] += 1
        self.cpu_left[i] = min(self.cpu_cap[i], self.cpu_left[i] + req.cpu_milli)
        self.mem_left[i] = min(self.mem_cap[i], self.mem_left[i] + req.memory_mib)
        self.version[i] += 1

    # -- totals -------------------------------------------------------------------------------
    def total_gpu_milli(self) -> int:
        return int(self.gpu_count[: self.n][self.alive[: self.n]].sum()) * GPU_MILLI

    def used_gpu_milli(self) -> int:
        alive = self.alive[: self.n]
        cap = int(self.gpu_count[: self.n][alive].sum()) * GPU_MILLI
        return cap - int(self.gpu_left[: self.n][alive].sum())
