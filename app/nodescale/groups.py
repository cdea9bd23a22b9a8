"""Node groups: Cluster API MachineDeployments as Cluster Autoscaler's Cluster API provider reads them.

A MachineDeployment is a node group when it carries both size annotations
`cluster.x-k8s.io/cluster-api-autoscaler-node-group-{min,max}-size` (and, when `node_group_selector` is
set, the labels it asks). Its Machines carry the label `cluster.x-k8s.io/deployment-name`; a Machine's
Node is `status.nodeRef` (or the Node's `cluster.x-k8s.io/machine` annotation).

What one more node of the group looks like (the *template*): a live Ready node of the group, sanitised, when
there is one (it carries the node agent's topology annotation and every real label); else the scale-from-zero
capacity annotations `capacity.cluster-autoscaler.kubernetes.io/{cpu,memory,gpu-type,gpu-count,maxPods,
labels,taints}`, plus the labels Cluster API propagates to Nodes (`node-role.kubernetes.io/*`,
`node-restriction.kubernetes.io/*`, `node.cluster.x-k8s.io/*`), `spec.template.spec.taints`, and our own
`gpu-autoscaler.io/topology` annotation on the MachineDeployment (the agent's JSON) when the links are known.
Price: `gpu-autoscaler.io/usd-per-gpu-hour` on the MachineDeployment, else the cost table for the template's
GPU product. Spot: a template label from `spot_labels`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.cluster.base import parse_timestamp
from app.cost.prices import PriceTable
from app.nodescale.predicates import node_ready
from extender.inventory import ANN_TOPOLOGY, InventoryError, parse_node, parse_quantity

Obj = Mapping[str, Any]

CAPI = "cluster.x-k8s.io"
ANN_MIN = f"{CAPI}/cluster-api-autoscaler-node-group-min-size"
ANN_MAX = f"{CAPI}/cluster-api-autoscaler-node-group-max-size"
ANN_DELETE_MACHINE = f"{CAPI}/delete-machine"
ANN_PAUSED = f"{CAPI}/paused"
ANN_NODE_MACHINE = f"{CAPI}/machine"
ANN_NODE_CLUSTER_NS = f"{CAPI}/cluster-namespace"
LABEL_DEPLOYMENT = f"{CAPI}/deployment-name"
CAPACITY = "capacity.cluster-autoscaler.kubernetes.io/"
ANN_PRICE = "gpu-autoscaler.io/usd-per-gpu-hour"
#: label domains Cluster API copies from a Machine to its Node
MANAGED_LABEL_DOMAINS = ("node-role.kubernetes.io", "node-restriction.kubernetes.io", "node.cluster.x-k8s.io")
#: taints a template must not inherit from the live node it was copied from (state, not configuration)
TRANSIENT_TAINT_PREFIXES = (
    "node.kubernetes.io/",
    "node.cloudprovider.kubernetes.io/",
    "ToBeDeletedBy",
    "DeletionCandidateOf",
    "aws-node-termination-handler/",
    "gpu-autoscaler.io/",
)
DEFAULT_MAX_PODS = "110"


def parse_time(value: Any) -> float | None:
    """RFC 3339 (API timestamps) -> epoch seconds; None when absent or unreadable."""
    t = parse_timestamp(value)
    return t.timestamp() if t is not None else None


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


@dataclass
class Machine:
    namespace: str
    name: str
    node: str | None  # status.nodeRef.name
    created: float | None
    phase: str
    deleting: bool
    marked: bool  # carries cluster.x-k8s.io/delete-machine
    failure: str  # status.failureReason / failureMessage

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class NodeGroup:
    namespace: str
    name: str
    min_size: int
    max_size: int
    replicas: int
    obj: Obj
    machines: list[Machine] = field(default_factory=list)
    #: registered nodes (Node objects exist) of machines not being deleted
    nodes: list[str] = field(default_factory=list)
    #: nodes on their way out (machine deleting or marked), still in the cluster
    leaving: list[str] = field(default_factory=list)
    template: dict[str, Any] | None = None
    template_source: str = ""  # "node/<name>" | "annotations" | ""
    #: why the group cannot scale up ("" = it can)
    problem: str = ""
    #: machines that never became nodes in time (or failed): the provision timeout's evidence
    stuck: list[Machine] = field(default_factory=list)
    product: str = ""
    gpus: int = 0
    gpu_memory_mib: int = 0
    usd_per_gpu_hour: float | None = None
    spot: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def usd_per_node_hour(self) -> float | None:
        return None if self.usd_per_gpu_hour is None else self.usd_per_gpu_hour * self.gpus

    @property
    def upcoming(self) -> int:
        """Nodes asked for and still coming (replicas not yet registered, minus machines that are stuck)."""
        return max(0, self.replicas - len(self.nodes) - len(self.stuck))

    def view(self) -> dict[str, Any]:
        return {
            "group": self.key,
            "replicas": self.replicas,
            "min": self.min_size,
            "max": self.max_size,
            "nodes": sorted(self.nodes),
            "upcoming": self.upcoming,
            "template": self.template_source or None,
            "product": self.product or None,
            "gpus_per_node": self.gpus,
            "usd_per_gpu_hour": self.usd_per_gpu_hour,
            "spot": self.spot,
            "problem": self.problem or None,
        }


# -- selectors and labels --------------------------------------------------------------------------------
def parse_pairs(text: str, what: str) -> tuple[tuple[str, str], ...]:
    """'k=v,k2=v2' -> pairs; raises ValueError naming the bad item."""
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: {item!r} is not key=value")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def selector_accepts(selector: str, labels: Mapping[str, str]) -> bool:
    """'k=v,k2!=v2,k3,!k4' (kubectl's equality and existence forms); empty accepts everything."""
    for item in (p.strip() for p in selector.split(",")):
        if not item:
            continue
        if "!=" in item:
            k, v = item.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in item:
            k, v = item.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip():
                return False
        elif item.startswith("!"):
            if item[1:].strip() in labels:
                return False
        elif item not in labels:
            return False
    return True


def _annotation_labels(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = val.strip()
    return out


def _parse_taint(text: str) -> dict[str, str] | None:
    """'key=value:Effect' | 'key:Effect' | 'key' (kubectl taint syntax, as the provider parses it)."""
    head, _, effect = text.strip().partition(":")
    key, _, value = head.partition("=")
    if not key:
        return None
    taint = {"key": key, "effect": effect} if effect else {"key": key}
    if value:
        taint["value"] = value
    return taint


def _managed_labels(md: Obj) -> dict[str, str]:
    tmpl = (md.get("spec") or {}).get("template") or {}
    labels: dict[str, str] = {}
    for meta in (tmpl.get("metadata") or {}, (tmpl.get("spec") or {}).get("metadata") or {}):
        for k, v in (meta.get("labels") or {}).items():
            domain = k.split("/", 1)[0] if "/" in k else ""
            if any(domain == d or domain.endswith("." + d) for d in MANAGED_LABEL_DOMAINS):
                labels[k] = str(v)
    return labels


# -- templates ---------------------------------------------------------------------------------------------
def template_from_node(node: Obj) -> dict[str, Any]:
    """A fresh copy of a live node: same capacity, labels and topology, nothing allocated, no state."""
    t = copy.deepcopy(dict(node))
    meta = t.setdefault("metadata", {})
    for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "deletionTimestamp"):
        meta.pop(k, None)
    ann = meta.get("annotations") or {}
    meta["annotations"] = {}
    raw = ann.get(ANN_TOPOLOGY)
    if raw:
        try:
            topo = json.loads(raw)
            for gpu in topo.get("gpus") or []:
                if isinstance(gpu, dict):
                    gpu["allocated"] = False
            meta["annotations"][ANN_TOPOLOGY] = json.dumps(topo, separators=(",", ":"))
        except (ValueError, AttributeError):
            pass
    spec = t.setdefault("spec", {})
    spec.pop("unschedulable", None)
    spec.pop("providerID", None)
    taints = [
        x for x in spec.get("taints") or [] if not str(x.get("key", "")).startswith(TRANSIENT_TAINT_PREFIXES)
    ]
    spec["taints"] = taints
    status = t.setdefault("status", {})
    status["conditions"] = [{"type": "Ready", "status": "True"}]
    return t


def template_from_annotations(md: Obj) -> tuple[dict[str, Any] | None, str]:
    """The scale-from-zero node, or (None, why not). CPU and memory are required, as in the provider."""
    ann: dict[str, str] = dict((md.get("metadata") or {}).get("annotations") or {})
    cpu, memory = ann.get(CAPACITY + "cpu"), ann.get(CAPACITY + "memory")
    if not cpu or not memory:
        return None, f"no live node and no {CAPACITY}cpu/memory annotations to build one from"
    alloc: dict[str, str] = {
        "cpu": cpu,
        "memory": memory,
        "pods": ann.get(CAPACITY + "maxPods") or DEFAULT_MAX_PODS,
    }
    if ann.get(CAPACITY + "ephemeral-disk"):
        alloc["ephemeral-storage"] = ann[CAPACITY + "ephemeral-disk"]
    gpu_count = ann.get(CAPACITY + "gpu-count")
    if gpu_count:
        # the provider needs gpu-type too; a count alone is read as NVIDIA's device-plugin resource
        alloc[ann.get(CAPACITY + "gpu-type") or "nvidia.com/gpu"] = gpu_count
    try:
        for k, v in alloc.items():
            if k == "pods" or k.startswith("nvidia.com/"):
                if not str(v).isdigit():
                    raise InventoryError(f"{k}: not an integer: {v!r}")
            else:
                parse_quantity(v, k)
    except InventoryError as exc:
        return None, f"capacity annotation {exc}"
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    labels |= _managed_labels(md)
    labels |= _annotation_labels(ann.get(CAPACITY + "labels") or "")
    taints: list[dict[str, str]] = [
        {k: str(v) for k, v in t.items() if k in ("key", "value", "effect")}
        for t in (((md.get("spec") or {}).get("template") or {}).get("spec") or {}).get("taints") or []
    ]
    for item in (ann.get(CAPACITY + "taints") or "").split(","):
        taint = _parse_taint(item) if item.strip() else None
        if taint is None:
            continue
        taints = [t for t in taints if (t.get("key"), t.get("effect")) != (taint["key"], taint.get("effect"))]
        taints.append(taint)
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "template", "labels": labels, "annotations": {}},
        "spec": {"taints": taints},
        "status": {
            "allocatable": dict(alloc),
            "capacity": dict(alloc),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    if ann.get(ANN_TOPOLOGY):
        node["metadata"]["annotations"][ANN_TOPOLOGY] = ann[ANN_TOPOLOGY]
    return node, ""


# -- the groups ----------------------------------------------------------------------------------------------
def _machine(obj: Obj) -> Machine:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ref = status.get("nodeRef") or {}
    failure = " ".join(str(status.get(k)) for k in ("failureReason", "failureMessage") if status.get(k))
    return Machine(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        node=str(ref["name"]) if ref.get("name") else None,
        created=parse_time(meta.get("creationTimestamp")),
        phase=str(status.get("phase") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        marked=ANN_DELETE_MACHINE in (meta.get("annotations") or {}),
        failure=failure,
    )


def _int_annotation(ann: Mapping[str, Any], key: str) -> int:
    raw = ann.get(key)
    try:
        value = int(str(raw))
    except ValueError:
        raise ValueError(f"annotation {key}: not an integer: {raw!r}") from None
    if value < 0:
        raise ValueError(f"annotation {key}: must be >= 0, got {value}")
    return value


@dataclass
class Groups:
    """Every node group, which group each node belongs to, and the MachineDeployments left out (why)."""

    groups: list[NodeGroup]
    node_group: dict[str, NodeGroup]
    node_machine: dict[str, Machine]
    skipped: dict[str, str]

    def get(self, key: str) -> NodeGroup | None:
        return next((g for g in self.groups if g.key == key), None)


def build_groups(
    machine_deployments: Iterable[Obj],
    machines: Iterable[Obj],
    nodes: Iterable[Obj],
    *,
    now: float,
    prices: PriceTable,
    selector: str = "",
    spot_labels: tuple[tuple[str, str], ...] = (),
    provision_timeout_s: float = 900.0,
) -> Groups:
    node_objs = {str(n["metadata"]["name"]): n for n in nodes if (n.get("metadata") or {}).get("name")}
    ms = [_machine(m) for m in machines if (m.get("metadata") or {}).get("name")]
    by_key = {m.key: m for m in ms}
    by_deploy: dict[str, list[Machine]] = {}
    raw_labels = {_key(m): (m.get("metadata") or {}).get("labels") or {} for m in machines}
    for m in ms:
        deploy = raw_labels.get(m.key, {}).get(LABEL_DEPLOYMENT)
        if deploy:
            by_deploy.setdefault(f"{m.namespace}/{deploy}", []).append(m)
    # Node -> Machine: status.nodeRef, else the Node's cluster.x-k8s.io/machine annotation
    node_machine: dict[str, Machine] = {m.node: m for m in ms if m.node}
    for name, node in node_objs.items():
        ann = (node.get("metadata") or {}).get("annotations") or {}
        if name not in node_machine and ann.get(ANN_NODE_MACHINE):
            found = by_key.get(f"{ann.get(ANN_NODE_CLUSTER_NS) or 'default'}/{ann[ANN_NODE_MACHINE]}")
            if found is not None:
                found.node = found.node or name
                node_machine[name] = found

    out = Groups([], {}, node_machine, {})
    for md in machine_deployments:
        meta = md.get("metadata") or {}
        ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        key = _key(md)
        if ANN_MIN not in ann or ANN_MAX not in ann:
            continue  # not a node group (as the provider reads it)
        if not selector_accepts(selector, labels):
            out.skipped[key] = f"labels do not match node_group_selector {selector!r}"
            continue
        try:
            lo, hi = _int_annotation(ann, ANN_MIN), _int_annotation(ann, ANN_MAX)
            if hi < lo:
                raise ValueError(f"max size {hi} is below min size {lo}")
        except ValueError as exc:
            out.skipped[key] = str(exc)
            continue
        replicas = (md.get("spec") or {}).get("replicas")
        size = int(replicas) if isinstance(replicas, int) else 0
        g = NodeGroup(str(meta.get("namespace") or "default"), str(meta.get("name")), lo, hi, size, md)
        g.machines = sorted(by_deploy.get(key, []), key=lambda m: m.name)
        for m in g.machines:
            if m.node and m.node in node_objs:
                (g.leaving if m.deleting or m.marked else g.nodes).append(m.node)
                if not (m.deleting or m.marked):
                    out.node_group[m.node] = g
                continue
            if m.deleting:
                continue
            age = now - m.created if m.created is not None else 0.0
            if m.phase == "Failed" or m.failure or age > provision_timeout_s:
                g.stuck.append(m)
        _describe_template(g, md, node_objs, prices, spot_labels)
        if ANN_PAUSED in ann:
            g.problem = f"paused ({ANN_PAUSED})"
        elif g.stuck:
            m = g.stuck[0]
            what = f"failed: {m.failure}" if m.failure or m.phase == "Failed" else "has not become a node"
            g.problem = (
                f"backoff: machine {m.name} {what or 'failed'} (provision timeout {provision_timeout_s:.0f}s)"
            )
        out.groups.append(g)
    out.groups.sort(key=lambda g: g.key)
    return out


def _describe_template(
    g: NodeGroup,
    md: Obj,
    node_objs: Mapping[str, Obj],
    prices: PriceTable,
    spot_labels: tuple[tuple[str, str], ...],
) -> None:
    live = [node_objs[n] for n in sorted(g.nodes) if node_ready(node_objs[n])]
    if live:
        g.template, g.template_source = template_from_node(live[0]), f"node/{live[0]['metadata']['name']}"
    else:
        g.template, why = template_from_annotations(md)
        g.template_source = "annotations" if g.template else ""
        if g.template is None:
            g.problem = why
            return
    g.template["metadata"]["name"] = f"{g.name}-template"
    g.template["metadata"].setdefault("labels", {})["kubernetes.io/hostname"] = f"{g.name}-template"
    try:
        info = parse_node(g.template)
    except InventoryError as exc:
        g.problem, g.template = f"template node: {exc}", None
        return
    g.labels = dict(g.template["metadata"].get("labels") or {})
    g.product, g.gpus, g.gpu_memory_mib = info.product, info.capacity.gpu_count, info.gpu_memory_mib
    if not g.gpus and info.mig:
        g.gpus = (
            int(g.labels.get("nvidia.com/gpu.count", "0") or 0)
            if g.labels.get("nvidia.com/gpu.count", "").isdigit()
            else 0
        )
    g.spot = any(g.labels.get(k) == v for k, v in spot_labels)
    override = ((md.get("metadata") or {}).get("annotations") or {}).get(ANN_PRICE)
    if override is not None:
        try:
            g.usd_per_gpu_hour = max(0.0, float(override))
        except ValueError:
            g.usd_per_gpu_hour = None
    elif g.product:
        g.usd_per_gpu_hour = prices.per_hour(g.product)
    if not g.gpus:
        g.problem = "template node has no GPUs"
