"""Demo act: a short trace replay (a slice of the bundled Alibaba trace) through the published baselines and
the extender core, printed as a table."""

from __future__ import annotations

from typing import Any

from extender.replay import datasets, engine
from extender.replay.arrivals import generate
from extender.replay.trace import Trace, load_trace


def _slice(trace: Trace, nodes: int, pods: int) -> Trace:
    """Every k-th node and pod: the mix stays the trace's, the run takes well under a second."""
    ns = trace.nodes[:: max(1, len(trace.nodes) // nodes)]
    step = max(1, len(trace.pods) // pods)
    return Trace(trace.workload, ns, trace.pod_names[::step], trace.pods[::step])


def demo_trace() -> Trace:
    pods = datasets.pods_csv("default")
    d = datasets.find(datasets.NODES_CSV, pods) or datasets.BUNDLED
    return _slice(load_trace(d / datasets.NODES_CSV, d / pods), 120, 1000)


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
