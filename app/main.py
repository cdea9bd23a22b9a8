"""Application factory: one FastAPI app, its lifespan starts the cluster view and every component."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app import __version__
from app.cluster.base import ClusterView
from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext, Component
from app.leader import AlwaysLeader, Leadership, LeaseElector, LeaseTiming
from app.limits import BodyLimit, ClientCertRequired
from app.metrics import BUILD_INFO, CLUSTER_READY, CONTENT_TYPE_LATEST, render
from app.openapi import install as install_openapi
from app.settings import Settings

log = logging.getLogger(__name__)

ComponentFactory = Callable[[Settings], Component]


def default_components() -> list[ComponentFactory]:
    """The capabilities one `serve` process runs, in start order."""
    factories: list[ComponentFactory] = []
    # Each capability registers its factory here (imported inside to keep CLI start-up cheap).
    from extender.component import ExtenderComponent

    factories.append(ExtenderComponent)
    from webhook.component import WebhookComponent

    factories.append(WebhookComponent)
    from app.autoscaler.component import AutoscalerComponent

    factories.append(AutoscalerComponent)
    from app.waste.component import WasteComponent

    factories.append(WasteComponent)
    from app.nodescale.component import NodeScaleComponent

    factories.append(NodeScaleComponent)
    from app.mig.component import MigComponent

    factories.append(MigComponent)
    from app.sharing.component import SharingComponent

    factories.append(SharingComponent)
    from app.cost.component import CostComponent

    factories.append(CostComponent)
    from app.console.component import ConsoleComponent

    factories.append(ConsoleComponent)
    return factories


def build_cluster(settings: Settings) -> ClusterView:
    """`demo`, `kube`, `auto` (kube when a kubeconfig or in-cluster config exists, else demo) or a PATH."""
    choice = settings.cluster
    if choice == "auto":
        from app.cluster.kube import kube_config_available

        choice = "kube" if kube_config_available() else "demo"
    if choice == "demo":
        return SnapshotCluster()
    if choice == "kube":
        from app.cluster.kube import KubeCluster

        return KubeCluster(resync_seconds=settings.kube_resync_seconds)
    return SnapshotCluster(Path(choice))


def build_leadership(settings: Settings, cluster: ClusterView) -> Leadership:
    """A Lease elector when replicas share the cluster (live API) and election is on; else always leader."""
    if not (settings.leader_election and cluster.shared):
        return AlwaysLeader()
    timing = LeaseTiming(
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    )
    return LeaseElector(
        cluster,
        name=settings.leader_election_lease,
        namespace=settings.namespace,
        identity=settings.leader_election_identity,
        timing=timing,
    )


def create_app(
    settings: Settings,
    cluster: ClusterView | None = None,
    components: Sequence[ComponentFactory] | None = None,
) -> FastAPI:
    cluster = cluster or build_cluster(settings)
    ctx = AppContext(settings=settings, cluster=cluster, leadership=build_leadership(settings, cluster))
    elector = ctx.leadership if isinstance(ctx.leadership, LeaseElector) else None
    for factory in default_components() if components is None else components:
        comp = factory(settings)
        ctx.components[comp.name] = comp

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        BUILD_INFO.labels(__version__).set(1)
        await cluster.start()
        CLUSTER_READY.set_function(lambda: 1.0 if cluster.ready else 0.0)  # live: kube may sync later
        started: list[Component] = []
        if elector is not None:
            elector.start()  # campaigns in the background; loops gated on it wait for the first win
        try:
            for comp in ctx.components.values():
                await comp.start(ctx)
                started.append(comp)
            names = [c.name for c in started]
            log.info("service started", extra={"components": names, "cluster": cluster.source})
            yield
        finally:
            for comp in reversed(started):
                try:
                    await asyncio.wait_for(comp.stop(), timeout=10)
                except Exception:  # pragma: no cover - shutdown must go on
                    log.exception("component stop failed", extra={"component": comp.name})
            if elector is not None:
                await elector.stop(release=True)  # after the loops stopped: no overlap with the next leader
            await cluster.stop()
            CLUSTER_READY.set_function(lambda: 0.0)
            log.info("service stopped")

    app = FastAPI(title="gpu-autoscaler", version=__version__, lifespan=lifespan)
    app.state.ctx = ctx
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.tls_client_ca is not None:
        app.add_middleware(ClientCertRequired)  # outermost: refused before anything is read

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """400 (not FastAPI's 422) naming the first field at fault, as the contract says."""
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse(status_code=400, content={"error": f"{loc}: {first.get('msg', 'invalid')}"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """405 lists every method the path has (Starlette names only the first route's)."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            methods = [
                m
                for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
                if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in app.router.routes)
            ]
            if methods:
                headers["Allow"] = ", ".join(methods)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={
            200: {"model": Readiness, "description": "The cluster view is loaded"},
            503: {"model": Readiness, "description": "Not ready yet (the reason says why)"},
        },
    )
    async def readyz() -> JSONResponse:
        """Serving: every replica answers /filter, /prioritize, /mutate once its cluster view is loaded."""
        leader = ctx.leadership.is_leader
        if cluster.ready:
            return JSONResponse({"status": "ready", "cluster": cluster.source, "leader": leader})
        return JSONResponse(
            {"status": "not ready", "reason": "cluster view not loaded", "leader": leader}, status_code=503
        )

    @app.get("/leaderz")
    async def leaderz() -> JSONResponse:
        """Leading: 200 on the replica that runs the background loops, 503 on standbys (not a readiness
        probe: standbys serve requests too)."""
        info = ctx.leadership.describe()
        return JSONResponse(info, status_code=200 if info["leader"] else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}
        },
    )
    async def metrics() -> Response:
        return Response(render(), media_type=CONTENT_TYPE_LATEST)

    for comp in ctx.components.values():
        router = comp.router()
        if router is not None:
            app.include_router(router)
    install_openapi(app)
    return app


class Readiness(BaseModel):
    status: str
    cluster: str | None = None
    reason: str | None = None
