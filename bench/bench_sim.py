"""`make bench-sim`: the replay table - every policy x seeds 42..51 x the published workloads found, with the
published arrival orders, compared with the study's per-seed results - and the `extender` policy against FGD
on workload variants built from the default trace by the study's recipes (extender/replay/variants.py).

Writes `bench/results/sim_runs.csv` (one row per run), `bench/results/sim_table.md` (ours vs published, mean
at arrived = 100 %, and the variants table) and `docs/img/sim_default_alloc.png` (Fig. 9-style curves).

    python -m bench.bench_sim [--data DIR] [--workloads default,…|all] [--policies …] [--seeds 42-51]
                              [--variants multigpu50,…] [--variant-seeds 42-51] [--jobs N]

Published workloads come from `--data` (a trace folder in the shared layout, e.g. one written by
`python -m bench.study_data`, which adds the study's tune-down workloads multigpu30/40/50) or the folders of
extender/replay/datasets.py. By default every published workload of the four shared ones plus the tune-down
ones present is run. `extender` runs the extender core with the service's settings (env GPU_AUTOSCALER_*
honoured); `extender-binpack` / `extender-spread` override only the resource policy.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from extender.replay import datasets, engine, output, variants
from extender.replay.arrivals import generate, load_replay
from extender.replay.cli import parse_seeds
from extender.replay.policies import BASELINES, PUBLISHED_NAMES
from extender.replay.trace import Trace, load_trace

ROOT = Path(__file__).resolve().parents[1]
SHARED_WORKLOADS = ("default", "multigpu20", "gpushare40", "gpuspec10")
#: the study's workloads whose demand passes 130 % of capacity (the replay tunes them down)
TUNE_DOWN_WORKLOADS = ("multigpu30", "multigpu40", "multigpu50")
VARIANTS = ("multigpu50", "gpushare80", "gpushare100", "gpuspec10", "gpuspec33", "cpu050", "cpu250")


def data_dir(workload: str, override: Path | None, seed: int | None = None) -> Path:
    need = [datasets.NODES_CSV, datasets.pods_csv(workload)]
    if seed is not None:
        need.append(f"replay/openb_pod_list_{workload}_seed{seed}_arrivals.csv.gz")
    if override is not None:
        if all((override / f).is_file() for f in need):
            return override
        raise SystemExit(f"bench_sim: {override} lacks {', '.join(need)}")
    found = datasets.find(*need)
    if found is None:
        raise SystemExit(f"bench_sim: no trace folder has {', '.join(need)} (give --data)")
    return found


def _load(workload: str, override: Path | None, seed: int | None = None) -> tuple[Path, Trace]:
    d = data_dir(workload, override, seed)
    return d, load_trace(d / datasets.NODES_CSV, d / datasets.pods_csv(workload))


def run_one(workload: str, policy: str, seed: int, override: Path | None) -> dict[str, Any]:
    """One published workload x policy x seed, with the published arrival order."""
    d, trace = _load(workload, override, seed)
    res = engine.run(trace, load_replay(d / "replay", trace, seed), policy)
    return {"workload": workload, "result": res}


def run_variant(variant: str, policy: str, seed: int, override: Path | None) -> dict[str, Any]:
    """One variant of the default trace x policy x seed, arrivals by the study's method on our RNG."""
    _, base = _load("default", override)
    trace = variants.build(base, variant)
    res = engine.run(trace, generate(trace, seed), policy)
    return {"workload": trace.short_name, "result": res}  # default-<variant>: apart from the study's names


def published(dirs: set[Path]) -> dict[tuple[str, str, int], float]:
    out: dict[tuple[str, str, int], float] = {}
    for d in dirs:
        path = d / "published" / "alloc_curves_per_seed.csv"
        if not path.is_file():
            continue
        with path.open() as fh:
            for r in csv.DictReader(fh):
                if r["arrived_pct"] == "100":
                    out[(r["workload"], r["policy"], int(r["seed"]))] = float(r["alloc_pct"])
    return out


def default_workloads(override: Path | None) -> list[str]:
    found = []
    for w in (*SHARED_WORKLOADS, *TUNE_DOWN_WORKLOADS):
        dirs = [override] if override is not None else datasets.candidates()
        if any((d / datasets.pods_csv(w)).is_file() for d in dirs):
            found.append(w)
    return found


