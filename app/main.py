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

from app import __version__
from app.cluster.base import ClusterView
from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext, Component
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


def create_app(
    settings: Settings,
    cluster: ClusterView | None = None,
    components: Sequence[ComponentFactory] | None = None,
) -> FastAPI:
    cluster = cluster or build_cluster(settings)
    ctx = AppContext(settings=settings, cluster=cluster)
    for factory in default_components() if components is None else components:
        comp = factory(settings)
        ctx.components[comp.name] = comp

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        BUILD_INFO.labels(__version__).set(1)
        await cluster.start()
        CLUSTER_READY.set_function(lambda: 1.0 if cluster.ready else 0.0)  # live: kube may sync later
        started: list[Component] = []
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
        if cluster.ready:
            return JSONResponse({"status": "ready", "cluster": cluster.source})
        return JSONResponse({"status": "not ready", "reason": "cluster view not loaded"}, status_code=503)

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
