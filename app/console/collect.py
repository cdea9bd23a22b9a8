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


def extender_state(ctx: AppContext, annotations: AnnotationCache) -> tuple[list[NodeInput], list[Holder]]:
    """Nodes and the pods holding their GPUs, from the extender's node state (bound pods and assumptions)."""
    ext = ctx.components.get("extender")
    adapter = getattr(ext, "adapter", None)
    if adapter is None:
        return [], []
    raw_nodes: list[tuple[Any, list[int], dict[str, int], dict[str, int], list[int]]] = []
    holders: list[Holder] = []
    with adapter.lock:
        st = adapter.state
        mig_profiles = list(getattr(st, "mig_profiles", []))
        for name, info in adapter.infos.items():
            row = st.index.get(name)
            if row is None or not st.alive[row]:
                continue
            n = int(st.gpu_count[row])
            left = st.gpu_left[row, :n].tolist()
            cap = {p: int(st.mig_cap[row, j]) for j, p in enumerate(mig_profiles) if st.mig_cap[row, j] > 0}
            mleft = {p: int(st.mig_left[row, j]) for j, p in enumerate(mig_profiles) if p in cap}
            raw_nodes.append((info, left, cap, mleft, list(adapter.phantoms.get(name, ()))))
        for b in adapter.bound.values():
            if b.placed:
                holders.append(_holder(adapter, b.key, b.node, b.ask, b.req, b.gpus, assumed=False))
        for key in adapter.assume.keys():  # noqa: SIM118 - AssumeCache is not a dict
            e = adapter.assume.get(key)
            if e is not None:
                holders.append(_holder(adapter, e.key, e.node, e.ask, e.req, e.gpus, assumed=True))
    nodes: list[NodeInput] = []
    for info, left, cap, mleft, phantom_cols in raw_nodes:
        has_gpu = info.capacity.gpu_count or info.mig
        gpus, links, layout = annotations.get(ctx.cluster.get("Node", info.name))
        if not has_gpu and not gpus:
            continue  # CPU-only node: nothing to draw
        phys = info.gpu_phys
        nodes.append(
            NodeInput(
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
        )
    return nodes, holders


def _holder(adapter: Any, key: str, node: str, ask: Any, req: Any, cols: list[int], assumed: bool) -> Holder:
    row = adapter.state.index.get(node)
    phys = adapter.gpu_phys(row, list(cols)) if row is not None else list(cols)
    return Holder(
        key=key,
        namespace=ask.namespace,
        name=ask.name,
        node=node,
        gpus=tuple(phys),
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


def fingerprint(ctx: AppContext) -> tuple[int, ...]:
    """Changes whenever what the GPU map draws may have changed: any cluster object, the extender's node
    state (pods placed, released, assumed: each bumps a row's version) or the waste scores."""
    ext = ctx.components.get("extender")
    adapter = getattr(ext, "adapter", None)
    waste = id(getattr(ctx.components.get("waste"), "last", None))
    if adapter is None:
        return (ctx.cluster.generation, waste)
    with adapter.lock:
        st = adapter.state
        return (ctx.cluster.generation, waste, st.n, int(st.version[: st.n].sum()), len(adapter.assume))


def collect(
    ctx: AppContext,
    annotations: AnnotationCache,
    state: tuple[list[NodeInput], list[Holder]] | None = None,
) -> ConsoleInputs:
    """One consistent-enough snapshot of everything the page shows (cost/savings come separately).
    `state`: the extender's nodes and holders when the caller already has them for this fingerprint."""
    nodes, holders = state if state is not None else extender_state(ctx, annotations)
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
