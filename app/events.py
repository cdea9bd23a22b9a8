"""Kubernetes Events for people (`kubectl describe`, `kubectl get events`): deduplicated, never raising.

Capabilities that decide something a person should see on an object (a waste flag on a pod, a MIG
reconfiguration on a node, a scale-up of a node group) emit an Event here. An Event is best effort: a
failure is logged and counted, never propagated into the decision that caused it. Repeats of the same
(object, reason) within `min_interval_s` are dropped, so a loop that re-decides every 30 s does not flood
the API server.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prometheus_client import Counter

from app.cluster.base import ApiError, ClusterView, Obj
from app.metrics import REGISTRY

log = logging.getLogger(__name__)

EVENTS = Counter(
    "gpu_autoscaler_events_total",
    "Kubernetes Events emitted, by reason and outcome (sent, throttled, failed)",
    ["reason", "outcome"],
    registry=REGISTRY,
)

EventType = Literal["Normal", "Warning"]
#: the message field's limit in the API server (longer messages are cut, as client-go's recorder does)
MAX_MESSAGE = 1024


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(
        self,
        cluster: ClusterView,
        component: str = "gpu-autoscaler",
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.component = component
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()
        self.clock = clock
        self._last: dict[tuple[str, str, str, str], float] = {}

    async def emit(
        self,
        obj: Obj,
        reason: str,
        message: str,
        *,
        type: EventType = "Normal",
        min_interval_s: float = 0.0,
        action: str = "",
    ) -> bool:
        """Record an Event about `obj` (any object with kind/apiVersion/metadata). Returns whether it was
        sent; False when throttled or refused (logged, counted)."""
        meta = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "")
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "")
        key = (kind, namespace, name, reason)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < min_interval_s:
            EVENTS.labels(reason, "throttled").inc()
            return False
        self._last[key] = now
        if len(self._last) > 50_000:  # bounded: forget the oldest half
            for k in sorted(self._last, key=self._last.__getitem__)[:25_000]:
                del self._last[k]
        involved: Obj = {"kind": kind, "name": name, "apiVersion": str(obj.get("apiVersion") or "v1")}
        if namespace:
            involved["namespace"] = namespace
        if meta.get("uid"):
            involved["uid"] = meta["uid"]
        stamp = _rfc3339(now)
        event: Obj = {
            "metadata": {
                "generateName": f"{name or kind.lower()}.",
                "namespace": namespace or "default",  # events of cluster-scoped objects live in default
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "type": type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        if action:
            event["action"] = action
        try:
            await self.cluster.create("Event", event)
        except (ApiError, NotImplementedError, OSError, ValueError) as exc:
            EVENTS.labels(reason, "failed").inc()
            log.warning(
                "event not recorded",
                extra={"object": f"{kind}/{namespace}/{name}", "reason": reason, "error": str(exc)},
            )
            return False
        EVENTS.labels(reason, "sent").inc()
        log.info(
            "event",
            extra={
                "object": f"{kind}/{namespace}/{name}",
                "reason": reason,
                "type": type,
                "text": message,
            },
        )
        return True
