"""Cluster view: the one small interface between Kubernetes I/O and the rest of the service."""

from app.cluster.base import KINDS, ClusterEvent, ClusterView, object_key
from app.cluster.snapshot import SnapshotCluster, SnapshotError, load_snapshot

__all__ = [
    "KINDS",
    "ClusterEvent",
    "ClusterView",
    "SnapshotCluster",
    "SnapshotError",
    "load_snapshot",
    "object_key",
]
