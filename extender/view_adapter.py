"""Adapter: ClusterView objects/events -> GpuClusterState place/release + TopologyIndex + assume cache.

Free GPUs on a node = allocatable - GPUs of pods bound there - GPUs we assumed for pods not yet bound - GPUs
the node agent marks `allocated` that no known pod explains (only read when the Node object changes).
Which GPU a bound pod holds is not in the Pod object unless something pinned it: the pod's
`gpu-autoscaler.io/gpu-index` annotation first (written by whatever pinned a GPU share), else the GPUs we
chose for it (assume cache), else the agent's `allocated` GPUs, else the core's own choice (best fit for a
GPU share: the partly used GPU with the least left that still holds it).

Thread-safe (one RLock): live-cluster watch threads call `on_event`, request handlers call the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from app.bad_objects import BAD, object_name
from app.cluster.base import ClusterEvent, ClusterView
from app.metrics import REGISTRY
from extender.arrays import GPU_MILLI, IntArray, PodRequest
from extender.assume import AssumeCache, Assumed
from extender.core import ScoringConfig, choose_gpus
from extender.fragmentation import TypicalPodLearner
from extender.gang import GroupStatus
from extender.inventory import InventoryError, NodeInfo, PodAsk, parse_node, parse_pod
from extender.kube_arrays import GpuClusterState
from extender.topology import TopologyIndex

log = logging.getLogger(__name__)

ASSUMPTIONS = Counter(
    "gpu_autoscaler_extender_assumptions_total",
    "How assumed placements ended: confirmed (bound where assumed), moved (bound elsewhere), contradicted "
    "(kube-scheduler's accounting showed them wrong), expired (TTL), forgotten (retried or deleted)",
    ["outcome"],
    registry=REGISTRY,
)

TERMINAL_PHASES = ("Succeeded", "Failed")
_PHANTOM = PodRequest(gpu_count=1, gpu_milli=GPU_MILLI)


@dataclass
class Bound:
    key: str
    node: str
    ask: PodAsk
    req: PodRequest  # what is placed (fewer GPUs than asked only if the node was over-committed)
    gpus: list[int]
    placed: bool = False


def node_name(obj: Any) -> str:
    """A Node object's name, "" when the object is too broken to have one (never raises)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def pod_key(obj: dict[str, Any]) -> str:
    meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
    if not isinstance(meta, dict):
        meta = {}
    return str(meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name')}")


class NodeStateAdapter:
    """The extender's live node state (nodeCacheCapable mode, and full-Nodes mode via `ensure_nodes`)."""

    def __init__(
        self,
        config: ScoringConfig | None = None,
        assume_ttl_seconds: float = 30.0,
        clock: Callable[[], float] | None = None,
        yield_to_scheduler: bool = True,
    ) -> None:
        import threading
        import time

        self.config = config or ScoringConfig()
        self.state = GpuClusterState()
        self.topo = TopologyIndex()
        self.infos: dict[str, NodeInfo] = {}
        self._parsed: dict[tuple[str, str], NodeInfo] = {}
        self.bound: dict[str, Bound] = {}
        self.node_pods: dict[str, set[str]] = {}
        self.phantoms: dict[str, list[int]] = {}
        #: (namespace, group) -> {pod key: bound?}
        self.groups: dict[tuple[str, str], dict[str, bool]] = {}
        self.assume = AssumeCache(assume_ttl_seconds, clock or time.monotonic)
        self.yields = yield_to_scheduler
        self.lock = threading.RLock()
        self.view: ClusterView | None = None
        #: the fragmentation policy's learner: every GPU pod of the cluster (bound or pending) teaches it the
        #: workload's typical pods, so the first scheduling decision already knows the mix
        self.learner: TypicalPodLearner | None = None
        #: nodes whose object cannot be read -> why (they are unknown: filtered out with this reason)
        self.bad_nodes: dict[str, str] = {}

    # -- wiring ---------------------------------------------------------------------------------------
    def attach(self, view: ClusterView) -> None:
        """Load every Node and Pod of the view and follow its changes."""
        with self.lock:
            self.view = view
            for pod in view.list("Pod"):  # pods first: each node then places its pods in one rebuild
                self._safely("Pod", pod, self.upsert_pod)
            for node in view.list("Node"):
                self._safely("Node", node, self.upsert_node)
        view.add_listener(self.on_event)

    def _safely(self, kind: str, obj: dict[str, Any], apply: Callable[[dict[str, Any]], object]) -> None:
        """One object must never stop the start: what no parser rule caught is reported like a bad object."""
        try:
            apply(obj)
        except Exception as exc:
            log.exception("extender: cannot apply object", extra={"kind": kind, "object": object_name(obj)})
            BAD.report_exception(kind, obj, exc, source="extender")

    def detach(self) -> None:
        if self.view is not None:
            self.view.remove_listener(self.on_event)
            self.view = None

    def on_event(self, event: ClusterEvent) -> None:
        try:
            with self.lock:
                if event.kind == "Node":
                    if event.type == "DELETED":
                        name = str((event.obj.get("metadata") or {}).get("name"))
                        self.remove_node(name)
                        self._mark_good(name)
                    else:
                        self.upsert_node(event.obj)
                elif event.kind == "Pod":
                    if event.type == "DELETED":
                        self.remove_pod(event.obj)
                        BAD.clear("Pod", object_name(event.obj))
                    else:
                        self.upsert_pod(event.obj)
        except Exception:  # a bad object must not break the watch
            log.exception(
                "extender: cannot apply cluster event", extra={"kind": event.kind, "type": event.type}
            )

    # -- nodes ----------------------------------------------------------------------------------------
    def parse_cached(self, obj: dict[str, Any]) -> NodeInfo:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("name")), str(meta.get("resourceVersion") or ""))
        info = self._parsed.get(key) if key[1] else None
        if info is None:
            info = parse_node(obj)
            if key[1]:
                if len(self._parsed) > 50_000:
                    self._parsed.clear()
                self._parsed[key] = info
        return info

    def upsert_node(self, obj: dict[str, Any]) -> int | None:
        """Apply a Node object; a malformed one is reported and removed from the state (None)."""
        info = self._read_node(obj)
        return None if info is None else self._apply_node(obj, info)

    def _read_node(self, obj: Any) -> NodeInfo | None:
        try:
            return self.parse_cached(obj)
        except Exception as exc:  # InventoryError names the field; anything else is a shape we never expected
            self._mark_bad(obj, exc)
            return None

    def _apply_node(self, obj: Any, info: NodeInfo) -> int | None:
        try:
            row = self.upsert_node_info(info)
        except Exception as exc:  # the state refused it (a value no parser rule caught)
            self._mark_bad(obj, exc)
            return None
        self._mark_good(info.name)
        return row

    def _mark_bad(self, obj: Any, exc: Exception) -> None:
        """Report once per resourceVersion, forget the node's capacity, remember why for the filter."""
        detail = BAD.report_exception("Node", obj, exc, source="extender")
        reason = exc.reason if isinstance(exc, InventoryError) else "unreadable"
        meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
        name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
        if name:
            with self.lock:
                self._parsed.pop((name, str(meta.get("resourceVersion") or "")), None)
                if name in self.infos or name in self.state.index:
                    self.remove_node(name)
                self.bad_nodes[name] = f"cannot read node ({reason}): {detail}"

    def _mark_good(self, name: str) -> None:
        if self.bad_nodes.pop(name, None) is not None:
            BAD.clear("Node", name)

    def unknown_reason(self, name: str) -> str:
        """Why a node the scheduler names is not schedulable here: unreadable, or not in the view."""
        return self.bad_nodes.get(name) or "node is not in the extender's cluster view"

    def upsert_node_info(self, info: NodeInfo) -> int:
        with self.lock:
            old = self.infos.get(info.name)
            row = self.state.index.get(info.name)
            if old is not None and row is not None and old == info and self.state.alive[row]:
                return row
            self.infos[info.name] = info
            return self._rebuild(info.name)

    def remove_node(self, name: str) -> None:
        with self.lock:
            self.infos.pop(name, None)
            self.state.remove_node(name)
            row = self.state.index.get(name)
            if row is not None:
                self.topo.set_node(row, None)
            for b in (self.bound.get(k) for k in self.node_pods.get(name, ())):
                if b is not None:
                    b.placed = False

    def ensure_nodes(self, items: Iterable[dict[str, Any]]) -> tuple[list[int], list[str], dict[str, str]]:
        """Full-Nodes mode: make the state match the request's Node objects (cached by resourceVersion).
        Returns rows, names (same order) and names that could not be read -> reason."""
        rows: list[int] = []
        names: list[str] = []
        bad: dict[str, str] = {}
        with self.lock:
            for obj in items:
                name = node_name(obj)
                info = self._read_node(obj)
                row = self.state.index.get(info.name) if info is not None else None
                if info is not None and (
                    row is None or self.infos.get(info.name) is not info or not self.state.alive[row]
                ):
                    row = self._apply_node(obj, info)  # parsed objects are cached: `is` means unchanged
                if info is None or row is None:
                    bad[name] = self.unknown_reason(name)
                    continue
                rows.append(row)
                names.append(info.name)
        return rows, names, bad

    def _rebuild(self, name: str) -> int:
        """Reset a node's row from its NodeInfo and re-place its pods, assumptions and agent-held GPUs."""
        info = self.infos[name]
        st = self.state
        row = st.add_gpu_node(info.capacity, info.gpu_memory_mib, info.mig, sharing=info.sharing != "none")
        self.topo.set_node(row, info.links)
        agent_cols = [c for c, p in enumerate(info.gpu_phys) if p in info.allocated]
        pods = [b for b in (self.bound.get(k) for k in self.node_pods.get(name, ())) if b is not None]
        # pods that know their GPUs (pinned by annotation, or remembered) first: the rest fit around them
        for b in sorted(pods, key=lambda b: (not (b.ask.pinned or b.gpus), b.key)):
            self._place(row, b, prefer=agent_cols)
        for entry in self.assume.on_node(name):
            self._place_assumed(row, entry)
        phantom = [c for c in agent_cols if st.gpu_left[row, c] == GPU_MILLI]
        for c in phantom:
            st.place(row, _PHANTOM, [c])
        self.phantoms[name] = phantom
        return row

    # -- placing ----------------------------------------------------------------------------------------
    def _fit_gpus(
        self, row: int, ask: PodAsk, remembered: list[int], prefer: list[int]
    ) -> tuple[PodRequest, list[int]]:
        """GPUs for a pod the API says is on this node (fewer than asked only if over-committed)."""
        st, req = self.state, ask.req
        if not req.wants_gpu:
            return req, []
        left = st.gpu_left[row]
        n = int(st.gpu_count[row])
        if len(remembered) == req.gpu_count and all(g < n and left[g] >= req.gpu_milli for g in remembered):
            return req, list(remembered)
        if req.gpu_milli >= GPU_MILLI:
            pref = [c for c in prefer if c < n and left[c] == GPU_MILLI][: req.gpu_count]
            if pref:  # the agent's `allocated` GPUs first, then the first free ones
                rest = [c for c in range(n) if left[c] == GPU_MILLI and c not in pref]
                pick = (pref + rest)[: req.gpu_count]
                if len(pick) == req.gpu_count:
                    return req, pick
        try:
            return req, choose_gpus(st, row, ask, self.config, self.topo)
        except ValueError:
            free = [g for g in range(n) if left[g] >= req.gpu_milli][: req.gpu_count]
            log.warning(
                "extender: node over-committed, pod placed on fewer GPUs than asked",
                extra={"node": st.names[row], "pod": ask.key, "asked": req.gpu_count, "got": len(free)},
            )
            part = PodRequest(req.cpu_milli, req.memory_mib, len(free), req.gpu_milli if free else 0)
            return part, free

    def _take_phantoms(self, row: int, b: Bound) -> list[int]:
        """A newly bound pod explains GPUs the agent marked allocated: hand those over to it."""
        ph = self.phantoms.get(b.node)
        req = b.ask.req
        if not ph or b.gpus or req.gpu_milli < GPU_MILLI:
            return []
        take = ph[: req.gpu_count]
        del ph[: len(take)]
        for c in take:
            self.state.release(row, _PHANTOM, [c])
        return take

    def _pinned_cols(self, row: int, ask: PodAsk) -> list[int]:
        """The pod's `gpu-autoscaler.io/gpu-index` (physical) as this node's columns; [] if unmapped."""
        if not ask.pinned:
            return []
        info = self.infos.get(self.state.names[row])
        if info is None or not all(p in info.gpu_phys for p in ask.pinned):
            return []
        return [info.gpu_phys.index(p) for p in ask.pinned]

    def _place(self, row: int, b: Bound, prefer: list[int] | None = None) -> None:
        prefer = prefer if prefer is not None else self._take_phantoms(row, b)
        b.req, b.gpus = self._fit_gpus(row, b.ask, self._pinned_cols(row, b.ask) or b.gpus, prefer)
        self.state.place(row, b.req, b.gpus)
        self.state.place_mig(row, b.ask.mig)
        b.placed = True

    def _place_assumed(self, row: int, e: Assumed) -> None:
        e.req, e.gpus = self._fit_gpus(row, e.ask, e.gpus, [])
        self.state.place(row, e.req, e.gpus)
        self.state.place_mig(row, e.ask.mig)

    def _release(self, row: int, req: PodRequest, gpus: list[int], mig: tuple[tuple[str, int], ...]) -> None:
        self.state.release(row, req, gpus)
        self.state.release_mig(row, mig)

    # -- pods -----------------------------------------------------------------------------------------
    def upsert_pod(self, obj: dict[str, Any]) -> None:
        key = pod_key(obj)
        spec = obj.get("spec") if isinstance(obj, dict) else None
        status = obj.get("status") if isinstance(obj, dict) else None
        node = spec.get("nodeName") if isinstance(spec, dict) else None
        phase = status.get("phase") if isinstance(status, dict) else None
        try:
            ask = parse_pod(obj)
        except Exception as exc:  # InventoryError names the field; anything else is a shape never expected
            BAD.report_exception("Pod", obj, exc, source="extender")
            with self.lock:  # a bound pod keeps what it held, unless this version says it let go
                prev = self.bound.get(key)
                if prev is not None and (prev.node != node or phase in TERMINAL_PHASES):
                    self._unbind(key)
            return
        with self.lock:
            if self.learner is not None and ask.req.wants_gpu and phase not in TERMINAL_PHASES:
                self.learner.observe_pod(ask.key, ask.req)
            if ask.group:
                self.groups.setdefault((ask.namespace, ask.group), {})[key] = bool(node)
            active = bool(node) and phase not in TERMINAL_PHASES
            prev = self.bound.get(key)
            if prev is not None and (not active or prev.node != node or prev.ask.pinned != ask.pinned):
                self._unbind(key)
                prev = None
            if not active:
                if phase in TERMINAL_PHASES:
                    self._forget_group(ask, key)
                return
            if prev is not None:
                return  # already accounted (spec of a bound pod does not change its resources)
            if ask.invalid:
                log.warning(
                    "extender: bound pod's annotation ignored, accounted as whole GPUs",
                    extra={"pod": key, "node": node, "reason": ask.invalid},
                )
            self._bind(key, str(node), ask)

    def _bind(self, key: str, node: str, ask: PodAsk) -> Bound:
        """Account a pod as running on `node`: it takes over the GPUs we assumed for it there."""
        remembered: list[int] = []
        entry = self.assume.pop(key)
        if entry is not None:
            erow = self.state.index.get(entry.node)
            if erow is not None and self.state.alive[erow]:
                self._release(erow, entry.req, entry.gpus, entry.ask.mig)
            if entry.node == node:
                remembered = entry.gpus
            ASSUMPTIONS.labels("confirmed" if entry.node == node else "moved").inc()
        b = Bound(key, node, ask, ask.req, remembered)
        self.bound[key] = b
        self.node_pods.setdefault(node, set()).add(key)
        row = self.state.index.get(node)
        if row is not None and self.state.alive[row]:
            self._place(row, b)
        return b

    def bind_pod(self, key: str, node: str, ask: PodAsk | None = None) -> list[int]:
        """Binder mode: kube-scheduler's final choice is known before the watch shows it. Account the pod
        there now (the assumption, or `ask`, says what it asks) and return the physical GPU indices it got
        (empty for MIG slices and when the node is unknown). Raises KeyError when the pod is unknown."""
        with self.lock:
            if key in self.bound and self.bound[key].node == node:
                b = self.bound[key]
            else:
                entry = self.assume.get(key)
                known = ask or (entry.ask if entry is not None else None)
                if known is None:
                    raise KeyError(key)
                self._unbind(key)
                b = self._bind(key, node, known)
            row = self.state.index.get(node)
            return self.gpu_phys(row, b.gpus) if row is not None and b.placed else []

    def unbind_pod(self, key: str) -> None:
        """Undo `bind_pod` (the Binding was refused)."""
        with self.lock:
            self._unbind(key)

    def remove_pod(self, obj: dict[str, Any]) -> None:
        key = pod_key(obj)
        with self.lock:
            self._unbind(key)
            self.forget_assumed(key)
            with contextlib.suppress(Exception):  # an unreadable pod joined no group
                self._forget_group(parse_pod(obj), key)

    def _forget_group(self, ask: PodAsk, key: str) -> None:
        members = self.groups.get((ask.namespace, ask.group))
        if members is not None:
            members.pop(key, None)
            if not members:
                del self.groups[(ask.namespace, ask.group)]

    def _unbind(self, key: str) -> None:
        b = self.bound.pop(key, None)
        if b is None:
            return
        self.node_pods.get(b.node, set()).discard(key)
        row = self.state.index.get(b.node)
        if b.placed and row is not None and self.state.alive[row]:
            self._release(row, b.req, b.gpus, b.ask.mig)

    # -- assume cache -----------------------------------------------------------------------------------
    def assume_pod(self, ask: PodAsk, row: int) -> list[int]:
        """Hold GPUs on `row` for a pod we just steered there; returns the GPU columns held."""
        with self.lock:
            self.forget_assumed(ask.key)
            if ask.key in self.bound:
                return self.bound[ask.key].gpus
            gpus = choose_gpus(self.state, row, ask, self.config, self.topo)
            entry = self.assume.add(ask.key, self.state.names[row], ask, ask.req, gpus)
            self.state.place(row, entry.req, entry.gpus)
            self.state.place_mig(row, ask.mig)
            return gpus

    def forget_assumed(self, key: str) -> None:
        with self.lock:
            entry = self.assume.pop(key)
            if entry is not None:
                ASSUMPTIONS.labels("forgotten").inc()
                row = self.state.index.get(entry.node)
                if row is not None and self.state.alive[row]:
                    self._release(row, entry.req, entry.gpus, entry.ask.mig)

    def yield_to_scheduler(self, rows: IntArray, ask: PodAsk) -> int:
        """Drop assumptions that kube-scheduler's own accounting contradicts; returns how many.

        kube-scheduler calls an extender only with nodes its filters passed, and it counts `nvidia.com/gpu`
        (a managed resource with `ignoredByScheduler: false`) exactly, including every pod it has assumed
        itself. So a node in the request fits this pod's whole-GPU count for real. If our state says it
        does not, and would without our unconfirmed assumptions there, those assumptions are wrong: the pods
        went elsewhere. Keeping them would hide the node from the pod (the 8-GPU pod left Pending because
        of a GPU held for a pod kube-scheduler bound on another node). Newest assumptions go first, and only
        as many as the pod needs. GPUs the node agent reports busy outside any known pod are invisible to
        kube-scheduler, so a node short only because of those contradicts nothing. Shares and MIG slices
        are not counted by kube-scheduler per GPU: kept.
        """
        req = ask.req
        if (
            not self.yields
            or not len(self.assume)
            or ask.mig
            or not req.gpu_count
            or req.gpu_milli < GPU_MILLI
        ):
            return 0
        st = self.state
        rows = np.asarray(rows, dtype=np.int64)
        short = rows[st.full_free[rows] < req.gpu_count]
        if not len(short):
            return 0
        by_node = self.assume.by_node
        released = 0
        for row in short.tolist():
            name = st.names[row]
            held = by_node.get(name)
            if not held:
                continue
            entries = [e for e in held.values() if e.gpus and e.req.gpu_milli >= GPU_MILLI and not e.ask.mig]
            have = int(st.full_free[row])
            # what kube-scheduler counts if our assumptions are right: it does not see the GPUs the agent
            # reports busy outside any pod it knows, so those do not contradict anything
            seen_by_scheduler = have + len(self.phantoms.get(name, ()))
            if not entries or seen_by_scheduler >= req.gpu_count:
                continue
            if seen_by_scheduler + sum(len(e.gpus) for e in entries) < req.gpu_count:
                continue  # short for reasons of its own (over-commit): not ours to fix
            for e in reversed(entries):
                if seen_by_scheduler >= req.gpu_count:
                    break
                self._release(row, e.req, e.gpus, e.ask.mig)
                seen_by_scheduler += len(e.gpus)
                self.assume.unplace(e.key)  # placed, but not here: still a gang member until the watch
                released += 1
                ASSUMPTIONS.labels("contradicted").inc()
                log.info(
                    "extender: assumption contradicted by kube-scheduler, released",
                    extra={"pod": e.key, "node": st.names[row], "for_pod": ask.key},
                )
        return released

    def expire(self) -> int:
        with self.lock:
            gone = self.assume.pop_expired()
            for e in gone:
                ASSUMPTIONS.labels("expired").inc()
                row = self.state.index.get(e.node)
                if row is not None and self.state.alive[row]:
                    self._release(row, e.req, e.gpus, e.ask.mig)
                log.info("extender: assumed placement expired", extra={"pod": e.key, "node": e.node})
            return len(gone)

    # -- queries -----------------------------------------------------------------------------------------
    def rows_for(self, names: Iterable[str]) -> tuple[IntArray, list[str], list[str]]:
        """Rows of the known names (input order kept) and the names we do not know (or cannot read)."""
        index = self.state.index
        given = list(names)
        got = list(map(index.get, given))  # one C-level pass; the per-name loop only when some are unknown
        bad = self.bad_nodes
        if None not in got and not bad:
            return np.array(got, dtype=np.int64), given, []
        rows: list[int] = []
        known: list[str] = []
        unknown: list[str] = []
        for name in given:
            r = index.get(name)
            if r is None or name in bad:
                unknown.append(name)
            else:
                rows.append(r)
                known.append(name)
        return np.asarray(rows, dtype=np.int64), known, unknown

    def group_status(self, ask: PodAsk) -> GroupStatus:
        members = dict(self.groups.get((ask.namespace, ask.group), {}))
        members.setdefault(ask.key, False)
        placed = sum(1 for k, is_bound in members.items() if k != ask.key and (is_bound or k in self.assume))
        return GroupStatus(members=len(members), placed=placed)

    def gpu_phys(self, row: int, cols: list[int]) -> list[int]:
        """State columns -> the node's physical GPU indices (MIG GPUs are not columns)."""
        info = self.infos.get(self.state.names[row])
        if info is None:
            return cols
        return [info.gpu_phys[c] if c < len(info.gpu_phys) else c for c in cols]
