"""Builders for the MIG and sharing controller tests: Node and Pod objects as the API server returns them."""

from __future__ import annotations

import json
from typing import Any

A100 = "NVIDIA-A100-SXM4-80GB"

#: a mig-parted config in the real format: per-GPU layouts of a 4-GPU A100-80GB node
CONFIG = """
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  all-3g.40gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
  mixed:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
    - devices: [2]
      mig-enabled: true
      mig-devices:
        "2g.20gb": 3
    - devices: [3]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
  inference:
    - devices: [0]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
    - devices: [1]
      mig-enabled: true
      mig-devices:
        "2g.20gb": 3
    - devices: [2, 3]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
"""

#: what each named layout advertises on a 4-GPU A100-80GB node (mixed strategy)
ALLOCATABLE = {
    "mixed": {"1g.10gb": 14, "2g.20gb": 3, "3g.40gb": 2},
    "inference": {"1g.10gb": 7, "2g.20gb": 3, "3g.40gb": 4},
    "all-1g.10gb": {"1g.10gb": 28},
    "all-3g.40gb": {"3g.40gb": 8},
}


def node_obj(
    name: str,
    config: str = "mixed",
    state: str = "success",
    allocated: tuple[int, ...] | None = (),
    product: str = A100,
    gpus: int = 4,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    advertised: str | None = None,
) -> dict[str, Any]:
    """A MIG node in mixed strategy; `allocated` GPU indices go into the agent's topology annotation
    (None: no annotation, so which GPUs are used is unknown). `advertised`: the layout whose slices the
    device plugin advertises (default: the labelled one, i.e. in effect)."""
    shown = ALLOCATABLE.get(advertised or config, {})
    alloc = {f"nvidia.com/mig-{p}": str(n) for p, n in shown.items()}
    alloc.update({"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "0", "pods": "110"})
    meta_labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": "81920",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "mixed",
        "nvidia.com/mig.config": config,
        "nvidia.com/mig.config.state": state,
        **(labels or {}),
    }
    if not state:
        del meta_labels["nvidia.com/mig.config.state"]
    ann = dict(annotations or {})
    if allocated is not None:
        topo = {
            "version": 1,
            "gpus": [
                {
                    "index": i,
                    "uuid": f"GPU-{name}-{i}",
                    "product": product.replace("-", " "),
                    "memoryMiB": 81920,
                    "numaNode": 0,
                    "pciBusId": f"0000:{i + 1:02X}:00.0",
                    "migEnabled": True,
                    "allocated": i in allocated,
                }
                for i in range(gpus)
            ],
            "links": [["X" if i == j else "NV12" for j in range(gpus)] for i in range(gpus)],
        }
        ann["gpu-autoscaler.io/topology"] = json.dumps(topo)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": meta_labels, "annotations": ann, "resourceVersion": "1"},
        "status": {"allocatable": alloc, "capacity": dict(alloc)},
    }


def pod_obj(
    name: str,
    resources: dict[str, str],
    node: str | None = None,
    namespace: str = "team",
    phase: str | None = None,
    annotations: dict[str, str] | None = None,
    created: str = "2025-06-03T09:00:00Z",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "img",
                "resources": {"limits": dict(resources), "requests": dict(resources)},
            }
        ]
    }
    if node:
        spec["nodeName"] = node
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "creationTimestamp": created,
    }
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase or ("Running" if node else "Pending")},
    }


def mig_pod(name: str, profile: str, node: str | None = None, count: int = 1) -> dict[str, Any]:
    return pod_obj(name, {f"nvidia.com/mig-{profile}": str(count)}, node)
