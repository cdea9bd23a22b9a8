"""The writing half of the MIG and sharing controllers: set one NVIDIA label (with our request annotation),
report each outcome once, log each decision that changed. Dry-run writes nothing and says what it would do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from app.cluster.base import ApiError
from app.context import AppContext
from app.mig.rollout import NodeDecision, Request, Status

log = logging.getLogger(__name__)


#: the metric's `result` for each reported status
RESULTS = {"success": "success", "failed": "failed", "stuck": "timeout"}


class LabelActor:
    """Writes `label=<config>` on Nodes for one controller; the Events, metric and logs that go with it."""

    def __init__(
        self,
        what: str,  # "mig" | "sharing": log message prefix
        label: str,
        annotation: str,
        counter: Counter,
        event_prefix: str,  # "Mig" -> Events MigReconfigure, MigReconfigured, MigReconfigureFailed, …Stuck
    ) -> None:
        self.what = what
        self.label = label
        self.annotation = annotation
        self.counter = counter
        self.events = {
            "requested": (f"{event_prefix}Reconfigure", "Normal"),
            "success": (f"{event_prefix}Reconfigured", "Normal"),
            "failed": (f"{event_prefix}ReconfigureFailed", "Warning"),
            "stuck": (f"{event_prefix}ReconfigureStuck", "Warning"),
        }
        self.apply = False
        self.actions: list[dict[str, Any]] = []  # the latest writes and dry-run intents, newest last
        self._logged: dict[str, tuple[str, str | None, str]] = {}

    def _record(self, **action: Any) -> None:
        self.actions.append(action)
        del self.actions[:-50]

    async def request(
        self, ctx: AppContext, node: str, current: str, target: str, reason: str, now: float
    ) -> bool:
        """Set the label to `target` (and our request annotation). Returns whether it was written."""
        if not self.apply:
            self._record(node=node, action="reconfigure", target=target, dry_run=True, at=now)
            log.info(
                f"{self.what} dry-run",
                extra={"node": node, "current": current, "target": target, "why": reason},
            )
            return False
        annotation = Request(target, current, now).to_annotation()
        patch = {"metadata": {"labels": {self.label: target}, "annotations": {self.annotation: annotation}}}
        try:
            obj = await ctx.cluster.patch("Node", node, "", patch)
        except ApiError as exc:
            self.counter.labels(node, "error").inc()
            log.warning(
                f"{self.what} label not set", extra={"node": node, "target": target, "error": str(exc)}
            )
            return False
        self.counter.labels(node, "requested").inc()
        self._record(node=node, action="reconfigure", target=target, dry_run=False, at=now)
        log.info(
            f"{self.what} reconfigure requested",
            extra={"node": node, "label": self.label, "current": current, "target": target, "why": reason},
        )
        event, _ = self.events["requested"]
        await ctx.recorder.emit(
            obj, event, f"{self.label} {current or '(none)'} -> {target}: {reason}", action="Reconfigure"
        )
        return True

    async def report(self, ctx: AppContext, node: str, request: Request, status: Status, text: str) -> None:
        """Report an outcome once: the metric, an Event, and the annotation remembering it was said."""
        if not self.apply:
            return  # dry-run writes nothing, not even the bookkeeping of an earlier run's request
        self.counter.labels(node, RESULTS[status]).inc()
        log.log(
            logging.INFO if status == "success" else logging.WARNING,
            f"{self.what} reconfigure {status}",
            extra={"node": node, "config": request.config, "previous": request.previous, "text": text},
        )
        done = Request(request.config, request.previous, request.at, status)
        try:
            await ctx.cluster.patch(
                "Node", node, "", {"metadata": {"annotations": {self.annotation: done.to_annotation()}}}
            )
        except ApiError as exc:
            log.warning(f"{self.what} request not updated", extra={"node": node, "error": str(exc)})
        reason, kind = self.events[status]
        await self.event(ctx, node, reason, text, kind)

    async def event(self, ctx: AppContext, node: str, reason: str, text: str, kind: str) -> None:
        obj = ctx.cluster.get("Node", node) or {"metadata": {"name": node}}
        obj = {"kind": "Node", "apiVersion": "v1", **obj}
        await ctx.recorder.emit(obj, reason, text, type="Warning" if kind == "Warning" else "Normal")

    def log_decisions(self, nodes: Sequence[NodeDecision], **extra: Any) -> None:
        """One structured line per node whose decision changed since the last cycle."""
        for np in nodes:
            key = (np.action, np.target, np.reason)
            if self._logged.get(np.node) == key:
                continue
            self._logged[np.node] = key
            log.info(
                f"{self.what} decision",
                extra={
                    "node": np.node,
                    "action": np.action,
                    "current": np.current,
                    "target": np.target,
                    "why": np.reason,
                    "blocked_by": np.blocked_by,
                    "state": np.state,
                    "apply": self.apply,
                    **extra,
                },
            )
