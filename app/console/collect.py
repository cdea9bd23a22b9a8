"""Thin adapter: the running components' state -> ConsoleInputs (plain data). Reads, never writes.

The extender's node state is copied under its lock (a few ms at 1,000 nodes) so the scheduler is held up
no longer than a copy; everything else (grouping, text, HTML) happens on the copy. The other capabilities
are read through their `describe()`; those another issue builds (`mig`, `sharing`, `nodescale`, `cost`)
appear only when a component of that name is running.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.console.inputs import ConsoleInputs, GpuFacts, Holder, NodeInput
from app.context import AppContext

log = logging.getLogger(__name__)

ANN_TOPOLOGY = "gpu-autoscaler.io/topology"
ANN_MIG_LAYOUT = "gpu-autoscaler.io/mig-layout"
PLAN_COMPONENTS = ("mig", "sharing", "nodescale", "cost")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class AnnotationCache:
    """Node annotations parsed once per (name, resourceVersion): the topology's GPUs and links, the MIG
    layout. Malformed annotations read as absent (the extender falls back the same way)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._cache: dict[tuple[str, str], tuple[tuple[GpuFacts, ...], Any, dict[int, tuple[str, ...]]]] = {}

    def get(
        self, obj: Mapping[str, Any] | None
    ) -> tuple[tuple[GpuFacts, ...], tuple[tuple[str, ...], ...] | None, dict[int, tuple[str, ...]]]:
        if not obj:
            return (), None, {}
        meta = obj.get("metadata") or {}
        key = (str(meta.get("name")), str(meta.get("resourceVersion") or ""))
        hit = self._cache.get(key) if key[1] else None
        if hit is None:
            hit = _parse_annotations(meta.get("annotations") or {})
            if key[1]:
                if len(self._cache) >= self.limit:
                    self._cache.clear()
                self._cache[key] = hit
        return hit


def _parse_annotations(
    ann: Mapping[str, Any],
) -> tuple[tuple[GpuFacts, ...], tuple[tuple[str, ...], ...] | None, dict[int, tuple[str, ...]]]:
    gpus: tuple[GpuFacts, ...] = ()
    links: tuple[tuple[str, ...], ...] | None = None
    try:
        topo = json.loads(ann.get(ANN_TOPOLOGY) or "null")
    except (TypeError, ValueError):
        topo = None
    if isinstance(topo, dict) and isinstance(topo.get("gpus"), list):
        raw = [g for g in topo["gpus"] if isinstance(g, dict)]
        gpus = tuple(
            GpuFacts(
                index=_int(g.get("index"), i),
                uuid=str(g.get("uuid") or ""),
                memory_mib=_int(g.get("memoryMiB")),
                numa=_int(g["numaNode"]) if isinstance(g.get("numaNode"), int) else None,
                mig_enabled=bool(g.get("migEnabled")),
            )
            for i, g in enumerate(raw)
        )
        matrix = topo.get("links")
        if isinstance(matrix, list) and len(matrix) == len(gpus) and all(isinstance(r, list) for r in matrix):
            links = tuple(tuple(str(t).strip() for t in row) for row in matrix)
    layout: dict[int, tuple[str, ...]] = {}
    try:
        raw_layout = json.loads(ann.get(ANN_MIG_LAYOUT) or "null")
    except (TypeError, ValueError):
        raw_layout = None
    if isinstance(raw_layout, dict):
        for k, v in raw_layout.items():
            if str(k).isdigit() and isinstance(v, list):
                layout[int(k)] = tuple(str(p) for p in v)
    return gpus, links, layout


@dataclass(frozen=True)
class NodeState:
    """One node's share of the extender's state and the key that changes whenever it does: the row's
    version (bumped by every place/release on it) and the Node object's resourceVersion."""

    key: tuple[int, str]
    node: NodeInput | None  # None: a node without GPUs (nothing to draw)
    holders: tuple[Holder, ...]


