"""Malformed cluster objects: logged once per object version, counted, remembered with their reason.

A Node with allocatable `nvidia.com/gpu: "-2"` or a Pod whose request is `"lots"` must not stop the service,
a request about other nodes, a watch or a background loop. Whoever reads such an object (the extender's node
state, the operator views, the autoscaler) reports it here and treats it as unknown. One process-wide table,
so the extender and the operator view reading the same bad Node log and count it once: the key is (kind,
namespace/name, resourceVersion, reason). `gpu_autoscaler_bad_objects_total{kind, reason}` counts distinct
bad object versions; `current()` says which objects are bad now and why.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from app.metrics import REGISTRY

log = logging.getLogger(__name__)

BAD_OBJECTS = Counter(
    "gpu_autoscaler_bad_objects_total",
    "Malformed cluster objects seen (each object version once), by kind and reason",
    ["kind", "reason"],
    registry=REGISTRY,
)
BAD_NOW = Gauge(
    "gpu_autoscaler_bad_objects_current",
    "Cluster objects currently treated as unknown because they cannot be read, by kind",
    ["kind"],
    registry=REGISTRY,
)

#: distinct (object version, reason) remembered for the once-only log; older ones are forgotten first
MAX_REMEMBERED = 20_000


@dataclass(frozen=True)
class BadObject:
    kind: str
    name: str  # namespace/name, or name for cluster-scoped kinds
    resource_version: str
    reason: str  # short label value: negative_allocatable, bad_quantity, topology_not_json…
    detail: str  # one sentence naming the field at fault


def object_name(obj: Any) -> str:
    meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
    if not isinstance(meta, dict):
        return "?"
    name = str(meta.get("name") or meta.get("generateName") or "?")
    ns = meta.get("namespace")
    return f"{ns}/{name}" if ns else name


def _resource_version(obj: Any) -> str:
    meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""


class BadObjects:
    """The table (thread-safe: watch threads and request handlers report)."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self._current: dict[tuple[str, str], BadObject] = {}
        self.max_remembered = max_remembered

    def report(self, kind: str, obj: Any, reason: str, detail: str, *, source: str = "") -> bool:
        """Record a bad object; logs and counts only the first report of this version and reason.
        Returns True when this report was the first."""
        bad = BadObject(kind, object_name(obj), _resource_version(obj), reason, detail)
        key = (kind, bad.name, bad.resource_version, reason)
        with self._lock:
            self._current[(kind, bad.name)] = bad
            BAD_NOW.labels(kind).set(sum(1 for k in self._current if k[0] == kind))
            if key in self._seen and bad.resource_version:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            while len(self._seen) > self.max_remembered:
                self._seen.popitem(last=False)
        BAD_OBJECTS.labels(kind, reason).inc()
        log.warning(
            "bad object ignored",
            extra={
                "kind": kind,
                "object": bad.name,
                "resourceVersion": bad.resource_version,
                "reason": reason,
                "detail": detail,
                "source": source,
            },
        )
        return True

    def report_exception(self, kind: str, obj: Any, exc: Exception, *, source: str = "") -> str:
        """Report what a parser raised: its `reason` attribute when it has one (the inventory's errors name
        the field at fault), else `unreadable` with the exception type. Returns the detail sentence."""
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str) and reason:
            detail = str(exc)
        else:
            reason, detail = "unreadable", f"{type(exc).__name__}: {exc}"
        self.report(kind, obj, reason, detail, source=source)
        return detail

    def clear(self, kind: str, name: str) -> None:
        """The object was deleted, or a later version reads fine."""
        with self._lock:
            if self._current.pop((kind, name), None) is not None:
                BAD_NOW.labels(kind).set(sum(1 for k in self._current if k[0] == kind))

    def reason(self, kind: str, name: str) -> BadObject | None:
        with self._lock:
            return self._current.get((kind, name))

    def current(self) -> list[BadObject]:
        with self._lock:
            return sorted(self._current.values(), key=lambda b: (b.kind, b.name))

    def reset(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._seen.clear()
            self._current.clear()
        BAD_NOW.clear()


#: the process-wide table
BAD = BadObjects()
