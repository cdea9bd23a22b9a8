"""Per-node configuration requests through NVIDIA's own node labels, shared by the MIG layout controller
(`nvidia.com/mig.config`, applied by the GPU Operator's mig-manager) and the GPU-sharing controller
(`nvidia.com/device-plugin.config`, applied by the device plugin).

When a controller changes such a label it also writes one annotation on the Node holding its request: the
config asked for, the one before, when, and the last result it reported. Everything the controllers need to
stay safe across restarts and leader changes can then be read back from the Node itself: the per-node
cooldown, whether the label still says what we asked (a hand edit since means the request is no longer
ours), and whether the result was already reported (an Event and a metric once, not once per process).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from app.cluster.base import parse_timestamp

#: what a request has come to: none (not ours, or no request), in_progress, stuck (past the timeout), a result
Status = Literal["none", "in_progress", "stuck", "success", "failed"]
#: results worth reporting once each (an Event and a metric)
REPORTED: tuple[Status, ...] = ("stuck", "success", "failed")
#: keep: nothing to do; reconfigure: change the label now; blocked: a better config is held back
Action = Literal["keep", "reconfigure", "blocked"]


@dataclass
class NodeDecision:
    """One node's line of a plan: the JSON both `mig plan` and `sharing plan` print, and the console shows."""

    node: str
    current: str | None
    target: str | None
    action: Action = "keep"
    reason: str = ""
    blocked_by: list[str] = field(default_factory=list)  # running pods holding the node
    state: str = ""  # what the applier reports (mig-manager's state; sharing: the GFD labels)
    request: Status = "none"  # our last request on the node

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "current": self.current,
            "target": self.target,
            "action": self.action,
            "reason": self.reason,
            "blocked_by": list(self.blocked_by),
            "state": self.state,
            "request": self.request,
        }


@dataclass(frozen=True)
class Request:
    """A controller's last label change on one Node (the JSON of its request annotation)."""

    config: str
    previous: str
    at: float  # epoch seconds
    result: str = ""  # the last status reported for it ("" = none yet)

    def to_annotation(self) -> str:
        body = {
            "config": self.config,
            "previous": self.previous,
            "requestedAt": rfc3339(self.at),
            "result": self.result,
        }
        return json.dumps(body, separators=(",", ":"))


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """RFC 3339 (as Kubernetes writes timestamps) -> epoch seconds; None when unreadable."""
    t = parse_timestamp(value)
    return t.timestamp() if t is not None else None


def read_request(annotations: Mapping[str, Any], key: str) -> Request | None:
    """The request annotation `key`; None when absent or unreadable (then nothing is ours to follow)."""
    raw = annotations.get(key)
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        return None
    at = parse_time(body.get("requestedAt"))
    if at is None:
        return None
    return Request(str(body["config"]), str(body.get("previous") or ""), at, str(body.get("result") or ""))


def request_status(
    request: Request | None,
    label: str,
    *,
    failed: bool,
    done: bool,
    now: float,
    timeout_s: float,
) -> Status:
    """Where our request stands, from what the node shows now.

    `failed`: the applier reported failure (mig-manager's `failed` state); `done`: the node shows the asked
    config in effect (state `success` and the slices advertised, or the sharing labels). A request whose
    config the label no longer names was replaced by hand: not ours any more."""
    if request is None or label != request.config:
        return "none"
    if failed:
        return "failed"
    if done:
        return "success"
    return "stuck" if now - request.at > timeout_s else "in_progress"


def in_cooldown(request: Request | None, now: float, cooldown_s: float) -> float:
    """Seconds of cooldown left on a node after our last request (0 when none)."""
    if request is None:
        return 0.0
    return max(0.0, request.at + cooldown_s - now)


class NodePlans:
    """What the MIG and sharing plans share: nodes, unmet demand, where the configs came from, notes.
    Subclasses are dataclasses declaring these fields; `as_dict` adds their own."""

    nodes: Sequence[NodeDecision]
    unmet: dict[str, int]
    config_source: str
    notes: list[str]

    def node(self, name: str) -> Any:
        return next((n for n in self.nodes if n.node == name), None)

    def base_dict(self) -> dict[str, Any]:
        return {
            "nodes": [n.as_dict() for n in self.nodes],
            "unmet": dict(self.unmet),
            "config_source": self.config_source,
            "notes": list(self.notes),
        }
