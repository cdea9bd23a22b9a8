"""A real kube-scheduler with and without the extender: pods placed and pods per second.

    python -m bench.bench_kube_scheduler [--nodes 100] [--pods 500] [--rounds 3]

The FGD study's simulator (kube-scheduler v1.20's framework, `../shared/tools/kube-scheduler-sim/`) schedules
`--pods` pods of 1 or 2 GPUs (seeded) onto `--nodes` 8x H100 nodes (~92 % of the GPUs asked), alone and with
the service as its extender (weight 5) in both node modes; the service runs as `gpu-autoscaler serve` in its
own process. Rounds alternate alone / nodeCacheCapable / full-Nodes so drifting machine load hits each alike;
the table gives the median pods/s per mode and its ratio to kube-scheduler alone. Targets (issue 10): every
pod kube-scheduler alone places is placed with the extender, at >= 0.8x its throughput.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from typing import Any

from tests.extender.conftest import make_node
from tests.integration.kube_scheduler_sim import gpu_pod, renamed, run_simon, serve, simon_node_names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rng = random.Random(7)
    nodes = [make_node(f"gpu-{i:03d}") for i in range(args.nodes)]
    pods = [gpu_pod(f"job-{i:04d}", rng.choice([1, 2]), cpu="2", memory="8Gi") for i in range(args.pods)]
    names = simon_node_names(nodes)
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "nodeCacheCapable": [], "full-Nodes": []}
    for _ in range(args.rounds):
        res = run_simon(nodes, pods, None)
        runs["alone"].append({"placed": res.placed, "pods_per_s": res.placed / res.seconds})
        for mode, cache in (("nodeCacheCapable", True), ("full-Nodes", False)):
            view = renamed(nodes, names) if cache else []
            with serve(view, "--assume-ttl-seconds", "3600") as svc:
                res = run_simon(nodes, pods, svc.url, node_cache_capable=cache)
                stats = svc.stats()
            ms = {
                verb: 1000 * stats[f"{verb}_sum"] / stats[f"{verb}_count"]
                for verb in ("filter", "prioritize")
                if stats.get(f"{verb}_count")
            }
            runs[mode].append(
                {
                    "placed": res.placed,
                    "pods_per_s": res.placed / res.seconds,
                    "server_ms": ms,
                    "contradicted": stats.get("assumptions_contradicted", 0),
                }
            )
    base = statistics.median(r["pods_per_s"] for r in runs["alone"])
    rows = []
    for mode, rs in runs.items():
        rate = statistics.median(r["pods_per_s"] for r in rs)
        row: dict[str, Any] = {
            "mode": mode,
            "placed": min(r["placed"] for r in rs),
            "of": args.pods,
            "pods_per_s": round(rate, 1),
            "ratio": round(rate / base, 2),
        }
        if mode != "alone":
            for verb in ("filter", "prioritize"):
                row[f"{verb}_ms"] = round(statistics.median(r["server_ms"].get(verb, 0.0) for r in rs), 2)
            row["contradicted"] = max(r["contradicted"] for r in rs)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
