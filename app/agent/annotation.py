"""The `gpu-autoscaler.io/topology` annotation (contract version 1), built from plain device facts.

Pure: NVML and text parsing live elsewhere and hand this module `GpuDevice` rows and a link matrix of
`nvidia-smi topo -m` tokens, so every source (NVML, a topo text file, a test fake) ends in the same JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ANNOTATION = "gpu-autoscaler.io/topology"
VERSION = 1
_TOKEN = re.compile(r"^(X|PIX|PXB|PHB|NODE|SYS|NV[1-9]\d*)$")

#: NVML common-ancestor level (nvmlGpuTopologyLevel_t) -> `nvidia-smi topo -m` token
LEVEL_TOKENS: dict[int, str] = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}


class AnnotationError(ValueError):
    """Device facts or links that cannot form a valid annotation; the message says which."""


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One physical GPU as the agent found it (None = unknown)."""

    index: int
    uuid: str = ""
    product: str = ""
    memory_mib: int = 0
    numa_node: int | None = None
    pci_bus_id: str = ""
    mig_enabled: bool = False
    allocated: bool = False


def level_token(level: int) -> str:
    """NVML topology level -> token; an unknown (newer) level reads as the farthest, SYS."""
    return LEVEL_TOKENS.get(int(level), "SYS")


def normalise_bus_id(bus_id: str | bytes) -> str:
    """'00000000:18:00.0' / b'0000:18:00.0' / '18:00.0' -> '0000:18:00.0' (4-digit domain, upper case)."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)
    text = text.strip().rstrip("\x00")
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    if len(parts) != 3:
        return text.upper()
    domain = parts[0][-4:].rjust(4, "0")
    return f"{domain}:{parts[1]}:{parts[2]}".upper()


def check_links(links: Sequence[Sequence[str]], n: int) -> list[list[str]]:
    """An n x n matrix of known tokens, `X` exactly on the diagonal; raises AnnotationError otherwise."""
    if len(links) != n:
        raise AnnotationError(f"links: expected {n} rows, got {len(links)}")
    out: list[list[str]] = []
    for i, row in enumerate(links):
        if len(row) != n:
            raise AnnotationError(f"links[{i}]: expected {n} entries, got {len(row)}")
        clean = [str(t).strip().upper() for t in row]
        for j, tok in enumerate(clean):
            if not _TOKEN.match(tok):
                raise AnnotationError(f"links[{i}][{j}]: unknown token {row[j]!r}")
            if (tok == "X") != (i == j):
                raise AnnotationError(f"links[{i}][{j}]: 'X' must be exactly the diagonal, got {tok!r}")
        out.append(clean)
    return out


def build_annotation(devices: Sequence[GpuDevice], links: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The contract's JSON object: GPUs sorted by index, `links[i][j]` in the same order."""
    order = sorted(range(len(devices)), key=lambda k: devices[k].index)
    indices = [devices[k].index for k in order]
    if len(set(indices)) != len(indices):
        raise AnnotationError(f"gpus: duplicate index in {indices}")
    matrix = check_links(links, len(devices))
    gpus = [
        {
            "index": d.index,
            "uuid": d.uuid,
            "product": d.product,
            "memoryMiB": int(d.memory_mib),
            "numaNode": d.numa_node,
            "pciBusId": d.pci_bus_id,
            "migEnabled": bool(d.mig_enabled),
            "allocated": bool(d.allocated),
        }
        for d in (devices[k] for k in order)
    ]
    return {"version": VERSION, "gpus": gpus, "links": [[matrix[a][b] for b in order] for a in order]}


def annotation_text(annotation: dict[str, Any]) -> str:
    """Compact JSON, as stored in the annotation value."""
    return json.dumps(annotation, separators=(",", ":"))


def node_patch(annotation: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch writing the annotation on a Node."""
    return {"metadata": {"annotations": {ANNOTATION: annotation_text(annotation)}}}
