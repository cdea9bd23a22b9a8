"""Operations tests: fake NVML machines (the clean environment comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest


class FakeNvml:
    """The pynvml calls the agent makes, over a described machine.

    gpus: (name, bus id, numa node or None, mig) per GPU; nvlinks[i]: remote bus id per link, None = inactive;
    ancestor(i, j): NVML topology level.
    """

    NVMLError = pynvml.NVMLError
    NVML_NVLINK_MAX_LINKS = 36
    NVML_AFFINITY_SCOPE_NODE = 0

    def __init__(
        self,
        gpus: list[tuple[str, str, int | None, bool]],
        nvlinks: list[list[str | None]],
        ancestor: Any,
        memory_mib: int = 81559,
    ) -> None:
        self.gpus = gpus
        self.nvlinks = nvlinks
        self.ancestor = ancestor
        self.memory_mib = memory_mib
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, h: int) -> str:
        return self.gpus[h][0]

    def nvmlDeviceGetUUID(self, h: int) -> bytes:
        return f"GPU-0000000{h}-fake".encode()

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(total=self.memory_mib * 1024 * 1024)

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=("0000" + self.gpus[h][1]).encode())  # NVML's 8-digit domain

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        return [1 if self.gpus[h][3] else 0, 0]

    def nvmlDeviceGetMemoryAffinity(self, h: int, size: int, scope: int) -> list[int]:
        numa = self.gpus[h][2]
        if numa is None:
            raise pynvml.NVMLError_NotSupported()
        return [1 << numa] + [0] * (size - 1)

    def nvmlDeviceGetNvLinkState(self, h: int, link: int) -> int:
        links = self.nvlinks[h]
        if link >= len(links):
            raise pynvml.NVMLError_NotSupported()
        return 0 if links[link] is None else 1

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h: int, link: int) -> Any:
        return SimpleNamespace(busId=self.nvlinks[h][link])

    def nvmlDeviceGetTopologyCommonAncestor(self, a: int, b: int) -> int:
        return int(self.ancestor(a, b))


H100_BUS = [
    "0000:18:00.0",
    "0000:2A:00.0",
    "0000:3A:00.0",
    "0000:5D:00.0",
    "0000:9A:00.0",
    "0000:AB:00.0",
    "0000:BA:00.0",
    "0000:DB:00.0",
]
SWITCHES = ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"]
PER_SWITCH = [5, 4, 4, 5]  # HGX H100: 18 NVLinks per GPU over 4 NVSwitches


def _switch_links() -> list[str | None]:
    return [s for s, n in zip(SWITCHES, PER_SWITCH, strict=True) for _ in range(n)]


def _two_socket(a: int, b: int, per_socket: int) -> int:
    return 40 if a // per_socket == b // per_socket else 50


def hgx_h100() -> FakeNvml:
    gpus = [("NVIDIA H100 80GB HBM3", bus, i // 4, False) for i, bus in enumerate(H100_BUS)]
    return FakeNvml(gpus, [_switch_links() for _ in gpus], lambda a, b: _two_socket(a, b, 4))


def l40s_two_socket() -> FakeNvml:
    bus = ["0000:4F:00.0", "0000:52:00.0", "0000:CE:00.0", "0000:D1:00.0"]
    gpus = [("NVIDIA L40S", b, None, False) for b in bus]  # no NVML affinity: numa from sysfs or unknown
    return FakeNvml(gpus, [[] for _ in gpus], lambda a, b: _two_socket(a, b, 2), memory_mib=46068)


def b200_failed_links(dead_gpu: int = 2, one_link_gpu: int = 5) -> FakeNvml:
    """8x B200: GPU `dead_gpu` lost every NVLink, GPU `one_link_gpu` lost one link (to the first switch)."""
    gpus = [("NVIDIA B200", bus, i // 4, False) for i, bus in enumerate(H100_BUS)]
    links = [_switch_links() for _ in gpus]
    links[dead_gpu] = [None] * 18
    links[one_link_gpu][0] = None
    return FakeNvml(gpus, links, lambda a, b: _two_socket(a, b, 4), memory_mib=183359)


@pytest.fixture
def demo_path() -> Path:
    from app.cluster.snapshot import demo_snapshot_path

    return demo_snapshot_path()
