"""The service's own Prometheus registry (not the process-global default).

Each capability declares its metrics at the top of the module that owns them, with `registry=REGISTRY`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD_INFO = Gauge("gpu_autoscaler_build_info", "Build information", ["version"], registry=REGISTRY)
CLUSTER_READY = Gauge("gpu_autoscaler_cluster_ready", "1 once the cluster view is loaded", registry=REGISTRY)

__all__ = ["BUILD_INFO", "CLUSTER_READY", "CONTENT_TYPE_LATEST", "REGISTRY", "render"]


def render() -> bytes:
    return generate_latest(REGISTRY)
