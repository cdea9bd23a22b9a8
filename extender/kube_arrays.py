"""ClusterState plus what only real Kubernetes nodes have: per-GPU memory and MIG slices.

A subclass (not an edit of `extender/arrays.py`) so the trace-replay simulator keeps its plain ClusterState;
the scoring core uses these extra arrays when it finds them (`isinstance(state, GpuClusterState)`).
MIG slices are counted per profile (`nvidia.com/mig-<profile>` allocatable minus slices held).
`sharing[i]`: node i's GPUs may be shared (GFD `nvidia.com/gpu.sharing-strategy` time-slicing or mps), so
pods annotated `gpu-autoscaler.io/gpu-milli` may take a share of one of its GPUs.
"""

from __future__ import annotations

import numpy as np

from extender.arrays import ClusterState, NodeCapacity


class GpuClusterState(ClusterState):
    def __init__(self, max_gpus: int = 8) -> None:
        super().__init__(max_gpus)
        cap = len(self.gpu_count)
        self.gpu_mem_mib = np.zeros(cap, dtype=np.int64)
        self.sharing = np.zeros(cap, dtype=np.bool_)
        self.mig_profiles: list[str] = []
        self._mig_ids: dict[str, int] = {}
        self.mig_cap = np.zeros((cap, 0), dtype=np.int64)
        self.mig_left = np.zeros((cap, 0), dtype=np.int64)

    def _grow(self, rows: int, cols: int) -> None:
        super()._grow(rows, cols)
        cap = len(self.gpu_count)
        if cap > len(self.gpu_mem_mib):
            mem = np.zeros(cap, dtype=np.int64)
            mem[: len(self.gpu_mem_mib)] = self.gpu_mem_mib
            self.gpu_mem_mib = mem
            share = np.zeros(cap, dtype=np.bool_)
            share[: len(self.sharing)] = self.sharing
            self.sharing = share
            for name in ("mig_cap", "mig_left"):
                old = getattr(self, name)
                arr = np.zeros((cap, old.shape[1]), dtype=np.int64)
                arr[: old.shape[0]] = old
                setattr(self, name, arr)

    def mig_id(self, profile: str, create: bool = True) -> int:
        """Column of a MIG profile (-1 when unknown and not created)."""
        pid = self._mig_ids.get(profile)
        if pid is None:
            if not create:
                return -1
            pid = len(self.mig_profiles)
            self._mig_ids[profile] = pid
            self.mig_profiles.append(profile)
            for name in ("mig_cap", "mig_left"):
                old = getattr(self, name)
                arr = np.zeros((old.shape[0], pid + 1), dtype=np.int64)
                arr[:, :pid] = old
                setattr(self, name, arr)
        return pid

    def add_gpu_node(
        self,
        node: NodeCapacity,
        gpu_mem_mib: int = 0,
        mig: dict[str, int] | None = None,
        sharing: bool = False,
    ) -> int:
        """`add_node` plus per-GPU memory, MIG slice counts (all free) and whether GPUs may be shared."""
        for profile in mig or {}:
            self.mig_id(profile)
        i = self.add_node(node)
        self.gpu_mem_mib[i] = gpu_mem_mib
        self.sharing[i] = sharing
        self.mig_cap[i, :] = 0
        for profile, n in (mig or {}).items():
            self.mig_cap[i, self.mig_id(profile)] = n
        self.mig_left[i, :] = self.mig_cap[i, :]
        return i

    def place_mig(self, i: int, mig: tuple[tuple[str, int], ...]) -> None:
        for profile, n in mig:
            pid = self.mig_id(profile)
            self.mig_left[i, pid] -= n  # may go negative when the view lags; filters read it as "none free"
        if mig:
            self.version[i] += 1

    def release_mig(self, i: int, mig: tuple[tuple[str, int], ...]) -> None:
        for profile, n in mig:
            pid = self.mig_id(profile)
            self.mig_left[i, pid] = min(self.mig_cap[i, pid], self.mig_left[i, pid] + n)
        if mig:
            self.version[i] += 1
