"""Load the Alibaba `openb` node and pod CSVs into plain data for the replay, validating every row.

Kept exactly as the study's `pod_csv_to_yaml.py` reads them: CPU and memory requests, and only when
num_gpu != 0 the GPU count, the per-GPU milli (clamped to 1000) and the `|`-separated model list.
Errors are one line naming the file, the line and the column (the CLI turns them into exit 2).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extender.arrays import GPU_MILLI, IntArray, NodeCapacity, PodRequest

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")


class TraceError(ValueError):
    """Bad input: a one-line reason naming the file and what is wrong."""


@dataclass(frozen=True)
class Trace:
    """Nodes and pods of one workload. Pods are in name order (the study sorts by name)."""

    workload: str  # the pods file stem, e.g. openb_pod_list_default
    nodes: tuple[NodeCapacity, ...]
    pod_names: tuple[str, ...]
    pods: tuple[PodRequest, ...]

    @property
    def total_gpus(self) -> int:
        return sum(n.gpu_count for n in self.nodes)

    @property
    def short_name(self) -> str:
        return self.workload.removeprefix("openb_pod_list_")

    def gpu_milli_total(self) -> IntArray:
        return np.array([p.total_gpu_milli for p in self.pods], dtype=np.int64)

    def gpu_milli_per_gpu(self) -> IntArray:
        return np.array([p.gpu_milli if p.wants_gpu else 0 for p in self.pods], dtype=np.int64)


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise TraceError(f"{path}: file not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for col in required:
            if col not in header:
                raise TraceError(f"{path}: missing column {col!r}")
        reader.fieldnames = header
        rows = [(i + 2, row) for i, row in enumerate(reader)]
    if not rows:
        raise TraceError(f"{path}: no rows")
    return rows


def _int(path: Path, line: int, row: dict[str, str], col: str) -> int:
    raw = (row.get(col) or "").strip()
    try:
        value = int(float(raw)) if raw else 0
    except ValueError:
        raise TraceError(f"{path}:{line}: column {col!r} is not a number: {raw!r}") from None
    if value < 0:
        raise TraceError(f"{path}:{line}: negative {col} ({value})")
    return value


def _unique_name(path: Path, line: int, row: dict[str, str], col: str, what: str, seen: set[str]) -> str:
    """The row's name, non-empty and not seen before in this file (then remembered)."""
    name = (row.get(col) or "").strip()
    if not name:
        raise TraceError(f"{path}:{line}: empty {what} name")
    if name in seen:
        raise TraceError(f"{path}:{line}: duplicate {what} {name!r}")
    seen.add(name)
    return name


def load_nodes(path: Path) -> tuple[NodeCapacity, ...]:
    """Node CSV → capacities; names must be unique."""
    nodes: list[NodeCapacity] = []
    seen: set[str] = set()
    for line, row in _rows(path, NODE_COLUMNS):
        name = _unique_name(path, line, row, "sn", "node", seen)
        nodes.append(
            NodeCapacity(
                name=name,
                cpu_milli=_int(path, line, row, "cpu_milli"),
                memory_mib=_int(path, line, row, "memory_mib"),
                gpu_count=_int(path, line, row, "gpu"),
                model=(row.get("model") or "").strip(),
            )
        )
    return tuple(nodes)


def load_pods(path: Path) -> tuple[tuple[str, ...], tuple[PodRequest, ...]]:
    """Pod CSV → (names, requests), sorted by name as the study does."""
    out: list[tuple[str, PodRequest]] = []
    seen: set[str] = set()
    for line, row in _rows(path, POD_COLUMNS):
        name = _unique_name(path, line, row, "name", "pod", seen)
        cpu = _int(path, line, row, "cpu_milli")
        mem = _int(path, line, row, "memory_mib")
        num = _int(path, line, row, "num_gpu")
        milli = _int(path, line, row, "gpu_milli")
        spec = (row.get("gpu_spec") or "").strip()
        if num == 0 or milli == 0:
            # no GPU annotation (num 0) or a zero share: the study's filter lets it pass as CPU-only
            req = PodRequest(cpu_milli=cpu, memory_mib=mem)
        else:
            milli = min(milli, GPU_MILLI)
            if num > 1 and milli != GPU_MILLI:
                raise TraceError(
                    f"{path}:{line}: {num} GPUs of {milli} milli: a multi-GPU pod must ask whole GPUs"
                )
            models = tuple(m for m in spec.split("|") if m) if spec else ()
            req = PodRequest(cpu_milli=cpu, memory_mib=mem, gpu_count=num, gpu_milli=milli, gpu_models=models)
        out.append((name, req))
    out.sort(key=lambda t: t[0])
    return tuple(n for n, _ in out), tuple(r for _, r in out)


def load_trace(nodes_csv: Path, pods_csv: Path) -> Trace:
    nodes = load_nodes(nodes_csv)
    names, pods = load_pods(pods_csv)
    if not any(n.gpu_count for n in nodes):
        raise TraceError(f"{nodes_csv}: no node has a GPU")
    return Trace(workload=pods_csv.name.removesuffix(".csv"), nodes=nodes, pod_names=names, pods=pods)
