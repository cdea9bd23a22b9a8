"""Cluster objects -> the sharing planner's inputs, reusing the extender's node and pod parsing (a node's
sharing strategy, replicas and physical GPU count mean the same to the scheduler and to this controller)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.cluster.selectors import selector_matches
from app.mig.inputs import PodFacts
from app.mig.rollout import read_request
from app.sharing.config import LABEL_CONFIG
from app.sharing.plan import GPU_MILLI, ShareNode
from extender.inventory import InventoryError, PodAsk, parse_node

#: our request on the node: the device-plugin config we set, the one before, when, the last result reported
ANN_REQUEST = "gpu-autoscaler.io/sharing-config-request"


def held_milli(ask: PodAsk) -> int:
    """What a pod holds of its node's GPUs: its share, or 1000 m per whole GPU."""
    return ask.req.gpu_milli if ask.req.is_shared else GPU_MILLI * max(1, ask.req.gpu_count)


def share_nodes(
    nodes: Iterable[Mapping[str, Any]], facts: PodFacts, selector: Mapping[str, Any] | None
) -> tuple[list[ShareNode], list[str]]:
    """Every node with whole GPUs (MIG nodes are left out: MPS does not run on MIG, and the MIG controller
    owns their layout), sorted by name; plus the nodes that could not be read."""
    out: list[ShareNode] = []
    skipped: list[str] = []
    for obj in nodes:
        try:
            info = parse_node(dict(obj))
        except InventoryError as exc:
            skipped.append(str(exc))
            continue
        if info.mig or info.capacity.gpu_count <= 0:
            continue
        meta = obj.get("metadata") or {}
        labels: Mapping[str, str] = meta.get("labels") or {}
        running = facts.running.get(info.name, [])
        out.append(
            ShareNode(
                name=info.name,
                product=info.product,
                gpus=info.capacity.gpu_count,
                config=str(labels.get(LABEL_CONFIG) or ""),
                strategy=info.sharing,
                replicas=info.replicas,
                pods=tuple(sorted(name for name, _ in running)),
                shares=tuple(held_milli(ask) for _, ask in running),
                managed=selector_matches(selector, labels, empty_matches=True),
                request=read_request(meta.get("annotations") or {}, ANN_REQUEST),
            )
        )
    return sorted(out, key=lambda n: n.name), skipped


def pending_shares(facts: PodFacts) -> list[int]:
    """The share of each Pending pod asking one (`gpu-autoscaler.io/gpu-milli`)."""
    return sorted((ask.req.gpu_milli for _, ask, _ in facts.pending if ask.req.is_shared), reverse=True)
