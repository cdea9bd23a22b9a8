"""ASGI middleware at the edge of every request: body size limit and, with mutual TLS, the client certificate.

Plain ASGI (not Starlette's BaseHTTPMiddleware) so a refusal happens before the body is read: a declared
`Content-Length` over the limit is answered 413 at once; a body without one (chunked) is counted as it
streams and refused as soon as it passes the limit, never buffered whole.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter

from app.metrics import REGISTRY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REFUSED = Counter(
    "gpu_autoscaler_requests_refused_total",
    "Requests refused at the edge before any handler ran, by reason (body_too_large, client_cert_required)",
    ["reason"],
    registry=REGISTRY,
)


class _TooLarge(Exception):
    """The streamed body passed the limit (raised from `receive`, caught by the middleware)."""


async def _reply(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for bodies over `max_bytes`, before they are read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"body: larger than {self.max_bytes} bytes (--max-body-bytes)"
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "Content-Length: not a number")
                return
            if int(declared) > self.max_bytes:
                REFUSED.labels("body_too_large").inc()
                await _reply(send, 413, too_large)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            REFUSED.labels("body_too_large").inc()
            if not started:
                await _reply(send, 413, too_large)


class ClientCertRequired:
    """With mutual TLS on, POST endpoints (/filter, /prioritize, /mutate…) need a verified client
    certificate; GETs (probes, /metrics, the JSON views) stay open. The TLS layer put the verified subject in
    the ASGI `tls` extension (certs/reload.py); a certificate our CA did not sign never got that far."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            tls = (scope.get("extensions") or {}).get("tls") or {}
            if not tls.get("client_cert_name"):
                REFUSED.labels("client_cert_required").inc()
                await _reply(send, 403, "client certificate required (mutual TLS: --tls-client-ca)")
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None
