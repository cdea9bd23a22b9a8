"""HTTP edge of the console. Handlers are plain `def`s: FastAPI runs them in its thread pool, so building a
page for a large cluster never holds up /filter, /prioritize or /mutate on the event loop."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from markupsafe import Markup

from app.console import render
from app.console.view import Filters

if TYPE_CHECKING:
    from app.console.component import ConsoleComponent

#: the page runs only its own script and style sheet; inline `style` attributes size the bars
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
GZIP_MIN_BYTES = 16 * 1024
MAX_FILTER = 253  # longest Kubernetes name


def _filters(product: str, namespace: str) -> Filters:
    return Filters(product=product.strip()[:MAX_FILTER], namespace=namespace.strip()[:MAX_FILTER])


def _respond(request: Request, body: str, media_type: str, status: int = 200) -> Response:
    """The body, gzip-compressed when the client takes it and it is large (a 1,000-node map is ~2 MB)."""
    data = body.encode()
    headers = dict(HEADERS)
    headers["Vary"] = "Accept-Encoding"
    if len(data) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(data, status_code=status, media_type=media_type, headers=headers)


def _base(request: Request) -> str:
    """Where the console lives, behind any proxy prefix (`root_path`): links and polling use it."""
    return str(request.scope.get("root_path") or "").rstrip("/") + "/ui"


def build_router(console: ConsoleComponent) -> APIRouter:
    router = APIRouter(tags=["console"])
    files = render.static_files()

    @router.get("/ui", include_in_schema=False)
    @router.get("/ui/", include_in_schema=False)
    def page(request: Request, product: str = "", namespace: str = "") -> Response:
        """The console: every section rendered on the server, so the first paint needs no script."""
        filters = _filters(product, namespace)
        snap = console.snapshot(filters)
        html = render.render_fragment(
            "console.html",
            vm=snap.vm,
            sections={name: Markup(html) for name, (_, html) in snap.sections.items()},
            digests={name: d for name, (d, _) in snap.sections.items()},
            base=_base(request),
            refresh=console.settings.console_refresh_seconds,
        )
        return _respond(request, html, "text/html; charset=utf-8")

    @router.get("/ui/sections")
    def sections(
        request: Request,
        product: str = "",
        namespace: str = "",
        have: str = Query("", description="digests the page already shows, comma-separated"),
    ) -> Response:
        """What the live page polls: each section's digest, and its HTML only where the page's differs."""
        known = set(have.split(","))
        snap = console.snapshot(_filters(product, namespace))
        gmap = snap.vm["map"]
        body: dict[str, Any] = {
            "generated": snap.vm["generated"],
            "sections": {
                name: {"hash": d, "html": None if d in known else html}
                for name, (d, html) in snap.sections.items()
            },
            "options": {"products": gmap["products"], "namespaces": gmap["namespaces"]},
        }
        return _respond(request, json.dumps(body), "application/json")

    @router.get("/ui/data")
    def data(request: Request, product: str = "", namespace: str = "") -> Response:
        """The view model as JSON: what the page shows, for scripts and dashboards."""
        vm = console.snapshot(_filters(product, namespace), sections=False).vm
        return _respond(request, json.dumps(vm, default=str), "application/json")

    @router.get("/ui/gpu")
    def gpu(request: Request, node: str, gpu: str) -> Response:
        """One GPU's details (the map's click target): who holds it, its links, its use and waste."""
        details = console.get_gpu(node, gpu)
        if details is None:
            text = render.render_fragment("gpu_missing.html", node=node, gpu=gpu)
            return _respond(request, text, "text/html; charset=utf-8", status=404)
        return _respond(request, render.render_fragment("gpu.html", **details), "text/html; charset=utf-8")

    @router.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = files.get(name)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            path, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        )

    return router
