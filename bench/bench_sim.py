"""`make bench-sim`: the full replay table - every policy x seeds 42..51 x the four shared workloads, with
the published arrival orders - compared with the study's per-seed results.

Writes `bench/results/sim_runs.csv` (one row per run), `bench/results/sim_table.md` (ours vs published, mean
at arrived = 100 %) and `docs/img/sim_default_alloc.png` (Fig. 9-style curves for `default`).

    python -m bench.bench_sim [--workloads default,…] [--policies …] [--seeds 42-51] [--jobs N]

`extender` runs the extender core with the service's settings (env GPU_AUTOSCALER_* honoured; the defaults:
resource_policy=fragmentation, weights 0.40/0.35/0.25); `extender-binpack` / `extender-spread` run it with
that resource policy and the default weights (`extender-binpack` = the defaults before issue 7).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from extender.replay import engine, output
from extender.replay.arrivals import load_replay
from extender.replay.cli import parse_seeds
from extender.replay.policies import BASELINES, PUBLISHED_NAMES
from extender.replay.trace import load_trace

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("default", "multigpu20", "gpushare40", "gpuspec10")
DATA_CANDIDATES = (
    os.environ.get("GPU_AUTOSCALER_TRACE_DIR", ""),
    str(ROOT / "shared" / "data" / "alibaba-gpu-v2023"),
    "/work/shared/data/alibaba-gpu-v2023",
)


def data_dir() -> Path:
    for cand in DATA_CANDIDATES:
        if cand and (Path(cand) / "openb_node_list_gpu_node.csv").is_file():
            return Path(cand)
    raise SystemExit("bench_sim: trace data not found (set GPU_AUTOSCALER_TRACE_DIR)")


def _config(policy: str) -> Any:
    """`extender-<resource policy>` → the core's default weights with that resource policy."""
    if not policy.startswith("extender-"):
        return None
    from extender.core import ScoringConfig

    return ScoringConfig(resource_policy=policy.removeprefix("extender-"))


def run_one(workload: str, policy: str, seed: int) -> dict[str, Any]:
    d = data_dir()
    trace = load_trace(d / "openb_node_list_gpu_node.csv", d / f"openb_pod_list_{workload}.csv")
    arrivals = load_replay(d / "replay", trace, seed)
    name = "extender" if policy.startswith("extender-") else policy
    res = engine.run(trace, arrivals, name, config=_config(policy))
    res.policy = policy
    return {"workload": workload, "result": res}


def published() -> dict[tuple[str, str, int], float]:
    out: dict[tuple[str, str, int], float] = {}
    with (data_dir() / "published" / "alloc_curves_per_seed.csv").open() as fh:
        for r in csv.DictReader(fh):
            if r["arrived_pct"] == "100":
                out[(r["workload"], r["policy"], int(r["seed"]))] = float(r["alloc_pct"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_sim", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--policies", default=",".join((*BASELINES, "extender", "extender-binpack")))
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "sim_default_alloc.png")
    args = ap.parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    policies = [p for p in args.policies.split(",") if p]
    seeds = parse_seeds(args.seeds)
    tasks = [(w, p, s) for w in workloads for p in policies for s in seeds]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if args.jobs <= 1:
        for i, (w, p, s) in enumerate(tasks, 1):
            rows.append(run_one(w, p, s))
            r = rows[-1]["result"]
            print(f"[{i}/{len(tasks)}] {w} {p} {s}: {r.curve.get(100)} ({r.seconds:.1f} s)", file=sys.stderr)
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futs = [pool.submit(run_one, w, p, s) for (w, p, s) in tasks]
            for i, f in enumerate(futs, 1):
                rows.append(f.result())
                r = rows[-1]["result"]
                done = f"[{i}/{len(tasks)}] {r.workload} {r.policy} {r.seed}"
                print(f"{done}: {r.curve.get(100)}", file=sys.stderr)
    pub = published()
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "sim_runs.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["workload", "policy", "seed", "alloc_at_100", "published_at_100", "failed", "seconds"])
        for row in rows:
            r = row["result"]
            w = row["workload"]
            p_val = pub.get((w, PUBLISHED_NAMES.get(r.policy, ""), r.seed))
            wr.writerow([w, r.policy, r.seed, r.curve.get(100), p_val, r.failed_pods, f"{r.seconds:.2f}"])
    lines = [
        "| workload | policy | ours: mean at 100 % | published mean | max abs per-seed diff | mean s/run |",
        "|---|---|---|---|---|---|",
    ]
    for w in workloads:
        for p in policies:
            rs = [row["result"] for row in rows if row["workload"] == w and row["result"].policy == p]
            ours = statistics.mean(r.curve[100] for r in rs)
            pubs = [pub.get((w, PUBLISHED_NAMES.get(p, ""), r.seed)) for r in rs]
            known = [x for x in pubs if x is not None]
            pmean = f"{statistics.mean(known):.2f}" if known else "—"
            diffs = [abs(r.curve[100] - x) for r, x in zip(rs, pubs, strict=True) if x is not None]
            dmax = f"{max(diffs):.2f}" if diffs and p != "random" else "—"
            secs = statistics.mean(r.seconds for r in rs)
            lines.append(f"| {w} | {p} | {ours:.2f} | {pmean} | {dmax} | {secs:.1f} |")
    table = "\n".join(lines)
    (args.out / "sim_table.md").write_text(table + "\n")
    print(table)
    default_runs = [row["result"] for row in rows if row["workload"] == "default"]
    if default_runs and output.write_plot(args.plot, "openb_pod_list_default", default_runs):
        print(f"plot: {args.plot}", file=sys.stderr)
    print(f"{len(tasks)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
