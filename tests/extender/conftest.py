"""Fixtures for the extender tests: Node / Pod objects shaped exactly as the Kubernetes API returns them,
the real kube-scheduler request bodies (tests/fixtures/extender), and an app wired with the extender only."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.settings import Settings
from extender.component import ExtenderComponent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "extender"

NV18_8 = [["X" if i == j else "NV18" for j in range(8)] for i in range(8)]
#: 8 GPUs behind PCIe switches on two sockets (PIX pairs, PXB quads, SYS across)
PCIE_8 = [
    ["X" if i == j else "SYS" if i // 4 != j // 4 else "PIX" if i // 2 == j // 2 else "PXB" for j in range(8)]
    for i in range(8)
]
L40S_4 = [
    ["X", "NODE", "SYS", "SYS"],
    ["NODE", "X", "SYS", "SYS"],
    ["SYS", "SYS", "X", "NODE"],
    ["SYS", "SYS", "NODE", "X"],
]
# 4x A100 PCIe with NVLink bridges: NV12 within the pairs 0-1 and 2-3 (k8s-device-plugin#436)
BRIDGED_4 = [
    ["X", "NV12", "NODE", "SYS"],
    ["NV12", "X", "SYS", "NODE"],
    ["NODE", "SYS", "X", "NV12"],
    ["SYS", "NODE", "NV12", "X"],
]


def sample(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def make_node(
    name: str,
    gpus: int = 8,
    product: str = "NVIDIA H100 80GB HBM3",
    memory_mib: int = 81559,
    links: list[list[str]] | None = None,
    allocated: tuple[int, ...] = (),
    mig: dict[str, int] | None = None,
    cpu: str = "128",
    memory: str = "1007Gi",
    annotate: bool = True,
    resource_version: str = "100",
) -> dict[str, Any]:
    """A Node as `kubectl get node -o json` shows it (topology annotation as the agent writes it)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.product": product.replace(" ", "-"),
        "nvidia.com/gpu.present": "true",
        "nvidia.com/mig.strategy": "mixed" if mig else "none",
    }
    annotations = {"node.alpha.kubernetes.io/ttl": "0"}
    if annotate:
        if links is None:
            links = [["X" if i == j else "NV18" for j in range(gpus)] for i in range(gpus)]
        topo = {
            "version": 1,
            "gpus": [
                {
                    "index": i,
                    "uuid": f"GPU-{name}-{i}",
                    "product": product,
                    "memoryMiB": memory_mib,
                    "numaNode": 0 if i < max(gpus // 2, 1) else 1,
                    "pciBusId": f"0000:{16 + i:02X}:00.0",
                    "migEnabled": False,
                    "allocated": i in allocated,
                }
                for i in range(gpus)
            ],
            "links": links,
        }
        annotations["gpu-autoscaler.io/topology"] = json.dumps(topo)
    alloc = {
        "cpu": cpu,
        "memory": memory,
        "pods": "110",
        "nvidia.com/gpu": str(gpus),
        "ephemeral-storage": "3843Gi",
    }
    for profile, n in (mig or {}).items():
        alloc[f"nvidia.com/mig-{profile}"] = str(n)
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": resource_version,
            "creationTimestamp": "2026-10-01T10:00:00Z",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"podCIDR": "10.244.3.0/24"},
        "status": {
            "capacity": dict(alloc),
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def make_pod(
    name: str,
    gpus: int = 0,
    namespace: str = "ml-team",
    mig: str = "",
    cpu: str = "4",
    memory: str = "32Gi",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node: str | None = None,
    phase: str = "Pending",
) -> dict[str, Any]:
    """A Pod as the API returns it (what kube-scheduler puts in ExtenderArgs.Pod)."""
    res: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    if mig:
        res[f"nvidia.com/mig-{mig}"] = "1"
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "vllm/vllm-openai:v0.11.0",
                "resources": {"limits": dict(res), "requests": res},
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
    }
    if node:
        spec["nodeName"] = node
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": {"phase": phase, "qosClass": "Burstable"},
    }


def write_snapshot(tmp: Path, objs: list[dict[str, Any]]) -> Path:
    path = tmp / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    return path


def sample_nodes() -> list[dict[str, Any]]:
    return copy.deepcopy(sample("extender-filter-nodes.json")["Nodes"]["items"])


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """make_client(objs, **settings) -> (TestClient, SnapshotCluster, ExtenderComponent)."""
    clients: list[TestClient] = []

    def build(
        objs: list[dict[str, Any]], **overrides: Any
    ) -> tuple[TestClient, SnapshotCluster, ExtenderComponent]:
        cluster = SnapshotCluster(write_snapshot(tmp_path, objs))
        settings = Settings(cluster=str(tmp_path), **overrides)
        app = create_app(settings, cluster=cluster, components=[ExtenderComponent])
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        comp = app.state.ctx.components["extender"]
        return client, cluster, comp

    yield build
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def sample_client(make_client: Any) -> tuple[TestClient, SnapshotCluster, ExtenderComponent]:
    """The app over a cluster holding the two nodes of the real kube-scheduler samples."""
    return make_client(sample_nodes())  # type: ignore[no-any-return]
