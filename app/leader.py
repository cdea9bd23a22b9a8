"""Who runs the background loops: every replica serves requests, only the leader acts on the cluster.

Loops ask `ctx.leadership.is_leader` before each cycle (`PeriodicLoop(gate=...)`). A single process (demo,
snapshot, tests) is always the leader; a Lease-based elector (coordination.k8s.io) plugs in behind the
same protocol for replicated deployments.
"""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool:
        """True while this process may act (write to the cluster from a background loop)."""
        ...

    @property
    def identity(self) -> str: ...


class AlwaysLeader:
    """One process, no election: the leader for as long as it runs."""

    def __init__(self, identity: str = "single") -> None:
        self._identity = identity

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def identity(self) -> str:
        return self._identity
