"""Would this pod land there? The extender's own node state, filters, scores and GPU choice, on the cluster's
nodes plus virtual nodes built from node-group templates.

Nothing here re-states a scheduling rule: resources, GPU product, per-GPU memory, MIG slices, NVLink sets and
GPU sharing are `extender.core.filter_nodes` (with CPU and memory on, as kube-scheduler's NodeResourcesFit
would add); the node a pod would get is the best `extender.core.score_parts` total, as the extender's
prioritize answers it; its GPUs are `extender.core.choose_gpus`. Taints and node affinity, which
kube-scheduler checks before it asks the extender, come from `predicates.py`.

Placements are transactions: `mark()` then `rollback(mark)` undoes every placement and virtual node since.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.nodescale.predicates import pod_fits_node, takes_new_pods
from extender.arrays import GPU_MILLI, PodRequest
from extender.core import ScoringConfig, best_index, choose_gpus, filter_nodes, score_parts
from extender.fragmentation import TypicalPodLearner
from extender.inventory import InventoryError, PodAsk
from extender.view_adapter import NodeStateAdapter

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Placed:
    row: int
    req: PodRequest
    gpus: tuple[int, ...]
    mig: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Fit:
    """Where a pod would go (node None: nowhere) and, when nowhere, the reason per node."""

    node: str | None
    reasons: dict[str, str]

    def why(self) -> str:
        """The commonest reason (what `kubectl describe pod` would lead with)."""
        if not self.reasons:
            return "no node to try"
        counts: dict[str, int] = {}
        for r in self.reasons.values():
            counts[r] = counts.get(r, 0) + 1
        best = max(counts, key=lambda r: (counts[r], r))
        return f"{best} ({counts[best]} of {len(self.reasons)} nodes)" if len(self.reasons) > 1 else best


class Sim:
    """One plan's view of the cluster: built from Node and Pod objects through the extender's adapter."""

    def __init__(self, config: ScoringConfig | None = None, frag: TypicalPodLearner | None = None) -> None:
        self.adapter = NodeStateAdapter(config or ScoringConfig())
        self.config = self.adapter.config
        self.frag = frag
        self.nodes: dict[str, Obj] = {}
        #: nodes new pods may go to (Ready, not cordoned, not being removed)
        self.open: set[str] = set()
        self.virtual: list[str] = []
        self._log: list[Placed] = []
        self._serial = 0

    # -- building ------------------------------------------------------------------------------------
    def load(self, nodes: Iterable[Obj], pods: Iterable[Obj]) -> None:
        """Every node, and the pods bound to them (the adapter accounts what they hold)."""
        ad = self.adapter
        for pod in pods:  # pods first: each node then places its pods in one rebuild
            if (pod.get("spec") or {}).get("nodeName"):
                ad.upsert_pod(dict(pod))
        for node in nodes:
            try:
                ad.upsert_node(dict(node))
            except InventoryError:
                continue  # an unreadable node can take nothing: leave it out
            name = str(node["metadata"]["name"])
            self.nodes[name] = node
            if takes_new_pods(node) is None:
                self.open.add(name)

    def close(self, name: str) -> None:
        """The node takes no new pods in this plan (it is being drained)."""
        self.open.discard(name)

    def add_virtual(self, template: Obj, prefix: str) -> str:
        """A new node built from a group's template; gone again on rollback past this point."""
        self._serial += 1
        name = f"{prefix}+{self._serial}"
        node = copy.deepcopy(dict(template))
        node.setdefault("metadata", {})["name"] = name
        node["metadata"].pop("resourceVersion", None)
        self.adapter.upsert_node(node)
        self.nodes[name] = node
        self.open.add(name)
        self.virtual.append(name)
        self._log.append(Placed(-1, PodRequest(), (), ()))  # marker: a virtual node was added
        return name

    # -- questions -------------------------------------------------------------------------------------
    def row(self, name: str) -> int:
        return self.adapter.state.index[name]

    def fit(self, pod: Obj, ask: PodAsk, names: Iterable[str]) -> Fit:
        """The node among `names` (open ones only) the extender would pick for the pod, or why none."""
        reasons: dict[str, str] = {}
        rows: list[int] = []
        for name in names:
            node = self.nodes.get(name)
            if node is None:
                continue
            if name not in self.open:
                reasons[name] = takes_new_pods(node) or "node is being removed"
                continue
            why = pod_fits_node(pod, node)
            row = self.adapter.state.index.get(name)
            if why:
                reasons[name] = why
            elif row is None:  # the extender could not read it (app/bad_objects.py): never a target
                reasons[name] = "cannot read node"
            else:
                rows.append(row)
        if not rows:
            return Fit(None, reasons)
        st = self.adapter.state
        outcome = filter_nodes(
            st, np.asarray(rows, dtype=np.int64), ask, self.adapter.topo, check_cpu_memory=True
        )
        for r, msg in {**outcome.failed, **outcome.unresolvable}.items():
            reasons[st.names[r]] = msg
        passed = outcome.passed
        if not len(passed):
            return Fit(None, reasons)
        parts = score_parts(st, passed, ask, self.config, self.adapter.topo, self.frag)
        # the node the extender would pick
        best = int(passed[best_index(st, passed, parts.total, self.adapter.topo)])
        return Fit(st.names[best], {})

    # -- placing ---------------------------------------------------------------------------------------
    def place(self, ask: PodAsk, name: str) -> None:
        st, row = self.adapter.state, self.row(name)
        gpus = tuple(choose_gpus(st, row, ask, self.config, self.adapter.topo, self.frag))
        st.place(row, ask.req, gpus)
        self.adapter.state.place_mig(row, ask.mig)
        self._log.append(Placed(row, ask.req, gpus, ask.mig))

    def mark(self) -> int:
        return len(self._log)

    def rollback(self, mark: int) -> None:
        st = self.adapter.state
        while len(self._log) > mark:
            p = self._log.pop()
            if p.row < 0:
                name = self.virtual.pop()
                self.adapter.remove_node(name)
                self.nodes.pop(name, None)
                self.open.discard(name)
                continue
            st.release(p.row, p.req, list(p.gpus))
            st.release_mig(p.row, p.mig)

    # -- node facts --------------------------------------------------------------------------------------
    def gpu_use(self, name: str) -> tuple[float, float]:
        """(GPUs allocated, GPUs in total) of a node, MIG slices counted as their share of a GPU's compute."""
        ad = self.adapter
        info = ad.infos.get(name)
        row = ad.state.index.get(name)
        if info is None or row is None:
            return 0.0, 0.0
        st = ad.state
        n = int(st.gpu_count[row])
        whole_used = float((GPU_MILLI - st.gpu_left[row, :n]).sum()) / GPU_MILLI
        mig_used, mig_gpus = 0.0, 0.0
        if info.mig:
            cap = used = 0
            for pid, profile in enumerate(st.mig_profiles):
                g = _compute_slices(profile)
                cap += int(st.mig_cap[row, pid]) * g
                used += max(0, int(st.mig_cap[row, pid] - max(st.mig_left[row, pid], 0))) * g
            mig_gpus = float(_mig_gpus(self.nodes.get(name) or {}, n, cap))
            mig_used = mig_gpus * used / cap if cap else 0.0
        return whole_used + mig_used, n + mig_gpus


def _compute_slices(profile: str) -> int:
    """'3g.40gb' -> 3 compute slices; another shape counts as 1."""
    head = profile.split("g.", 1)[0]
    return int(head) if head.isdigit() else 1


def _mig_gpus(node: Obj, whole: int, compute_cap: int) -> int:
    """Physical GPUs in MIG mode: GFD's gpu.count minus the whole GPUs, else 7 compute slices per GPU."""
    count = str(((node.get("metadata") or {}).get("labels") or {}).get("nvidia.com/gpu.count", ""))
    if count.isdigit() and int(count) > whole:
        return int(count) - whole
    return max(1, -(-compute_cap // 7))
