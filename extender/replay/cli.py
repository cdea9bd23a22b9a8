"""`gpu-autoscaler simulate`: replay a pod trace through the scheduling core (shared/spec/interfaces.md).

Runs policies x seeds, one process each with `--jobs N`; a progress bar on stderr (stdout stays clean JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.cli import CliError, writable_folder
from extender.replay import datasets, engine, output, variants
from extender.replay.arrivals import Arrivals, generate, load_replay
from extender.replay.engine import RunResult
from extender.replay.policies import POLICIES
from extender.replay.trace import Trace, TraceError, load_trace


def parse_seeds(text: str) -> list[int]:
    """`42-51`, `42,43` or a mix (`42,45-47`) → seeds in order, no duplicates."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = (
                    part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-")[0], "")
                )
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise CliError(f"--seeds: {part!r} is not a seed or a range like 42-51") from None
    if not seeds:
        raise CliError("--seeds: no seed given")
    return list(dict.fromkeys(seeds))


def parse_policies(text: str) -> list[str]:
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise CliError("--policy: no policy given")
    for n in names:
        if n not in POLICIES:
            raise CliError(f"--policy: unknown policy {n!r} (choose from {', '.join(POLICIES)})")
    return list(dict.fromkeys(names))


def register(sub: Any) -> None:
    p = sub.add_parser("simulate", help="replay a pod trace (Alibaba openb CSVs) through the scheduling core")
    p.add_argument(
        "--nodes",
        type=Path,
        default=datasets.BUNDLED / datasets.NODES_CSV,
        help="node CSV: sn, cpu_milli, memory_mib, gpu, model (default: the bundled Alibaba GPU nodes)",
    )
    p.add_argument(
        "--pods",
        type=Path,
        default=datasets.BUNDLED / datasets.pods_csv("default"),
        help="pod CSV: name, cpu_milli, memory_mib, num_gpu, … (default: the bundled Alibaba default trace)",
    )
    p.add_argument("--policy", default="extender", help=f"comma list of {', '.join(POLICIES)}")
    p.add_argument("--seeds", default="42", help="42-51 or 42,43")
    p.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="folder of published arrival/tie-break files; 'bundled': the default trace's seed 42",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="replay a variant of the pod list built by the study's recipes: multigpu50, gpushare80, "
        "gpuspec33, cpu250 … (extender/replay/variants.py; arrivals from our RNG)",
    )
    p.add_argument("--tune", type=float, default=1.3, help="inflate arrivals to this x GPU capacity")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--out", type=Path, default=None, help="folder for the curves CSV and the PNG plot")
    p.add_argument("--output", choices=["table", "json"], default="table")
    p.set_defaults(func=main)


@dataclass(frozen=True)
class Job:
    nodes: str
    pods: str
    replay: str | None
    tune: float
    variant: str | None
    policy: str
    seed: int


@functools.lru_cache(maxsize=4)
def _trace(nodes: str, pods: str, variant: str | None = None) -> Trace:
    trace = load_trace(Path(nodes), Path(pods))
    return variants.build(trace, variant) if variant else trace


def _arrivals(job: Job, trace: Trace) -> Arrivals:
    if job.replay:
        return load_replay(Path(job.replay), trace, job.seed)
    return generate(trace, job.seed, job.tune)


def run_job(job: Job, queue: Any = None) -> RunResult:
    """One policy x seed (also the worker of --jobs: everything it needs is in `job`)."""
    trace = _trace(job.nodes, job.pods, job.variant)
    arrivals = _arrivals(job, trace)
    progress = (lambda n: queue.put(n)) if queue is not None else None
    return engine.run(trace, arrivals, job.policy, progress=progress)


def _check_extender() -> None:
    try:
        from extender import core  # noqa: F401
        from extender.replay.policies import ExtenderPolicy  # noqa: F401
    except ImportError as exc:
        raise CliError(f"policy extender: the extender core is not importable ({exc})") from None


