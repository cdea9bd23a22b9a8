"""Balance part: Kubernetes' NodeResourcesBalancedAllocation applied to GPU, CPU and memory.

    f_r = min(1, (requested_r + pod_r) / allocatable_r)   for r in {GPU, CPU, memory}, skipping allocatable 0
    balance = 100·(1 - std(f))                            (population std over the resources kept)

A node whose GPUs fill up while its CPU and memory stay idle (or the reverse) strands capacity.
"""

from __future__ import annotations

import numpy as np

from extender.inventory import PodAsk
from extender.scores.resource import gpu_utilisation_after
from extender.state import ClusterState, IntArray
from extender.topology import FloatArray


def _fraction(cap: np.ndarray, left: np.ndarray, ask: int) -> tuple[FloatArray, np.ndarray]:
    capf = cap.astype(np.float64)
    used = capf - left + ask
    frac = np.divide(used, capf, out=np.zeros(len(cap)), where=capf > 0)
    return np.clip(frac, 0.0, 1.0), capf > 0


def balance_scores(state: ClusterState, rows: IntArray, ask: PodAsk) -> FloatArray:
    gpu = gpu_utilisation_after(state, rows, ask)
    cpu, has_cpu = _fraction(state.cpu_cap[rows], state.cpu_left[rows], ask.req.cpu_milli)
    mem, has_mem = _fraction(state.mem_cap[rows], state.mem_left[rows], ask.req.memory_mib)
    f = np.stack([gpu, cpu, mem])
    w = np.stack([np.ones(len(rows), dtype=np.bool_), has_cpu, has_mem]).astype(np.float64)
    n = w.sum(axis=0)
    mean = (f * w).sum(axis=0) / n
    std = np.sqrt((((f - mean) ** 2) * w).sum(axis=0) / n)
    return 100.0 * (1.0 - std)  # type: ignore[no-any-return]