class StateCache:
    """The extender's nodes and the pods holding their GPUs, copied under the extender's lock; only rows
    whose key moved since the last read are copied again (one pod bound = one row at 1,000 nodes)."""

    def __init__(self) -> None:
        self.annotations = AnnotationCache()
        self.nodes: dict[str, NodeState] = {}

    def read(self, ctx: AppContext) -> list[NodeState]:
        ext = ctx.components.get("extender")
        adapter = getattr(ext, "adapter", None)
        if adapter is None:
            self.nodes = {}
            return []
        changed: list[tuple[Any, tuple[int, str], list[int], dict[str, int], dict[str, int], list[int]]] = []
        holders: dict[str, list[Holder]] = {}
        fresh: dict[str, NodeState] = {}
        with adapter.lock:
            st = adapter.state
            mig_profiles = list(getattr(st, "mig_profiles", []))
            for name, info in adapter.infos.items():
                row = st.index.get(name)
                if row is None or not st.alive[row]:
                    continue
                key = (int(st.version[row]), info.resource_version)
                old = self.nodes.get(name)
                if old is not None and old.key == key:
                    fresh[name] = old
                    continue
                n = int(st.gpu_count[row])
                left = st.gpu_left[row, :n].tolist()
                cap = {
                    p: int(st.mig_cap[row, j]) for j, p in enumerate(mig_profiles) if st.mig_cap[row, j] > 0
                }
                mleft = {p: int(st.mig_left[row, j]) for j, p in enumerate(mig_profiles) if p in cap}
                changed.append((info, key, left, cap, mleft, list(adapter.phantoms.get(name, ()))))
                on_node = holders[name] = []
                for k in sorted(adapter.node_pods.get(name, ())):
                    b = adapter.bound.get(k)
                    if b is not None and b.placed:
                        on_node.append(_holder(adapter, row, b.key, b.node, b.ask, b.req, b.gpus, False))
                for e in adapter.assume.on_node(name):
                    on_node.append(_holder(adapter, row, e.key, e.node, e.ask, e.req, e.gpus, True))
        for info, key, left, cap, mleft, phantom_cols in changed:
            node = self._node_input(ctx, info, left, cap, mleft, phantom_cols)
            fresh[info.name] = NodeState(key, node, tuple(holders[info.name]))
        self.nodes = fresh
        return [fresh[name] for name in sorted(fresh)]

    def _node_input(
        self,
        ctx: AppContext,
        info: Any,
        left: list[int],
        cap: dict[str, int],
        mleft: dict[str, int],
        phantom_cols: list[int],
    ) -> NodeInput | None:
        gpus, links, layout = self.annotations.get(ctx.cluster.get("Node", info.name))
        if not (info.capacity.gpu_count or info.mig or gpus):
            return None  # CPU-only node: nothing to draw
        phys = info.gpu_phys
        return NodeInput(
            name=info.name,
            product=info.product.replace("-", " ") if info.source == "labels" else info.product,
            source=info.source,
            sharing=info.sharing,
            gpu_phys=tuple(phys[c] if c < len(phys) else c for c in range(len(left))),
            gpu_left=tuple(left),
            mig_cap=cap,
            mig_left=mleft,
            gpus=gpus,
            links=links,
            mig_layout=layout,
            agent_held=tuple(phys[c] if c < len(phys) else c for c in phantom_cols),
        )


def _holder(
    adapter: Any, row: int, key: str, node: str, ask: Any, req: Any, cols: list[int], assumed: bool
) -> Holder:
    return Holder(
        key=key,
        namespace=ask.namespace,
        name=ask.name,
        node=node,
        gpus=tuple(adapter.gpu_phys(row, list(cols))),
        milli=int(req.gpu_milli) if req.gpu_count else 1000,
        mig=tuple(ask.mig),
        assumed=assumed,
    )


def _describe(ctx: AppContext, name: str, errors: dict[str, str]) -> dict[str, Any] | None:
    comp = ctx.components.get(name)
    describe = getattr(comp, "describe", None)
    if describe is None:
        return None
    try:
        doc = describe()
    except Exception as exc:  # one broken section must not take the page down
        log.warning("console: describe() failed", extra={"component": name, "error": str(exc)})
        errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    return doc if isinstance(doc, dict) else None


def collect(ctx: AppContext, states: list[NodeState]) -> ConsoleInputs:
    """Everything the page shows besides cost/savings (they come separately), around the extender's
    node states (`StateCache.read`)."""
    nodes = [s.node for s in states if s.node is not None]
    holders = [h for s in states if s.node is not None for h in s.holders]
    errors: dict[str, str] = {}
    ext = ctx.components.get("extender")
    decisions = getattr(getattr(ext, "service", None), "decisions", None)
    waste = ctx.components.get("waste")
    hook = _describe(ctx, "webhook", errors)
    plans = {}
    for name in PLAN_COMPONENTS:
        doc = _describe(ctx, name, errors)
        if doc is not None:
            plans[name] = doc
    return ConsoleInputs(
        source=ctx.cluster.source,
        generated_at=time.time(),
        nodes=nodes,
        holders=holders,
        waste=list(getattr(waste, "last", []) or []),
        waste_enabled=waste is not None and bool(ctx.settings.prometheus_url),
        placements=decisions.entries() if decisions is not None else None,
        webhook=None if hook is None else list(hook.get("recent") or []),
        autoscaler=_describe(ctx, "autoscaler", errors),
        plans=plans,
        errors=errors,
    )
