"""HTTP edge of the console. Handlers are plain `def`s: FastAPI runs them in its thread pool, so building a
page for a large cluster never holds up /filter, /prioritize or /mutate on the event loop."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
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
MAX_POLL_BYTES = 4 * 1024 * 1024  # a poll's row digests: ~40 bytes a node


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

    @router.get("/ui/", include_in_schema=False)
    def slash(request: Request) -> Response:
        """One address for the page: its relative links ("ui/…") resolve from `/ui`, behind any prefix."""
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(_base(request) + query, status_code=307)

    @router.get("/ui", include_in_schema=False)
    def page(
        request: Request, product: str = "", namespace: str = "", all_nodes: bool = Query(False, alias="all")
    ) -> Response:
        """The console, rendered on the server: the first paint needs no script. Large clusters get their
        first `first_rows` nodes in the page and the rest from the page's script right after (`all=1`:
        every node in the page, for browsers without scripts)."""
        filters = _filters(product, namespace)
        console.viewed()
        snap = console.snapshot(filters)
        query = {k: v for k, v in (("product", filters.product), ("namespace", filters.namespace)) if v}
        html = render.render_fragment(
            "console.html",
            vm=snap.vm,
            sections={name: Markup(html) for name, (_, html) in snap.sections.items()},
            digests={name: d for name, (d, _) in snap.sections.items()},
            rows=snap.rows if all_nodes else snap.rows[: console.first_rows],
            all_url=_base(request) + "?" + urlencode({**query, "all": "1"}),
            base=_base(request),
            refresh=console.settings.console_refresh_seconds,
        )
        return _respond(request, html, "text/html; charset=utf-8")

    def changes(request: Request, filters: Filters, have: set[str], rows: dict[str, str]) -> Response:
        console.viewed()
        snap = console.snapshot(filters)
        gmap = snap.vm["map"]
        body: dict[str, Any] = {
            "generated": snap.vm["generated"],
            "sections": {
                name: {"hash": d, "html": None if d in have else html}
                for name, (d, html) in snap.sections.items()
            },
            "grid": {
                "order": [r.node for r in snap.rows],
                "rows": {r.node: r.html for r in snap.rows if rows.get(r.node) != r.digest},
            },
            "options": {"products": gmap["products"], "namespaces": gmap["namespaces"]},
        }
        return _respond(request, json.dumps(body), "application/json")

    @router.get("/ui/sections")
    def sections(
        request: Request,
        product: str = "",
        namespace: str = "",
        have: str = Query("", description="digests of the sections the page shows, comma-separated"),
    ) -> Response:
        """Each section's digest and its HTML where the page's differs, and the map's rows (all of them:
        POST the rows' digests to get only the changed ones)."""
        return changes(request, _filters(product, namespace), set(have.split(",")), {})

    @router.post("/ui/sections")
    async def sections_for(request: Request) -> Response:
        """What the live page polls. Body: {"have": [section digests], "rows": {node: row digest},
        "product": "", "namespace": ""}; only what differs comes back (one changed pod: one row)."""
        raw = await request.body()
        if len(raw) > MAX_POLL_BYTES:
            return JSONResponse({"error": f"body: larger than {MAX_POLL_BYTES} bytes"}, status_code=400)
        try:
            body = json.loads(raw or b"{}")
            have = {str(d) for d in body.get("have") or []}
            rows = {str(k): str(v) for k, v in (body.get("rows") or {}).items()}
            filters = _filters(str(body.get("product") or ""), str(body.get("namespace") or ""))
        except (ValueError, AttributeError, TypeError) as exc:
            return JSONResponse({"error": f"body: {exc}"}, status_code=400)
        return await run_in_threadpool(changes, request, filters, have, rows)

    @router.get("/ui/data")
    def data(request: Request, product: str = "", namespace: str = "") -> Response:
        """The view model as JSON: what the page shows, for scripts and dashboards."""
        vm = console.snapshot(_filters(product, namespace), sections=False).vm
        return _respond(request, json.dumps(vm, default=str), "application/json")

    @router.get(
        "/ui/gpu",
        responses={
            200: {"content": {"text/html": {}}, "description": "An HTML fragment with the GPU's details"},
            404: {"content": {"text/html": {}}, "description": "No such node or GPU in the view"},
        },
    )
    def gpu(request: Request, node: str, gpu: str) -> Response:
        """One GPU's details (the map's click target): who holds it, its links, its use and waste."""
        details = console.get_gpu(node, gpu)
        if details is None:
            text = render.render_fragment("gpu_missing.html", node=node, gpu=gpu)
            return _respond(request, text, "text/html; charset=utf-8", status=404)
        return _respond(request, render.render_fragment("gpu.html", **details), "text/html; charset=utf-8")

    @router.get(
        "/ui/decision",
        responses={
            200: {"content": {"text/html": {}}, "description": "The decision as an HTML fragment or page"},
            404: {"content": {"text/html": {}}, "description": "No longer among the recent decisions"},
        },
    )
    def decision(request: Request, key: str, fragment: bool = False) -> Response:
        """One scheduling decision: each node's score parts and the filter reasons (the page's script asks
        for the `fragment` when a decision is opened; without a script the link opens the whole page)."""
        entry = console.get_decision(key)
        if entry is None:
            text = "<p class='warn-note'>That decision is no longer among the recent ones.</p>"
            return _respond(request, text, "text/html; charset=utf-8", status=404)
        if fragment:
            html = render.render_fragment("decision.html", decision=entry)
        else:
            html = render.render_fragment("decision_page.html", decision=entry, base=_base(request))
        return _respond(request, html, "text/html; charset=utf-8")

    @router.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = files.get(name)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            path, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        )

    return router
