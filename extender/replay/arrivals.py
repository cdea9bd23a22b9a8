"""Arrival order and node tie-break priority of one seed: the published ones (`--replay DIR`), or the
study's method (shuffle, then tune the GPU total to `tune` x capacity) driven by our own RNG.

The published runs draw from Go's global math/rand; we do not reproduce that generator, only its method
(`shared/reference/fgd-trace-replay.md` §3): name-sorted pods are shuffled; below the target, pods drawn
uniformly with replacement from the name-sorted list are appended until the next one would pass the target
(compared with its per-GPU milli — the study's quirk); above it, random pods are removed until at or below.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extender.arrays import IntArray
from extender.replay.trace import Trace, TraceError


@dataclass(frozen=True)
class Arrivals:
    """`order[e]` = pod index (into Trace.pods) of arrival event e; `rank[i]` = tie-break rank of node i
    (node order of Trace.nodes); the lower rank wins a score tie."""

    seed: int
    order: IntArray
    rank: IntArray
    source: str  # "replay" | "rng"


def generate(trace: Trace, seed: int, tune: float = 1.3) -> Arrivals:
    """The study's method with numpy's PCG64 seeded by `seed`."""
    rng = np.random.default_rng(seed)
    n = len(trace.pods)
    order = rng.permutation(n).astype(np.int64)
    total_each = trace.gpu_milli_total()
    per_gpu = trace.gpu_milli_per_gpu()
    total = int(total_each.sum())
    target = tune * trace.total_gpus * 1000
    if total < target:
        extra: list[int] = []
        while True:
            idx = int(rng.integers(n))
            if total + int(per_gpu[idx]) > target:
                break
            extra.append(idx)
            total += int(total_each[idx])
        order = np.concatenate([order, np.array(extra, dtype=np.int64)])
    else:
        cur = list(order)
        while total > target and cur:
            idx = int(rng.integers(len(cur)))
            total -= int(total_each[cur.pop(idx)])
        order = np.array(cur, dtype=np.int64)
    names = [n.name for n in trace.nodes]
    perm = rng.permutation(len(names))
    rank = np.empty(len(names), dtype=np.int64)
    for pos, i in enumerate(sorted(range(len(names)), key=lambda j: names[j])):
        rank[i] = perm[pos]
    return Arrivals(seed=seed, order=order, rank=rank, source="rng")


def replay_paths(directory: Path, workload: str, seed: int) -> tuple[Path, Path]:
    stem = f"{workload}_seed{seed}"
    return directory / f"{stem}_arrivals.csv.gz", directory / f"{stem}_node_tiebreak.csv.gz"


def _read_gz_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise TraceError(f"replay file not found: {path}")
    try:
        with gzip.open(path, "rt", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for col in columns:
                if col not in header:
                    raise TraceError(f"{path}: missing column {col!r}")
            return list(reader)
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{path}: not a readable gzip CSV ({exc})") from None


def _cell(path: Path, line: int, row: dict[str, str], col: str) -> int:
    raw = (row.get(col) or "").strip()
    try:
        return int(raw)
    except ValueError:
        raise TraceError(f"{path}:{line}: {col} is not an integer: {raw!r}") from None


def _read_order(path: Path, n_pods: int, workload: str) -> IntArray:
    """Arrival rows → pod indices. Pods may be missing (the study's tune-down drops pods above the target);
    every index must exist, an original pod arrives at most once and each copy number is used once."""
    rows = _read_gz_csv(path, ("pos", "orig_index", "clone_no"))
    if not rows:
        raise TraceError(f"{path}: no arrivals")
    order = np.empty(len(rows), dtype=np.int64)
    seen_orig: dict[int, int] = {}
    seen_clone: dict[int, int] = {}
    for e, row in enumerate(rows):
        line = e + 2  # line 1 is the header
        pos, idx, clone = (_cell(path, line, row, c) for c in ("pos", "orig_index", "clone_no"))
        if pos != e:
            raise TraceError(f"{path}:{line}: pos {pos}, expected {e} (pos must run 0, 1, 2, … in order)")
        if not 0 <= idx < n_pods:
            raise TraceError(
                f"{path}:{line}: orig_index {idx} does not match the pod list ({workload} has {n_pods} pods)"
            )
        if clone < -1:
            raise TraceError(f"{path}:{line}: clone_no {clone} (-1 = original, 0, 1, … = tuned copy)")
        seen = seen_orig if clone == -1 else seen_clone
        key = idx if clone == -1 else clone
        if key in seen:
            what = f"original pod {idx}" if clone == -1 else f"copy {clone}"
            raise TraceError(f"{path}:{line}: {what} repeats line {seen[key]}")
        seen[key] = line
        order[e] = idx
    return order


def load_replay(directory: Path, trace: Trace, seed: int) -> Arrivals:
    """The published arrival order and tie-break ranks, checked row by row against the pod and node lists.

    The order may leave pods out: for workloads above the target the study removes random pods
    (`tuneDownPods`); any other mismatch is a one-line error naming the file and line.
    """
    arr_path, tie_path = replay_paths(directory, trace.workload, seed)
    order = _read_order(arr_path, len(trace.pods), trace.workload)

    ties = _read_gz_csv(tie_path, ("node_name", "tiebreak_rank"))
    index = {node.name: i for i, node in enumerate(trace.nodes)}
    rank = np.full(len(trace.nodes), -1, dtype=np.int64)
    seen_rank: dict[int, int] = {}
    for e, r in enumerate(ties):
        line = e + 2
        name = (r.get("node_name") or "").strip()
        i = index.get(name)
        if i is None:
            raise TraceError(f"{tie_path}:{line}: unknown node {name!r}: does not match the node list")
        value = _cell(tie_path, line, r, "tiebreak_rank")
        if value < 0:
            raise TraceError(f"{tie_path}:{line}: negative rank {value}")
        if rank[i] >= 0:
            raise TraceError(f"{tie_path}:{line}: node {name!r} is ranked twice")
        if value in seen_rank:
            raise TraceError(f"{tie_path}:{line}: rank {value} repeats line {seen_rank[value]}")
        seen_rank[value] = line
        rank[i] = value
    if (rank < 0).any():
        missing = trace.nodes[int(np.flatnonzero(rank < 0)[0])].name
        raise TraceError(f"{tie_path} does not match the node list: no rank for node {missing!r}")
    return Arrivals(seed=seed, order=order, rank=rank, source="replay")
