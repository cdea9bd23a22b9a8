"""EventRecorder: the Event shape `kubectl describe` shows, throttling per (object, reason), never raising."""

from __future__ import annotations

from typing import Any

from app.cluster.base import ApiError, Obj
from app.cluster.snapshot import SnapshotCluster
from app.events import EventRecorder
from app.loops import PeriodicLoop

POD: Obj = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "nb-0", "namespace": "notebooks", "uid": "u-1"},
}
NODE: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dgx-0", "uid": "n-1"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_event_shape_and_throttle() -> None:
    view = SnapshotCluster()
    await view.start()
    clock = Clock()
    rec = EventRecorder(view, instance="replica-a", clock=clock)
    assert await rec.emit(
        POD, "GPUWaste", "score 80: suggest mig-1g.10gb", type="Warning", min_interval_s=3600
    )
    clock.now += 1800
    assert not await rec.emit(POD, "GPUWaste", "again", type="Warning", min_interval_s=3600)
    assert await rec.emit(POD, "OtherReason", "different reason is not throttled", min_interval_s=3600)
    clock.now += 1801
    assert await rec.emit(POD, "GPUWaste", "an hour later", type="Warning", min_interval_s=3600)
    assert await rec.emit(NODE, "MIGReconfigure", "all-1g.10gb")
    events = list(view.others["Event"].values())
    assert len(events) == 4
    first = next(e for e in events if e["message"].startswith("score 80"))
    assert first["involvedObject"] == {
        "kind": "Pod",
        "name": "nb-0",
        "namespace": "notebooks",
        "apiVersion": "v1",
        "uid": "u-1",
    }
    assert first["type"] == "Warning" and first["reason"] == "GPUWaste" and first["count"] == 1
    assert first["metadata"]["namespace"] == "notebooks" and first["metadata"]["name"].startswith("nb-0.")
    assert first["reportingInstance"] == "replica-a" and first["firstTimestamp"].endswith("Z")
    node_event = next(e for e in events if e["reason"] == "MIGReconfigure")
    assert node_event["metadata"]["namespace"] == "default"
    assert "namespace" not in node_event["involvedObject"]


async def test_a_refused_event_is_logged_not_raised() -> None:
    class Refusing(SnapshotCluster):
        async def create(self, kind: str, obj: Obj) -> Obj:
            raise ApiError(403, "events is forbidden")

    rec = EventRecorder(Refusing())
    assert not await rec.emit(POD, "GPUWaste", "x")


async def test_loop_gate_skips_cycles_while_not_leading() -> None:
    calls: list[int] = []
    leading = {"now": False}

    async def fn() -> Any:
        calls.append(1)

    loop = PeriodicLoop("t", 60, fn, gate=lambda: leading["now"])
    assert await loop.run_once() and calls == [] and loop.skipped == 1
    leading["now"] = True
    assert await loop.run_once() and calls == [1] and loop.cycles == 1
