"""The cluster view interface.

Objects are plain dicts in the exact JSON shape the Kubernetes API returns (camelCase keys), so a recorded
`kubectl get -o json` object, a snapshot file and a live watch event all look the same to the core's
adapters. Two implementations: `SnapshotCluster` (files, the bundled demo) and `KubeCluster` (live API).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.bad_objects import BAD, object_name
from app.cluster.kinds import WATCHED
from app.cluster.shape import shape_problem

Obj = dict[str, Any]

#: Kinds the service lists and watches (the table of every kind, with its API paths, is `kinds.py`).
KINDS: tuple[str, ...] = WATCHED

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class ClusterEvent:
    """One change to one object, as a watch reports it."""

    type: EventType
    kind: str
    obj: Obj


def object_key(obj: Obj) -> tuple[str, str]:
    """(namespace, name); cluster-scoped objects have namespace ''."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


Listener = Callable[[ClusterEvent], None]


class ApiError(RuntimeError):
    """A write or read the API server refused; `status` is its HTTP code (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class Conflict(ApiError):
    """409: the object changed since it was read (resourceVersion), or it already exists."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class TooManyRequests(ApiError):
    """429: for an eviction, a PodDisruptionBudget allows no disruption now."""

    def __init__(self, message: str) -> None:
        super().__init__(429, message)


class ClusterView(abc.ABC):
    """Read access to the objects the service needs, change notifications, and a few narrow writes.

    Thread-safe: readers get copies of the index lists (the dicts themselves are shared, treat as read-only).
    """

    #: other processes see the same objects (a live API server): replicas must elect a leader to write
    shared: bool = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in KINDS}
        self._listeners: list[Listener] = []
        self._ready = threading.Event()
        #: bumps on every change; cheap staleness check for caches built from the view
        self.generation = 0
        #: (kind, key) of objects refused for their structure (app/cluster/shape.py), reported in BAD
        self._refused: set[tuple[str, tuple[str, str]]] = set()

    # -- lifecycle -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Load the initial state (and start watching, for live clusters). Sets ready when loaded."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop watches; default no-op."""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def source(self) -> str:
        """Human description of where the objects come from (logged, shown by `status`)."""
        return type(self).__name__

    # -- reads ---------------------------------------------------------------------------------
    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            items = self._objects[kind].values()
            if namespace is None:
                return list(items)
            return [o for o in items if object_key(o)[0] == namespace]

    def get(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def add_listener(self, listener: Listener) -> None:
        """Called synchronously for each change, after the view is updated. Keep listeners cheap."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- writes (narrow, explicit) -------------------------------------------------------------
    # Every write raises ApiError (NotFound, Conflict, TooManyRequests…) when the server refuses it.
    @abc.abstractmethod
    async def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        """JSON merge patch (RFC 7386) on an object's metadata/spec/status; returns the new object.
        A patch of `status` alone goes to the status subresource where the kind has one."""

    async def read(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        """A fresh GET (for kinds that are not watched, e.g. Lease); None when it does not exist."""
        raise NotImplementedError(f"{type(self).__name__}.read")

    async def create(self, kind: str, obj: Obj) -> Obj:
        """POST a new object (`metadata.generateName` allowed); Conflict if the name is taken."""
        raise NotImplementedError(f"{type(self).__name__}.create")

    async def replace(self, kind: str, obj: Obj) -> Obj:
        """PUT an object; Conflict when its `metadata.resourceVersion` is no longer current
        (optimistic concurrency, as leader election needs)."""
        raise NotImplementedError(f"{type(self).__name__}.replace")

    async def scale(self, kind: str, name: str, namespace: str, replicas: int) -> Obj:
        """Set replicas through the `scale` subresource (Deployment, MachineDeployment…); returns the
        Scale object."""
        raise NotImplementedError(f"{type(self).__name__}.scale")

    async def evict(self, name: str, namespace: str) -> None:
        """Evict a pod through the Eviction API (honours PodDisruptionBudgets: TooManyRequests)."""
        raise NotImplementedError(f"{type(self).__name__}.evict")

    async def bind(self, name: str, namespace: str, node: str, uid: str | None = None) -> None:
        """Bind a pod to a node (what kube-scheduler's binder or an extender's bind verb does)."""
        raise NotImplementedError(f"{type(self).__name__}.bind")

    # -- helpers for implementations -----------------------------------------------------------
    def _apply(self, event: ClusterEvent) -> None:
        if event.kind not in self._objects:
            return
        key = object_key(event.obj)
        problem = shape_problem(event.kind, event.obj) if event.type != "DELETED" else None
        if problem is not None:  # structurally impossible: absent for every reader (its old version too)
            BAD.report(event.kind, event.obj, "malformed", problem, source="view")
            self._refused.add((event.kind, key))
            with self._lock:
                prev = self._objects[event.kind].get(key)
            if prev is None:
                return
            event = ClusterEvent("DELETED", event.kind, prev)
        elif (event.kind, key) in self._refused:  # deleted, or a good version now
            self._refused.discard((event.kind, key))
            BAD.clear(event.kind, object_name(event.obj))
        with self._lock:
            if event.type == "DELETED":
                self._objects[event.kind].pop(key, None)
            else:
                self._objects[event.kind][key] = event.obj
            self.generation += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _replace_all(self, kind: str, objs: Iterable[Obj]) -> None:
        """Resync: emit DELETED for vanished objects and ADDED/MODIFIED for the rest."""
        fresh = {object_key(o): o for o in objs}
        with self._lock:
            old = dict(self._objects[kind])
        for key, obj in old.items():
            if key not in fresh:
                self._apply(ClusterEvent("DELETED", kind, obj))
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                self._apply(ClusterEvent("ADDED", kind, obj))
            elif prev != obj:
                self._apply(ClusterEvent("MODIFIED", kind, obj))


def parse_timestamp(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, `2025-06-03T10:02:11Z`) -> an aware datetime; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, returning a new value (the input is not modified)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
