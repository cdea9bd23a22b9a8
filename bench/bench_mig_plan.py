"""How long one MIG plan takes on a synthetic cluster (the controller plans every `mig_interval` seconds).

    python -m bench.bench_mig_plan [--nodes 10,100,500] [--repeat 5]

Nodes: 8x A100-80GB each, all laid out `all-1g.10gb`, half of them running a 1g pod (unknown per-GPU use, so
those are held); demand: three pending 3g.40gb pods per node; layouts: the bundled GPU Operator defaults.
Prints the median wall time of `plan()` (inputs already parsed) for max_parallel 1 and 10.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from app.cluster.selectors import parse_selector
from app.gpu.migparted import bundled
from app.mig.inputs import mig_demand, mig_nodes, pod_facts
from app.mig.plan import PlanParams, plan


def _node(name: str) -> dict[str, Any]:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "mixed",
        "nvidia.com/mig.config": "all-1g.10gb",
        "nvidia.com/mig.config.state": "success",
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "56"}},
    }


def _pod(name: str, profile: str, node: str | None) -> dict[str, Any]:
    res = {f"nvidia.com/mig-{profile}": "1"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"limits": res, "requests": res}}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "b"},
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", default="10,100,500")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configs = bundled()
    for n in (int(x) for x in args.nodes.split(",")):
        nodes = [_node(f"n{i}") for i in range(n)]
        pods = [_pod(f"p{i}", "3g.40gb", None) for i in range(3 * n)]
        pods += [_pod(f"r{i}", "1g.10gb", f"n{i}") for i in range(0, n, 2)]
        facts = pod_facts(pods)
        inputs = mig_nodes(nodes, facts, parse_selector("nvidia.com/mig.config"))
        demand = mig_demand(facts, {})
        for parallel in (1, 10):
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = plan(inputs, demand, configs, PlanParams(now=time.time(), max_parallel=parallel))
                times.append(time.perf_counter() - start)
            changes = sum(p.action == "reconfigure" for p in result.nodes)
            ms = statistics.median(times) * 1000
            print(f"{n:4d} nodes x 8 GPUs, max_parallel {parallel:2d}: {ms:7.1f} ms ({changes} reconfigure)")


if __name__ == "__main__":
    main()
