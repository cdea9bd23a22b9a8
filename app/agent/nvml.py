"""GPU discovery through NVML (`pynvml`, package nvidia-ml-py), behind a narrow protocol.

`discover(nvml)` takes anything with the pynvml functions it calls (the real module, or a fake in tests) and
returns plain `GpuDevice` rows plus the `nvidia-smi topo -m` link matrix:

- NV<n>: n = active NVLinks between the two GPUs. A direct link counts for its peer GPU. Links to a non-GPU
  endpoint (an NVSwitch) are grouped by the switch's bus id; two GPUs on the same switch get
  min(links of i to it, links of j to it) for it, summed over their common switches (HGX H100: 5+4+4+5 = 18).
- else the PCIe level of `nvmlDeviceGetTopologyCommonAncestor` (PIX/PXB/PHB/NODE/SYS).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from app.agent.annotation import GpuDevice, level_token, normalise_bus_id

log = logging.getLogger(__name__)

SYSFS_PCI = Path("/sys/bus/pci/devices")


class NvmlUnavailable(RuntimeError):
    """No usable NVML (no driver, no GPU); the message is one line for the CLI."""


class Nvml(Protocol):
    """The pynvml calls the agent makes (the `pynvml` module satisfies it)."""

    NVMLError: type[Exception]
    NVML_NVLINK_MAX_LINKS: int
    NVML_AFFINITY_SCOPE_NODE: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMemoryAffinity(self, handle: Any, node_set_size: int, scope: int) -> Any: ...
    def nvmlDeviceGetNvLinkState(self, handle: Any, link: int) -> int: ...
    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: Any, link: int) -> Any: ...
    def nvmlDeviceGetTopologyCommonAncestor(self, h1: Any, h2: Any) -> int: ...


def load_pynvml() -> Nvml:
    """The real pynvml module, initialised; NvmlUnavailable with the library's reason when it cannot be."""
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise NvmlUnavailable(f"pynvml is not installed ({exc})") from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML unavailable: {exc} (no NVIDIA driver or GPU on this machine?)") from exc
    nvml: Nvml = pynvml  # type: ignore[assignment]
    return nvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(nvml: Nvml, fn: Callable[[], Any], what: str, index: int) -> Any:
    """Call an NVML query that some GPUs/drivers do not support; None (logged at debug) when it fails."""
    try:
        return fn()
    except nvml.NVMLError as exc:
        log.debug("nvml query failed", extra={"query": what, "gpu": index, "error": str(exc)})
        return None


def _numa_from_mask(mask: Any) -> int | None:
    """First set bit of NVML's NUMA-node bitmask (a sequence of unsigned longs, 64 bits each)."""
    for word_index, word in enumerate(mask or ()):
        value = int(word)
        if value:
            return word_index * 64 + (value & -value).bit_length() - 1
    return None


def sysfs_numa_node(bus_id: str, root: Path = SYSFS_PCI) -> int | None:
    """`/sys/bus/pci/devices/<bdf>/numa_node` (lower-case bdf); None when absent or -1."""
    try:
        value = int((root / bus_id.lower() / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value >= 0 else None


def _device(nvml: Nvml, index: int, handle: Any, sysfs: Path) -> GpuDevice:
    pci = nvml.nvmlDeviceGetPciInfo(handle)
    bus_id = normalise_bus_id(getattr(pci, "busId", ""))
    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    mig = _optional(nvml, lambda: nvml.nvmlDeviceGetMigMode(handle), "mig mode", index)
    mask = _optional(
        nvml,
        lambda: nvml.nvmlDeviceGetMemoryAffinity(handle, 4, nvml.NVML_AFFINITY_SCOPE_NODE),
        "memory affinity",
        index,
    )
    numa = _numa_from_mask(mask)
    if numa is None:
        numa = sysfs_numa_node(bus_id, sysfs)
    return GpuDevice(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        product=_text(nvml.nvmlDeviceGetName(handle)),
        memory_mib=int(mem.total) // (1024 * 1024),
        numa_node=numa,
        pci_bus_id=bus_id,
        mig_enabled=bool(mig and int(mig[0]) == 1),
    )


def _active_links(nvml: Nvml, index: int, handle: Any) -> list[str]:
    """Remote bus ids of the GPU's active NVLinks (an unsupported link index ends the scan)."""
    remotes: list[str] = []
    for link in range(int(nvml.NVML_NVLINK_MAX_LINKS)):
        try:
            if int(nvml.nvmlDeviceGetNvLinkState(handle, link)) != 1:
                continue
            remote = nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link)
        except nvml.NVMLError:
            continue  # NOT_SUPPORTED past the last link, or on GPUs without NVLink
        remotes.append(normalise_bus_id(getattr(remote, "busId", "")))
    return remotes


def nvlink_counts(remotes: list[list[str]], bus_ids: list[str]) -> list[list[int]]:
    """counts[i][j] = NVLinks between GPU i and j: direct links plus, per shared NVSwitch, the min of both."""
    n = len(bus_ids)
    gpu_of = {b: k for k, b in enumerate(bus_ids)}
    direct = [Counter(gpu_of[r] for r in rs if r in gpu_of) for rs in remotes]
    switch = [Counter(r for r in rs if r not in gpu_of) for rs in remotes]
    counts = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            via_switch = sum(min(c, switch[j][s]) for s, c in switch[i].items() if s in switch[j])
            counts[i][j] = max(direct[i][j], direct[j][i]) + via_switch
    return counts


def discover(nvml: Nvml, sysfs: Path = SYSFS_PCI) -> tuple[list[GpuDevice], list[list[str]]]:
    """(devices, links) of every GPU NVML sees. The caller has initialised NVML."""
    n = int(nvml.nvmlDeviceGetCount())
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
    devices = [_device(nvml, i, h, sysfs) for i, h in enumerate(handles)]
    remotes = [_active_links(nvml, i, h) for i, h in enumerate(handles)]
    counts = nvlink_counts(remotes, [d.pci_bus_id for d in devices])
    links: list[list[str]] = []
    for i in range(n):
        row: list[str] = []
        for j in range(n):
            if i == j:
                row.append("X")
            elif counts[i][j] > 0:
                row.append(f"NV{counts[i][j]}")
            else:
                query = partial(nvml.nvmlDeviceGetTopologyCommonAncestor, handles[i], handles[j])
                level = _optional(nvml, query, "common ancestor", i)
                row.append(level_token(level) if level is not None else "SYS")
        links.append(row)
    log.info(
        "gpus discovered",
        extra={
            "gpus": n,
            "nvlink_gpus": sum(1 for rs in remotes if rs),
            "products": sorted({d.product for d in devices}),
        },
    )
    return devices, links
