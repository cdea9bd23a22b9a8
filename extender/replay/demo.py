"""Demo act: a short trace replay (a slice of the Alibaba trace, or synthetic rows when the shared data is
absent) through the published baselines and the extender core, printed as a table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from extender.arrays import NodeCapacity, PodRequest
from extender.replay import engine
from extender.replay.arrivals import generate
from extender.replay.trace import Trace, load_trace

_DATA = (
    os.environ.get("GPU_AUTOSCALER_TRACE_DIR", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data" / "alibaba-gpu-v2023"),
    "/work/shared/data/alibaba-gpu-v2023",
)


def _slice(trace: Trace, nodes: int, pods: int) -> Trace:
    """Every k-th node and pod: the mix stays the trace's, the run takes well under a second."""
    ns = trace.nodes[:: max(1, len(trace.nodes) // nodes)]
    step = max(1, len(trace.pods) // pods)
    return Trace(trace.workload, ns, trace.pod_names[::step], trace.pods[::step])


def _synthetic() -> Trace:
    nodes = tuple(NodeCapacity(f"node-{i:02d}", 96000, 393216, 8, "G2") for i in range(12))
    shapes = [
        PodRequest(8000, 16384, 1, 1000),
        PodRequest(4000, 8192, 1, 500),
        PodRequest(6000, 8192, 1, 250),
    ]
    shapes += [PodRequest(32000, 65536, 4, 1000), PodRequest(2000, 4096, 0, 0)]
    pods = tuple(shapes[i % len(shapes)] for i in range(120))
    return Trace("synthetic", nodes, tuple(f"pod-{i:03d}" for i in range(len(pods))), pods)


def demo_trace() -> Trace:
    for cand in _DATA:
        if cand and (Path(cand) / "openb_node_list_gpu_node.csv").is_file():
            d = Path(cand)
            full = load_trace(d / "openb_node_list_gpu_node.csv", d / "openb_pod_list_default.csv")
            return _slice(full, 120, 1000)
    return _synthetic()


def act(run: Any) -> None:
    """Replay a small slice under each policy and print allocation at arrived = 100 %."""
    from rich.table import Table

    console = run.console
    console.rule("[bold]Trace replay (gpu-autoscaler simulate)")
    trace = demo_trace()
    arrivals = generate(trace, 42)
    table = Table("policy", "pods", "failed", "alloc @ 100 %", "alloc @ 130 %", "seconds")
    for policy in ("random", "bestfit", "fgd", "extender"):
        try:
            res = engine.run(trace, arrivals, policy)
        except Exception as exc:  # the extender core may be configured oddly in a demo: show, don't crash
            table.add_row(policy, "-", "-", f"error: {exc}"[:40], "-", "-")
            continue
        last = max(res.curve) if res.curve else None
        table.add_row(
            policy,
            str(res.arrived_pods),
            str(res.failed_pods),
            f"{res.curve.get(100, float('nan')):.2f}",
            f"{res.curve[last]:.2f}" if last is not None else "-",
            f"{res.seconds:.2f}",
        )
    console.print(f"{trace.workload}: {len(trace.nodes)} nodes, {trace.total_gpus} GPUs, arrivals to 130 %")
    console.print(table)
