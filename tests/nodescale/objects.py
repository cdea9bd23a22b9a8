"""Kubernetes objects as the API returns them, for node-autoscaling tests: GPU nodes (GPU Feature Discovery
labels, optional agent topology), pods, Cluster API MachineDeployments and Machines, PodDisruptionBudgets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.cost.prices import parse_prices
from app.nodescale.planner import Inputs, Params, Plan, plan

Obj = dict[str, Any]
NOW = datetime(2025, 6, 3, 12, 0, tzinfo=UTC).timestamp()
NS = "capi"
PRICES = parse_prices({"H100": 6.88, "A100": 3.0, "L40S": 1.5}, "test prices")
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nvlink_topology(n: int, product: str = "NVIDIA H100 80GB HBM3", mem: int = 81559) -> str:
    gpus = [
        {
            "index": i,
            "product": product,
            "memoryMiB": mem,
            "numaNode": i * 2 // n,
            "migEnabled": False,
            "allocated": False,
        }
        for i in range(n)
    ]
    links = [["X" if i == j else "NV18" for j in range(n)] for i in range(n)]
    return json.dumps({"version": 1, "gpus": gpus, "links": links})


def node(
    name: str,
    gpus: int = 8,
    product: str = H100,
    cpu: str = "192",
    memory: str = "2000Gi",
    created: float = NOW - 86400,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    annotations: dict[str, str] | None = None,
    topology: bool = False,
    unschedulable: bool = False,
) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if gpus:
        lab |= {
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.memory": "81559",
        }
    ann = dict(annotations or {})
    if topology:
        ann["gpu-autoscaler.io/topology"] = nvlink_topology(gpus)
    spec: Obj = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": iso(created),
            "labels": lab | (labels or {}),
            "annotations": ann,
        },
        "spec": spec,
        "status": {
            "allocatable": alloc,
            "capacity": dict(alloc),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    name: str,
    gpus: int = 1,
    on: str | None = None,
    ns: str = "ml",
    owner: str | None = "ReplicaSet",
    phase: str | None = None,
    created: float = NOW - 600,
    cpu: str = "4",
    memory: str = "16Gi",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    priority: int | None = None,
    tolerations: list[Obj] | None = None,
    volumes: list[Obj] | None = None,
    node_selector: dict[str, str] | None = None,
    finished: float | None = None,
) -> Obj:
    res: Obj = {"cpu": cpu, "memory": memory}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    meta: Obj = {
        "name": name,
        "namespace": ns,
        "uid": f"uid-{ns}-{name}",
        "creationTimestamp": iso(created),
        "labels": labels or {"app": name},
        "annotations": annotations or {},
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner,
                "name": f"{name}-owner",
                "uid": f"o-{name}",
                "controller": True,
            }
        ]
    spec: Obj = {
        "containers": [
            {"name": "main", "image": "x", "resources": {"limits": dict(res), "requests": dict(res)}}
        ],
        "restartPolicy": "Never" if owner == "Job" else "Always",
    }
    if on:
        spec["nodeName"] = on
    if priority is not None:
        spec["priority"] = priority
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if volumes is not None:
        spec["volumes"] = volumes
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    status: Obj = {"phase": phase or ("Running" if on else "Pending")}
    if finished is not None:
        status["containerStatuses"] = [
            {"name": "main", "state": {"terminated": {"finishedAt": iso(finished)}}}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def machine_deployment(
    name: str,
    replicas: int,
    lo: int = 0,
    hi: int = 5,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Obj:
    ann = {
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": str(lo),
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": str(hi),
        **(annotations or {}),
    }
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-md-{name}",
            "annotations": ann,
            "labels": {"cluster.x-k8s.io/cluster-name": "c1", **(labels or {})},
        },
        "spec": {
            "clusterName": "c1",
            "replicas": replicas,
            "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": name}},
            "template": {
                "metadata": {"labels": {"cluster.x-k8s.io/deployment-name": name}},
                "spec": {"clusterName": "c1", "version": "v1.30.5"},
            },
        },
        "status": {"replicas": replicas},
    }


def machine(
    name: str, deployment: str, node_name: str | None, created: float = NOW - 86400, phase: str = "Running"
) -> Obj:
    status: Obj = {"phase": phase}
    if node_name:
        status["nodeRef"] = {"apiVersion": "v1", "kind": "Node", "name": node_name}
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Machine",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-m-{name}",
            "creationTimestamp": iso(created),
            "labels": {"cluster.x-k8s.io/cluster-name": "c1", "cluster.x-k8s.io/deployment-name": deployment},
        },
        "spec": {"clusterName": "c1"},
        "status": status,
    }


def pdb(name: str, ns: str, match: dict[str, str], allowed: int) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-pdb-{name}"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": match}},
        "status": {"disruptionsAllowed": allowed},
    }


def group(
    name: str, nodes: list[Obj], replicas: int | None = None, lo: int = 0, hi: int = 5, **md: Any
) -> list[Obj]:
    """A MachineDeployment and one Machine per node."""
    objs = [machine_deployment(name, len(nodes) if replicas is None else replicas, lo, hi, **md)]
    objs += [machine(f"{name}-m{i}", name, n["metadata"]["name"]) for i, n in enumerate(nodes)]
    return objs


def run_plan(objs: list[Obj], now: float = NOW, params: Params | None = None, **inputs: Any) -> Plan:
    by: dict[str, list[Obj]] = {}
    for o in objs:
        by.setdefault(o["kind"], []).append(o)
    return plan(
        Inputs(
            nodes=by.get("Node", []),
            pods=by.get("Pod", []),
            machine_deployments=by.get("MachineDeployment", []),
            machines=by.get("Machine", []),
            pdbs=by.get("PodDisruptionBudget", []),
            now=now,
            prices=PRICES,
            **inputs,
        ),
        params or Params(),
    )
