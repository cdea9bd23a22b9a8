"""The replay loop and the study's metric.

Pods arrive one at a time, never leave; a pod no node can take is dropped and counted (no retry). After every
arrival the allocated and arrived GPU milli are recorded, and the curve is sampled as the study's
`merge_alloc_discrete.py` does (§9): per integer k, the mean over events whose arrived share rounds to k of
the allocated share rounded to 2 decimals; if none, events with arrived in [k-1, k+1].
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extender import fragmentation as fr
from extender.arrays import ClusterState, IntArray
from extender.replay.arrivals import Arrivals
from extender.replay.policies import make_policy
from extender.replay.trace import Trace

SAMPLE_POINTS = (90, 100, 110, 120, 130)


@dataclass
class RunResult:
    workload: str
    policy: str
    seed: int
    arrived_pods: int
    failed_pods: int
    seconds: float
    total_gpus: int
    arrived_milli: IntArray = field(repr=False)
    used_milli: IntArray = field(repr=False)
    curve: dict[int, float] = field(default_factory=dict)

    def alloc_at(self, k: int) -> float | None:
        return self.curve.get(k)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "seed": self.seed,
            "arrived_pods": self.arrived_pods,
            "failed_pods": self.failed_pods,
            "seconds": round(self.seconds, 2),
            "alloc_pct_at": {str(k): self.curve[k] for k in SAMPLE_POINTS if k in self.curve},
        }


def sample_curve(arrived_milli: IntArray, used_milli: IntArray, total_gpus: int) -> dict[int, float]:
    """k → allocation % exactly as the study samples it (Python round on both axes, mean, 2 decimals)."""
    arrive = np.array([round(float(a) / total_gpus / 10, 0) for a in arrived_milli], dtype=np.int64)
    alloc = np.array([round(float(u) / total_gpus / 10, 2) for u in used_milli], dtype=np.float64)
    out: dict[int, float] = {}
    if len(arrive) == 0:
        return out
    for k in range(0, int(arrive.max()) + 1):
        sel = alloc[arrive == k]
        if len(sel) == 0:
            sel = alloc[(arrive >= k - 1) & (arrive <= k + 1)]
        if len(sel):
            # pandas' mean is a numpy float64, whose round() is numpy's (scale, rint, unscale)
            out[k] = float(np.round(np.float64(np.mean(sel)), 2))
    return out


def run(
    trace: Trace,
    arrivals: Arrivals,
    policy_name: str,
    typical: fr.TypicalPods | None = None,
    config: Any | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Replay `arrivals` of `trace` under one policy."""
    start = time.perf_counter()
    state = ClusterState.from_nodes(trace.nodes)
    if policy_name == "fgd" and typical is None:
        typical = fr.TypicalPods.from_requests(trace.pods)
    policy = make_policy(policy_name, state, arrivals.rank, arrivals.seed, typical=typical, config=config)
    n = len(arrivals.order)
    arrived = np.zeros(n, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    a_total = u_total = failed = 0
    pods = trace.pods
    for e, pi in enumerate(arrivals.order):
        req = pods[int(pi)]
        a_total += req.total_gpu_milli
        rows = np.flatnonzero(state.feasible(req))
        if len(rows) == 0:
            failed += 1
        else:
            row, gpus = policy.choose(req, rows)
            state.place(row, req, gpus)
            policy.placed(row, req, gpus)
            u_total += req.total_gpu_milli
        arrived[e] = a_total
        used[e] = u_total
        if progress is not None and (e + 1) % 500 == 0:
            progress(500)
    if progress is not None:
        progress(n % 500)
    seconds = time.perf_counter() - start
    return RunResult(
        workload=trace.workload,
        policy=policy_name,
        seed=arrivals.seed,
        arrived_pods=n,
        failed_pods=failed,
        seconds=seconds,
        total_gpus=trace.total_gpus,
        arrived_milli=arrived,
        used_milli=used,
        curve=sample_curve(arrived, used, trace.total_gpus),
    )
