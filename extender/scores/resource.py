"""Resource part: GPU bin-packing (MostAllocated, default) or spreading (LeastAllocated), plus memory fit.

    util  = GPU milli in use after placing the pod / node GPU milli      (MIG pods: slices in use / slices)
    alloc = 100·util (binpack)  |  100·(1 - util) (spread)
    fit   = 100·asked GPU memory / node GPU memory   (only when the pod sets gpu-autoscaler.io/gpu-memory)
    resource = alloc, or 0.75·alloc + 0.25·fit when fit applies

Bin-packing keeps whole nodes free for big jobs; fit sends a 20 GiB ask to the smallest GPU that holds it.
"""

from __future__ import annotations

import numpy as np

from extender.arrays import GPU_MILLI, ClusterState, IntArray
from extender.inventory import PodAsk
from extender.kube_arrays import GpuClusterState
from extender.topology import FloatArray

ALLOC_WEIGHT = 0.75
FIT_WEIGHT = 0.25


def gpu_utilisation_after(state: ClusterState, rows: IntArray, ask: PodAsk) -> FloatArray:
    """Fraction 0..1 of the node's GPU capacity in use once the pod is placed."""
    if ask.mig and isinstance(state, GpuClusterState) and state.mig_cap.shape[1]:
        cap = state.mig_cap[rows].sum(axis=1).astype(np.float64)
        used = cap - np.maximum(state.mig_left[rows], 0).sum(axis=1) + sum(n for _, n in ask.mig)
        return np.clip(np.divide(used, cap, out=np.ones(len(rows)), where=cap > 0), 0.0, 1.0)
    cap = state.gpu_count[rows].astype(np.float64) * GPU_MILLI
    used = cap - state.gpu_left[rows].sum(axis=1) + ask.req.total_gpu_milli
    return np.clip(np.divide(used, cap, out=np.ones(len(rows)), where=cap > 0), 0.0, 1.0)


def memory_fit(state: ClusterState, rows: IntArray, ask: PodAsk) -> FloatArray | None:
    """100·need/GPU memory (smallest GPU that fits scores highest); None when the pod sets no minimum."""
    if not ask.gpu_memory_mib or ask.mig or not isinstance(state, GpuClusterState):
        return None
    mem = state.gpu_mem_mib[rows].astype(np.float64)
    fit = np.divide(float(ask.gpu_memory_mib) * 100.0, mem, out=np.zeros(len(rows)), where=mem > 0)
    return np.clip(fit, 0.0, 100.0)


def resource_scores(state: ClusterState, rows: IntArray, ask: PodAsk, policy: str) -> FloatArray:
    util = gpu_utilisation_after(state, rows, ask)
    if policy == "spread":
        alloc = 100.0 * (1.0 - util)
    elif policy == "binpack":
        alloc = 100.0 * util
    else:
        raise ValueError(f"unknown resource policy {policy!r} (binpack | spread | fragmentation)")
    fit = memory_fit(state, rows, ask)
    return alloc if fit is None else ALLOC_WEIGHT * alloc + FIT_WEIGHT * fit