def _execute(tasks: list[tuple[Any, ...]], jobs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if jobs <= 1:
        for i, (fn, *rest) in enumerate(tasks, 1):
            rows.append(fn(*rest))
            r = rows[-1]["result"]
            done = f"[{i}/{len(tasks)}] {rows[-1]['workload']} {r.policy} {r.seed}"
            print(f"{done}: {r.curve.get(100)} ({r.seconds:.1f} s)", file=sys.stderr)
        return rows
    with ProcessPoolExecutor(jobs) as pool:
        futs = [pool.submit(fn, *rest) for (fn, *rest) in tasks]
        for i, f in enumerate(futs, 1):
            rows.append(f.result())
            r = rows[-1]["result"]
            print(
                f"[{i}/{len(tasks)}] {rows[-1]['workload']} {r.policy} {r.seed}: {r.curve.get(100)}",
                file=sys.stderr,
            )
    return rows


def published_table(rows: list[dict[str, Any]], workloads: list[str], policies: list[str], pub: Any) -> str:
    lines = [
        "| workload | policy | ours: mean at 100 % | published mean | max abs per-seed diff | mean s/run |",
        "|---|---|---|---|---|---|",
    ]
    for w in workloads:
        for p in policies:
            rs = [row["result"] for row in rows if row["workload"] == w and row["result"].policy == p]
            if not rs:
                continue
            ours = statistics.mean(r.curve[100] for r in rs)
            pubs = [pub.get((w, PUBLISHED_NAMES.get(p, ""), r.seed)) for r in rs]
            known = [x for x in pubs if x is not None]
            pmean = f"{statistics.mean(known):.2f}" if known else "—"
            diffs = [abs(r.curve[100] - x) for r, x in zip(rs, pubs, strict=True) if x is not None]
            dmax = f"{max(diffs):.2f}" if diffs and p != "random" else "—"
            secs = statistics.mean(r.seconds for r in rs)
            lines.append(f"| {w} | {p} | {ours:.2f} | {pmean} | {dmax} | {secs:.1f} |")
    return "\n".join(lines)


def variant_table(rows: list[dict[str, Any]], names: list[str], policies: list[str]) -> str:
    """Variant x policy means at arrived = 100 %, and extender - fgd per seed (min, mean)."""
    head = " | ".join(policies)
    lines = [
        f"| variant | {head} | extender - fgd: mean (worst seed) | seeds |",
        "|---|" + "---|" * (len(policies) + 2),
    ]
    for v in names:
        by = {
            p: {
                row["result"].seed: row["result"].curve[100]
                for row in rows
                if row["workload"] == v and row["result"].policy == p
            }
            for p in policies
        }
        cells = [f"{statistics.mean(by[p].values()):.2f}" if by[p] else "—" for p in policies]
        gap = "—"
        if by.get("fgd") and by.get("extender"):
            diffs = [by["extender"][s] - by["fgd"][s] for s in by["fgd"] if s in by["extender"]]
            gap = f"{statistics.mean(diffs):+.2f} ({min(diffs):+.2f})"
        seeds = sorted(next(iter(by.values())).keys()) if by else []
        lines.append(
            f"| {v} | {' | '.join(cells)} | {gap} | {seeds[0]}-{seeds[-1]} |" if seeds else f"| {v} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_sim", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=None, help="trace folder (shared layout); default: found")
    ap.add_argument(
        "--workloads", default="", help="published workloads (default: those found; 'all': every)"
    )
    ap.add_argument("--policies", default=",".join((*BASELINES, "extender", "extender-binpack")))
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help="variants of the default trace ('' = none)"
    )
    ap.add_argument("--variant-policies", default="fgd,extender")
    ap.add_argument("--variant-seeds", default="42-51")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "sim_default_alloc.png")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if args.workloads == "all":  # every workload of the folder that has a replay for the first seed
        if args.data is None:
            raise SystemExit("bench_sim: --workloads all needs --data")
        workloads = sorted(
            p.stem.removeprefix("openb_pod_list_")
            for p in args.data.glob("openb_pod_list_*.csv")
            if (args.data / "replay" / f"{p.stem}_seed{seeds[0]}_arrivals.csv.gz").is_file()
        )
    else:
        workloads = [w for w in args.workloads.split(",") if w] or default_workloads(args.data)
    policies = [p for p in args.policies.split(",") if p]
    names = [v for v in args.variants.split(",") if v]
    for v in names:
        variants.parse(v)
    v_policies = [p for p in args.variant_policies.split(",") if p]
    tasks: list[tuple[Any, ...]] = [
        (run_one, w, p, s, args.data) for w in workloads for p in policies for s in seeds
    ]
    tasks += [
        (run_variant, v, p, s, args.data)
        for v in names
        for p in v_policies
        for s in parse_seeds(args.variant_seeds)
    ]
    t0 = time.perf_counter()
    rows = _execute(tasks, args.jobs)
    pub = published({data_dir(w, args.data) for w in workloads})
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "sim_runs.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["workload", "policy", "seed", "alloc_at_100", "published_at_100", "failed", "seconds"])
        for row in rows:
            r = row["result"]
            w = row["workload"]
            p_val = pub.get((w, PUBLISHED_NAMES.get(r.policy, ""), r.seed)) if w in workloads else None
            wr.writerow([w, r.policy, r.seed, r.curve.get(100), p_val, r.failed_pods, f"{r.seconds:.2f}"])
    table = published_table([r for r in rows if r["workload"] in workloads], workloads, policies, pub)
    if names:
        labels = [f"default-{v}" for v in names]
        v_rows = [r for r in rows if r["workload"] in labels]
        table += "\n\nVariants of the default trace (arrivals by the study's method on our RNG):\n\n"
        table += variant_table(v_rows, labels, v_policies)
    (args.out / "sim_table.md").write_text(table + "\n")
    print(table)
    default_runs = [row["result"] for row in rows if row["workload"] == "default"]
    if default_runs and output.write_plot(args.plot, "openb_pod_list_default", default_runs):
        print(f"plot: {args.plot}", file=sys.stderr)
    print(f"{len(tasks)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
