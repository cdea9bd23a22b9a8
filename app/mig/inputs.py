"""Cluster objects (Node and Pod dicts as the API returns them) -> the MIG planner's plain inputs.

Pure and shared by the background controller (the cluster view) and `gpu-autoscaler mig plan` (a snapshot).
Pods are read with the scheduler extender's parser, so a slice means the same thing to both.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.cluster.selectors import selector_matches
from app.gpu.mig import MIG_RESOURCE_PREFIX, geometry_for, resource_profile
from app.mig.plan import Demand, MigNode
from app.mig.rollout import parse_time, read_request
from extender.inventory import ANN_TOPOLOGY, InventoryError, PodAsk, parse_pod

LABEL_CONFIG = "nvidia.com/mig.config"
LABEL_STATE = "nvidia.com/mig.config.state"
LABEL_CAPABLE = "nvidia.com/mig.capable"
LABEL_STRATEGY = "nvidia.com/mig.strategy"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_COUNT = "nvidia.com/gpu.count"
#: our request on the node: the config we set, the one before, when, the last result reported
ANN_REQUEST = "gpu-autoscaler.io/mig-config-request"
#: set by the webhook on pods it rewrote
ANN_OPTIMIZED = "gpu-autoscaler.io/optimized"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class PodFacts:
    """GPU pods split the way the planners need them."""

    running: dict[str, list[tuple[str, PodAsk]]] = field(default_factory=dict)  # node -> [(ns/name, ask)]
    pending: list[tuple[str, PodAsk, dict[str, Any]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def pod_facts(pods: Iterable[Mapping[str, Any]]) -> PodFacts:
    """Running GPU pods per node, and Pending ones (not bound, not being deleted)."""
    out = PodFacts()
    for obj in pods:
        meta = _meta(obj)
        name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        try:
            ask = parse_pod(dict(obj))
        except InventoryError as exc:
            out.skipped.append(f"pod {name}: {exc}")
            continue
        if not ask.wants_gpu:
            continue
        phase = str((obj.get("status") or {}).get("phase") or "Pending")
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        if phase in TERMINAL_PHASES:
            continue
        if node:
            out.running.setdefault(node, []).append((name, ask))
        elif phase == "Pending" and not meta.get("deletionTimestamp"):
            out.pending.append((name, ask, dict(obj)))
    return out


def _topology(meta: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    raw = (meta.get("annotations") or {}).get(ANN_TOPOLOGY)
    if not raw:
        return None
    try:
        gpus = json.loads(raw).get("gpus")
    except (ValueError, AttributeError):
        return None
    return [g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else None


def is_mig_node(obj: Mapping[str, Any]) -> bool:
    labels = _meta(obj).get("labels") or {}
    alloc = (obj.get("status") or {}).get("allocatable") or {}
    return (
        str(labels.get(LABEL_CAPABLE, "")).lower() == "true"
        or LABEL_CONFIG in labels
        or any(k.startswith("nvidia.com/mig-") for k in alloc)
    )


def mig_node(
    obj: Mapping[str, Any],
    running: list[tuple[str, PodAsk]],
    selector: Mapping[str, Any] | None,
    pending_since: float | None = None,
) -> MigNode:
    """One Node (API JSON) -> MigNode. Used GPUs come from the node agent's `allocated` flags, trusted only
    when they mark some GPU or no GPU pod runs on the node."""
    meta = _meta(obj)
    labels: Mapping[str, str] = meta.get("labels") or {}
    alloc: Mapping[str, Any] = (obj.get("status") or {}).get("allocatable") or {}
    topo = _topology(meta)
    product = str(labels.get(LABEL_PRODUCT) or "")
    if not product and topo:
        product = str(topo[0].get("product") or "")
    count = str(labels.get(LABEL_COUNT, ""))
    if topo:
        gpus = len(topo)
    elif count.isdigit() and labels.get(LABEL_STRATEGY) != "single":
        gpus = int(count)  # with the single strategy the count is MIG devices, not GPUs
    else:
        gpus = 0
    allocatable: dict[str, int] = {}
    for key, value in alloc.items():
        if key.startswith(MIG_RESOURCE_PREFIX):
            try:
                allocatable[_profile(key.removeprefix(MIG_RESOURCE_PREFIX))] = int(str(value))
            except ValueError:
                continue
    used: Counter[str] = Counter()
    for _, ask in running:
        used.update(_slices(ask))
    used_gpus = None
    if topo:
        marked = frozenset(int(g.get("index", i)) for i, g in enumerate(topo) if g.get("allocated"))
        # the agent writes `allocated: false` when it cannot map pods to GPUs (no pod-resources API): no GPU
        # marked while GPU pods run means "unknown", never "idle"
        used_gpus = marked if marked or not running else None
    managed = selector_matches(selector, labels, empty_matches=True)
    return MigNode(
        name=str(meta.get("name") or ""),
        product=product,
        geo=geometry_for(product) if product else None,
        gpus=gpus,
        config=str(labels.get(LABEL_CONFIG) or ""),
        state=str(labels.get(LABEL_STATE) or ""),
        allocatable=allocatable,
        used=dict(used),
        pods=tuple(sorted(name for name, _ in running)),
        used_gpus=used_gpus,
        managed=managed and labels.get(LABEL_STRATEGY) != "single",
        request=read_request(meta.get("annotations") or {}, ANN_REQUEST),
        pending_since=pending_since,
    )


def mig_nodes(
    nodes: Iterable[Mapping[str, Any]],
    facts: PodFacts,
    selector: Mapping[str, Any] | None,
    pending_since: Mapping[str, float] | None = None,
) -> list[MigNode]:
    """Every MIG-capable node (label, config label or MIG allocatable), sorted by name."""
    out = []
    for obj in nodes:
        if not is_mig_node(obj):
            continue
        name = str(_meta(obj).get("name") or "")
        since = (pending_since or {}).get(name)
        out.append(mig_node(obj, facts.running.get(name, []), selector, since))
    return sorted(out, key=lambda n: n.name)


def _profile(suffix: str) -> str:
    """`1g.10gb.me` (a resource name's tail) -> `1g.10gb+me` (the profile)."""
    return resource_profile(MIG_RESOURCE_PREFIX + suffix) or suffix


def _slices(ask: PodAsk) -> Counter[str]:
    out: Counter[str] = Counter()
    for suffix, n in ask.mig:
        out[_profile(suffix)] += n
    return out


def pending_slices(facts: PodFacts) -> dict[str, int]:
    total: Counter[str] = Counter()
    for _, ask, _ in facts.pending:
        total.update(_slices(ask))
    return dict(sorted(total.items()))


def recent_from_pods(pods: Iterable[Mapping[str, Any]], now: float, window_s: float) -> dict[str, int]:
    """Slices the webhook chose in the window, as far as pods still show it (`optimized=true`, created in
    the window): what a snapshot can tell when the webhook's own record is not at hand."""
    total: Counter[str] = Counter()
    for obj in pods:
        meta = _meta(obj)
        if (meta.get("annotations") or {}).get(ANN_OPTIMIZED) != "true":
            continue
        created = parse_time(meta.get("creationTimestamp"))
        if created is None or now - created > window_s:
            continue
        try:
            ask = parse_pod(dict(obj))
        except InventoryError:
            continue
        total.update(_slices(ask))
    return dict(sorted(total.items()))


def mig_demand(facts: PodFacts, recent: Mapping[str, int]) -> Demand:
    return Demand(pending=pending_slices(facts), recent=dict(sorted(recent.items())))
