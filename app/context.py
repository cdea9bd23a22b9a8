"""Shared state handed to each capability (extender, webhook, autoscaler…) and the component contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Request

from app.cluster.base import ClusterView
from app.events import EventRecorder
from app.leader import AlwaysLeader, Leadership
from app.settings import Settings


@dataclass
class AppContext:
    """What every component may use. Components keep their own state on themselves."""

    settings: Settings
    cluster: ClusterView
    components: dict[str, Component] = field(default_factory=dict)
    #: background loops act only while this says so (see app/leader.py)
    leadership: Leadership = field(default_factory=AlwaysLeader)
    #: Kubernetes Events about the objects decisions touch (see app/events.py)
    events: EventRecorder | None = None

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = EventRecorder(self.cluster)

    @property
    def recorder(self) -> EventRecorder:
        assert self.events is not None
        return self.events


class Component(Protocol):
    """A capability plugged into the process: optional routes, optional background work.

    `start` runs in the lifespan after the cluster view is ready; `stop` on shutdown, in reverse order.
    """

    name: str

    def router(self) -> APIRouter | None: ...

    async def start(self, ctx: AppContext) -> None: ...

    async def stop(self) -> None: ...


def get_context(request: Request) -> AppContext:
    """FastAPI dependency: the AppContext of the running app."""
    ctx: AppContext = request.app.state.ctx
    return ctx


def get_component(request: Request, name: str) -> Any:
    return get_context(request).components[name]
