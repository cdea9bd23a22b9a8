"""Parser of `nvidia-smi topo -m` text: the agent's fallback source (`--from-topo-file`) and test fixtures.

Accepts what real machines print (see shared/reference/nvidia-smi-topo-format.md): TAB-separated or
space-aligned copies, wrapper lines before the matrix (`GPU Topology:`), indentation, NIC columns (`NIC0…`
or `mlx5_0…`), and 1-3 affinity columns (`CPU Affinity`, `NUMA Affinity`, `GPU NUMA ID`) mapped by name from
the right. Link columns are mapped by position from the left. A line it cannot read raises TopoParseError
naming the line, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.agent.annotation import GpuDevice

AFFINITY_HEADERS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")
_GPU = re.compile(r"^GPU(\d+)$")
_LINK = re.compile(r"^(X|PIX|PXB|PHB|NODE|SYS|NV[1-9]\d*)$")
_FIRST_INT = re.compile(r"^(\d+)")


class TopoParseError(ValueError):
    """The text is not a readable `nvidia-smi topo -m` matrix; the message names the line."""


@dataclass(frozen=True)
class TopoMatrix:
    """What the text says: GPU indices, GPU-to-GPU tokens, and the affinity columns per GPU."""

    indices: list[int]
    links: list[list[str]]
    nics: list[str]
    affinity: list[dict[str, str]]

    def devices(self, product: str = "", memory_mib: int = 0) -> list[GpuDevice]:
        """GpuDevice rows (the text knows no uuid, product, memory or bus id; those come from elsewhere)."""
        out = []
        for idx, aff in zip(self.indices, self.affinity, strict=True):
            m = _FIRST_INT.match(aff.get("NUMA Affinity", "").strip())
            out.append(
                GpuDevice(
                    index=idx,
                    product=product,
                    memory_mib=memory_mib,
                    numa_node=int(m.group(1)) if m else None,
                )
            )
        return out


def _header_cells(line: str) -> list[str]:
    """Column names of the header line (the leading empty cell dropped), multi-word names kept whole."""
    if "\t" in line:
        cells = [c.strip() for c in line.split("\t")]
        while cells and not cells[0]:
            cells.pop(0)
        return [c for c in cells if c]
    text = line.strip()
    for name in AFFINITY_HEADERS:
        text = re.sub(r"\s+".join(map(re.escape, name.split())), name.replace(" ", "\x00"), text)
    return [c.replace("\x00", " ") for c in text.split()]


def _row_cells(line: str) -> list[str]:
    if "\t" in line:
        return [c.strip() for c in line.strip("\n").split("\t")]
    return line.split()


def _is_header(line: str) -> bool:
    cells = _header_cells(line)
    return bool(cells) and cells[0] == "GPU0" and not _LINK.match(cells[1] if len(cells) > 1 else "X")


def parse_topo(text: str) -> TopoMatrix:
    """Parse the matrix of `nvidia-smi topo -m` output (wrappers and legend lines around it are skipped)."""
    lines = text.splitlines()
    start = next((k for k, ln in enumerate(lines) if _is_header(ln)), None)
    if start is None:
        raise TopoParseError("no `nvidia-smi topo -m` header line (a line of GPU0 GPU1 … columns) found")
    header = _header_cells(lines[start])
    gpu_cols = 0
    while gpu_cols < len(header) and _GPU.match(header[gpu_cols]):
        if int(_GPU.match(header[gpu_cols]).group(1)) != gpu_cols:  # type: ignore[union-attr]
            raise TopoParseError(f"line {start + 1}: GPU columns out of order at {header[gpu_cols]!r}")
        gpu_cols += 1
    affinity = [h for h in header[gpu_cols:] if h in AFFINITY_HEADERS]
    nics = [h for h in header[gpu_cols:] if h not in AFFINITY_HEADERS]
    if header[gpu_cols + len(nics) :] != affinity:
        raise TopoParseError(f"line {start + 1}: affinity columns must come last: {lines[start].strip()!r}")
    width = gpu_cols + len(nics)

    indices: list[int] = []
    links: list[list[str]] = []
    affs: list[dict[str, str]] = []
    for k in range(start + 1, len(lines)):
        raw = lines[k]
        if not raw.strip() or raw.strip().startswith("Legend"):
            break
        cells = _row_cells(raw)
        while cells and not cells[0]:
            cells.pop(0)
        name = cells[0] if cells else ""
        m = _GPU.match(name)
        if m is None:
            if name in nics or name.startswith(("NIC", "mlx")):
                continue  # NIC rows carry no GPU facts
            raise TopoParseError(f"line {k + 1}: expected a GPU<n> or NIC row: {raw.strip()!r}")
        values = cells[1:]
        if len(values) < width:
            raise TopoParseError(
                f"line {k + 1}: {name} has {len(values)} cells, expected at least {width}: {raw.strip()!r}"
            )
        row = [v.upper() for v in values[:gpu_cols]]
        bad = next((v for v in row if not _LINK.match(v)), None)
        if bad is not None:
            raise TopoParseError(f"line {k + 1}: {name}: unknown link token {bad!r}: {raw.strip()!r}")
        rest = values[width:]
        while len(rest) > len(affinity) and "" in rest[1:]:
            # TAB form: the GPU rows have an extra empty field before `GPU NUMA ID`
            drop = len(rest) - 1 - rest[::-1].index("")
            rest.pop(drop)
        if len(rest) > len(affinity):
            raise TopoParseError(
                f"line {k + 1}: {name}: {len(rest)} affinity cells for {len(affinity)} columns"
            )
        named = dict(zip(affinity[len(affinity) - len(rest) :], rest, strict=True))
        indices.append(int(m.group(1)))
        links.append(row)
        affs.append(named)
    if not indices:
        raise TopoParseError(f"line {start + 1}: header has no GPU rows under it")
    if indices != list(range(gpu_cols)):
        raise TopoParseError(
            f"GPU rows {indices} do not match the {gpu_cols} GPU columns of line {start + 1}"
        )
    for i in range(gpu_cols):
        for j in range(gpu_cols):
            if (links[i][j] == "X") != (i == j):
                raise TopoParseError(f"GPU{i} row, GPU{j} column: 'X' must be exactly the diagonal")
    return TopoMatrix(indices=indices, links=links, nics=nics, affinity=affs)
