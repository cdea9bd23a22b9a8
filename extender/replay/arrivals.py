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
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TraceError(f"{path}: not a readable gzip CSV ({exc})") from None


def load_replay(directory: Path, trace: Trace, seed: int, tune: float = 1.3) -> Arrivals:
    """The published arrival order and tie-break ranks, checked against the pod and node lists."""
    arr_path, tie_path = replay_paths(directory, trace.workload, seed)
    rows = _read_gz_csv(arr_path, ("pos", "orig_index", "clone_no"))
    n = len(trace.pods)
    try:
        order = np.array([int(r["orig_index"]) for r in rows], dtype=np.int64)
        clone = np.array([int(r["clone_no"]) for r in rows], dtype=np.int64)
        pos = np.array([int(r["pos"]) for r in rows], dtype=np.int64)
    except (TypeError, ValueError):
        raise TraceError(f"{arr_path}: non-integer value") from None
    if len(order) == 0 or not np.array_equal(pos, np.arange(len(pos))):
        raise TraceError(f"{arr_path}: pos must run 0..{len(pos) - 1} in order")
    if order.min() < 0 or order.max() >= n:
        raise TraceError(
            f"{arr_path} does not match the pod list: orig_index up to {order.max()}, "
            f"but {trace.workload} has {n} pods"
        )
    originals = order[clone == -1]
    if len(np.unique(originals)) != len(originals):
        raise TraceError(f"{arr_path} does not match the pod list: an original pod arrives twice")
    target = tune * trace.total_gpus * 1000
    total = int(trace.gpu_milli_total()[order].sum())
    if len(originals) < n and total > target:
        raise TraceError(f"{arr_path} does not match the pod list: {n - len(originals)} pods missing")
    if len(originals) < n and len(originals) == len(order):
        raise TraceError(f"{arr_path} does not match the pod list: {n - len(originals)} pods missing")

    ties = _read_gz_csv(tie_path, ("node_name", "tiebreak_rank"))
    index = {node.name: i for i, node in enumerate(trace.nodes)}
    rank = np.full(len(trace.nodes), -1, dtype=np.int64)
    for r in ties:
        i = index.get(r["node_name"])
        if i is None:
            raise TraceError(f"{tie_path} does not match the node list: unknown node {r['node_name']!r}")
        try:
            rank[i] = int(r["tiebreak_rank"])
        except ValueError:
            raise TraceError(f"{tie_path}: non-integer rank {r['tiebreak_rank']!r}") from None
    if (rank < 0).any():
        missing = trace.nodes[int(np.flatnonzero(rank < 0)[0])].name
        raise TraceError(f"{tie_path} does not match the node list: no rank for node {missing!r}")
    if len(np.unique(rank)) != len(rank):
        raise TraceError(f"{tie_path}: tie-break ranks are not distinct")
    return Arrivals(seed=seed, order=order, rank=rank, source="replay")
