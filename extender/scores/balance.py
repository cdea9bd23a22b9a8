"""Balance part: how evenly a node's resources fill up.

`binpack` / `spread`: Kubernetes' NodeResourcesBalancedAllocation applied to GPU, CPU and memory.

    f_r = min(1, (requested_r + pod_r) / allocatable_r)   for r in {GPU, CPU, memory}, skipping allocatable 0
    balance = 100·(1 - std(f))                            (population std over the resources kept)

A node whose GPUs fill up while its CPU and memory stay idle (or the reverse) strands capacity.

`fragmentation`: GPU-first balance. On a GPU cluster the resource worth protecting is the GPU, so only one
direction of imbalance strands anything: CPU or memory running *ahead* of the GPUs (a node left with idle
GPUs but too little CPU / memory for the pods that want them). GPUs running ahead of CPU is what the
fragmentation policy asks for (CPU-only pods onto GPU-full nodes), so it is not penalised:

    excess_r = max(0, f_r - f_GPU)                          for r in {CPU, memory}, skipping allocatable 0
    balance  = 100·(1 - mean(excess_r))

The symmetric rule fights the fragmentation part (it spreads pods to even out each node, which strands GPUs);
the GPU-first rule composes with it at the default weights 0.40/0.35/0.25. In the Alibaba trace replay
(docs/simulation.md) it adds 0.1 to 0.6 point over no balance at all, where the symmetric rule loses 0.1.

GPU-first balance pulls CPU-heavy pods towards CPU-rich nodes. Those may be the nodes that some pods cannot
do without: the only model a pod accepts (the trace's T4 nodes: 52 cores per GPU, asked for by a third of
the constrained pods), the only nodes with 8 GPUs, or with 120 cores. The pull hands their GPUs to pods
that could run anywhere. So under `fragmentation` the balance of a node, for a pod that asks GPUs, is
scaled by 1 - the pressure on its kind of node (`extender.fragmentation.BoundDemand`: how much the pods
seen that fit only some kinds lean on this one, 0..1): unchanged where nothing needs the kind in particular.
"""

from __future__ import annotations

import numpy as np

from extender.arrays import ClusterState, IntArray
from extender.inventory import PodAsk
from extender.scores.resource import gpu_utilisation_after
from extender.topology import FloatArray


def _fraction(cap: np.ndarray, left: np.ndarray, ask: int) -> tuple[FloatArray, np.ndarray]:
    capf = cap.astype(np.float64)
    used = capf - left + ask
    frac = np.divide(used, capf, out=np.zeros(len(cap)), where=capf > 0)
    return np.clip(frac, 0.0, 1.0), capf > 0


def balance_scores(
    state: ClusterState,
    rows: IntArray,
    ask: PodAsk,
    policy: str = "binpack",
    pressure: FloatArray | None = None,
) -> FloatArray:
    """0..100 per row, higher = better balanced after placing the pod (rule by resource policy, above).
    `pressure` (per row, 0..1) scales the `fragmentation` balance by 1 - pressure."""
    gpu = gpu_utilisation_after(state, rows, ask)
    cpu, has_cpu = _fraction(state.cpu_cap[rows], state.cpu_left[rows], ask.req.cpu_milli)
    mem, has_mem = _fraction(state.mem_cap[rows], state.mem_left[rows], ask.req.memory_mib)
    if policy == "fragmentation":
        balance = gpu_first_balance(gpu, cpu, mem, has_cpu, has_mem)
        if pressure is not None:
            balance = balance * (1.0 - pressure)
        return balance
    f = np.stack([gpu, cpu, mem])
    w = np.stack([np.ones(len(rows), dtype=np.bool_), has_cpu, has_mem]).astype(np.float64)
    n = w.sum(axis=0)
    mean = (f * w).sum(axis=0) / n
    std = np.sqrt((((f - mean) ** 2) * w).sum(axis=0) / n)
    return 100.0 * (1.0 - std)  # type: ignore[no-any-return]


def gpu_first_balance(
    gpu: FloatArray, cpu: FloatArray, mem: FloatArray, has_cpu: np.ndarray, has_mem: np.ndarray
) -> FloatArray:
    """100·(1 - mean over CPU/memory of how far its used fraction runs ahead of the GPU's); 100 when neither
    CPU nor memory is known."""
    excess = np.maximum(cpu - gpu, 0.0) * has_cpu + np.maximum(mem - gpu, 0.0) * has_mem
    n = has_cpu.astype(np.float64) + has_mem.astype(np.float64)
    mean = np.divide(excess, n, out=np.zeros(len(gpu)), where=n > 0)
    return np.clip(100.0 * (1.0 - mean), 0.0, 100.0)  # type: ignore[no-any-return]
