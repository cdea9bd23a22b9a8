"""Assume cache: GPUs we chose for pods the API has not yet shown bound.

kube-scheduler binds asynchronously; until the pod comes back from the watch with `spec.nodeName`, the next
pod must not be offered the same GPUs. An entry is placed in the ClusterState when added, released when the
real pod shows up (reconcile: the bound pod takes over the same GPUs), when kube-scheduler's own accounting
contradicts it (see NodeStateAdapter.yield_to_scheduler), or when its TTL runs out (the scheduler chose
another node, or gave up). Pure bookkeeping: the caller does place/release.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from extender.arrays import PodRequest
from extender.inventory import PodAsk


@dataclass
class Assumed:
    key: str
    node: str
    ask: PodAsk
    req: PodRequest  # what was actually placed (may differ from ask.req only when the view lagged)
    gpus: list[int]
    expires: float
    extra: dict[str, object] = field(default_factory=dict)


class AssumeCache:
    def __init__(self, ttl_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._entries: dict[str, Assumed] = {}
        self._by_node: dict[str, dict[str, Assumed]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Assumed | None:
        return self._entries.get(key)

    def add(self, key: str, node: str, ask: PodAsk, req: PodRequest, gpus: list[int]) -> Assumed:
        self.pop(key)
        entry = Assumed(key, node, ask, req, list(gpus), self.clock() + self.ttl)
        self._entries[key] = entry
        self._by_node.setdefault(node, {})[key] = entry
        return entry

    def pop(self, key: str) -> Assumed | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            on_node = self._by_node.get(entry.node)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._by_node[entry.node]
        return entry

    def unplace(self, key: str) -> Assumed | None:
        """Keep the entry (the pod is placed, somewhere) but on no node: it holds no GPUs any more and still
        counts for its gang until the watch shows where it went or the TTL ends."""
        entry = self._entries.get(key)
        if entry is not None and entry.node:
            on_node = self._by_node.get(entry.node, {})
            on_node.pop(key, None)
            if not on_node:
                self._by_node.pop(entry.node, None)
            entry.node = ""
            entry.gpus = []
        return entry

    def pop_expired(self) -> list[Assumed]:
        """Entries whose TTL ran out. Every entry gets the same TTL when added (re-adding moves it to the
        end), so the dict's insertion order is expiry order: stop at the first one still alive."""
        now = self.clock()
        gone = []
        for e in self._entries.values():
            if e.expires > now:
                break
            gone.append(e)
        for e in gone:
            self.pop(e.key)
        return gone

    @property
    def by_node(self) -> dict[str, dict[str, Assumed]]:
        """Node name -> its entries by pod key, oldest first (read-only for callers)."""
        return self._by_node

    def on_node(self, node: str) -> list[Assumed]:
        """The node's entries, oldest first."""
        return list(self._by_node.get(node, {}).values())

    def keys(self) -> list[str]:
        return list(self._entries)