def execute(jobs: list[Job], n_jobs: int, show_progress: bool, total_events: int) -> list[RunResult]:
    """Run jobs (in order of the returned list) with a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as bar:
        task = bar.add_task(f"replaying {len(jobs)} run(s)", total=total_events)
        if n_jobs <= 1 or len(jobs) == 1:
            results = []
            for job in jobs:
                trace = _trace(job.nodes, job.pods, job.variant)
                arrivals = _arrivals(job, trace)
                results.append(
                    engine.run(trace, arrivals, job.policy, progress=lambda n: bar.advance(task, n))
                )
            return results
        import multiprocessing as mp

        with mp.Manager() as manager, ProcessPoolExecutor(max_workers=n_jobs) as pool:
            queue = manager.Queue()
            futures: list[Future[RunResult]] = [pool.submit(run_job, job, queue) for job in jobs]
            while not all(f.done() for f in futures):
                with contextlib.suppress(Exception):  # queue.Empty from the manager proxy
                    bar.advance(task, queue.get(timeout=0.2))
            return [f.result() for f in futures]


def main(args: argparse.Namespace) -> int:
    policies = parse_policies(args.policy)
    seeds = parse_seeds(args.seeds)
    if args.jobs < 1:
        raise CliError("--jobs must be >= 1")
    if not args.tune > 0:
        raise CliError("--tune must be > 0")
    if args.variant is not None:
        if args.replay is not None:
            raise CliError(
                "--variant makes a new pod list: it has no published arrival order (drop --replay)"
            )
        try:
            variants.parse(args.variant)
        except ValueError as exc:
            raise CliError(f"--variant: {exc}") from None
    if args.replay is not None and str(args.replay) == "bundled" and not args.replay.is_dir():
        args.replay = datasets.BUNDLED / "replay"
    if args.replay is not None and not args.replay.is_dir():
        raise CliError(f"--replay: {args.replay} is not a folder")
    if args.out is not None:
        writable_folder(args.out, "--out")  # before minutes of runs, not after
    if any(p.startswith("extender") for p in policies):
        _check_extender()
    try:
        trace = _trace(str(args.nodes), str(args.pods), args.variant)
        # check every replay file before spending minutes on the runs
        events = 0
        for seed in seeds:
            job = Job(
                str(args.nodes),
                str(args.pods),
                str(args.replay) if args.replay else None,
                args.tune,
                args.variant,
                "",
                seed,
            )
            events += len(_arrivals(job, trace).order)
    except ValueError as exc:  # TraceError, or a variant the pod list cannot make
        raise CliError(str(exc)) from None
    jobs = [
        Job(
            str(args.nodes),
            str(args.pods),
            str(args.replay) if args.replay else None,
            args.tune,
            args.variant,
            p,
            s,
        )
        for p in policies
        for s in seeds
    ]
    try:
        results = execute(jobs, args.jobs, sys.stderr.isatty(), events * len(policies))
    except (TraceError, ValueError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    if args.out is not None:
        output.write_curves(args.out / f"{trace.workload}_curves.csv", results)
        if not output.write_plot(args.out / f"{trace.workload}_alloc.png", trace.workload, results):
            sys.stderr.write(
                "gpu-autoscaler: note: matplotlib missing (pip install 'gpu-autoscaler[sim]'): no PNG\n"
            )
    if args.output == "json":
        doc = output.to_json(trace.workload, len(trace.nodes), trace.total_gpus, results)
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{trace.workload}: {len(trace.nodes)} nodes, {trace.total_gpus} GPUs")
    for col in (
        "policy",
        "seed",
        "arrived pods",
        "failed",
        "seconds",
        *(f"alloc@{k}%" for k in engine.SAMPLE_POINTS),
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for row in output.table_rows(results):
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    for s in output.summary(results):
        console.print(
            f"{s['policy']}: mean allocation at arrived 100 % = {s['alloc_mean_at_100']} (seeds {s['seeds']})"
        )
    return 0
