"""Lay out the FGD study's own workloads as a trace folder that `simulate` and `bench_sim` read, from a
local checkout of the study's repository (hkust-adsl/kubernetes-scheduler-simulator): every published
workload, including the ones above 130 % of capacity that the study tunes down (multigpu30/40/50).

    python -m bench.study_data --study CHECKOUT [--out bench/results/study-data] [--seeds 42-51]

Writes `<out>/openb_node_list_gpu_node.csv` and `openb_pod_list_<w>.csv` (copied), `published/
alloc_curves_per_seed.csv` (the study's `analysis_allo_discrete.csv` in our long format) and `replay/`: the
exact arrival order and node tie-break ranks of each published run, drawn by `bench/study_arrivals` (Go, our
code: needs the `go` command, e.g. Debian's golang-go). Nothing of it is committed: the study's data stays
in its repository.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from extender.replay.cli import parse_seeds

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "bench" / "study_arrivals"
NODES = "openb_node_list_gpu_node.csv"
RESULTS = Path("experiments/analysis/expected_results/analysis_allo_discrete.csv")


def published_long(src: Path, dst: Path) -> list[str]:
    """The study's wide per-seed table → rows `workload, policy, seed, arrived_pct, alloc_pct`; workloads."""
    workloads: list[str] = []
    with src.open(newline="") as fh, dst.open("w", newline="") as out:
        reader = csv.reader(fh)
        header = next(reader)
        ks = header[5:]
        writer = csv.writer(out)
        writer.writerow(["workload", "policy", "seed", "arrived_pct", "alloc_pct"])
        for row in reader:
            workload = row[0].removeprefix("openb_pod_list_")
            if workload not in workloads:
                workloads.append(workload)
            for k, v in zip(ks, row[5:], strict=False):
                if v != "":
                    writer.writerow([workload, row[1], row[3], k, v])
    return workloads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="study_data", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--study", type=Path, required=True, help="checkout of the study's repository")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "study-data")
    ap.add_argument("--seeds", default="42-51")
    args = ap.parse_args(argv)
    csv_dir = args.study / "data" / "csv"
    if not (csv_dir / NODES).is_file() or not (args.study / RESULTS).is_file():
        raise SystemExit(f"study_data: {args.study} is not a checkout of the study (no data/csv/{NODES})")
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            "study_data: needs the `go` command for the exact arrival order (apt-get install golang-go)"
        )
    (args.out / "published").mkdir(parents=True, exist_ok=True)
    (args.out / "replay").mkdir(exist_ok=True)
    workloads = published_long(args.study / RESULTS, args.out / "published" / "alloc_curves_per_seed.csv")
    shutil.copyfile(csv_dir / NODES, args.out / NODES)
    binary = args.out / "study_arrivals"
    # rand.Seed seeds the global source up to Go 1.23; later Go needs this setting
    env = {**os.environ, "GODEBUG": "randseednop=0"}
    subprocess.run([go, "build", "-o", str(binary.resolve()), "."], cwd=TOOL, check=True, env=env)
    for w in workloads:
        pods = args.out / f"openb_pod_list_{w}.csv"
        shutil.copyfile(csv_dir / pods.name, pods)
        for seed in parse_seeds(args.seeds):
            cmd = [str(binary), "-nodes", str(args.out / NODES), "-pods", str(pods), "-seed", str(seed)]
            subprocess.run([*cmd, "-out", str(args.out / "replay")], check=True, env=env)
        print(f"{w}: replay files for seeds {args.seeds}", file=sys.stderr)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
