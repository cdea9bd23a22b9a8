"""Limits (issue 11, item 2): bodies over --max-body-bytes get 413 before they are read whole; a request that
overruns its budget gets the extender's Error / Score 0, never a hang; the grace watchdog ends a shutdown
that hangs."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.limits import BodyLimit
from app.main import create_app
from app.settings import Settings
from extender.component import ExtenderComponent
from tests.extender.conftest import make_pod

LIMIT = 1024 * 1024


class Recorder:
    """An ASGI app that reads the whole body, counting what it got."""

    def __init__(self) -> None:
        self.read = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            self.read += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, headers: list[tuple[bytes, bytes]], chunks: int, size: int) -> tuple[int, int]:
    """(status, chunks the server pulled) for a body of `chunks` x `size` bytes."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled < chunks}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/filter", "headers": headers}
    await app(scope, receive, send)
    return sent[0]["status"], pulled


async def test_declared_length_over_the_limit_is_refused_unread() -> None:
    inner = Recorder()
    app = BodyLimit(inner, LIMIT)
    status, pulled = await call(app, [(b"content-length", str(20 * LIMIT).encode())], 20, LIMIT)
    assert (status, pulled, inner.read) == (413, 0, 0)


async def test_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    inner = Recorder()
    app = BodyLimit(inner, LIMIT)
    status, pulled = await call(app, [(b"transfer-encoding", b"chunked")], 20, 256 * 1024)
    assert status == 413 and pulled == 5  # 4 x 256 KiB fit, the 5th passes the limit: 15 never read


async def test_bodies_within_the_limit_pass_whole() -> None:
    inner = Recorder()
    app = BodyLimit(inner, LIMIT)
    status, _ = await call(app, [(b"content-length", str(LIMIT).encode())], 4, LIMIT // 4)
    assert status == 200 and inner.read == LIMIT


def test_413_through_the_app_names_the_setting() -> None:
    settings = Settings(cluster="demo", max_body_bytes=LIMIT)
    with TestClient(create_app(settings, components=[ExtenderComponent])) as client:
        big = {"Pod": make_pod("p", gpus=1), "NodeNames": ["node-name"] * 200_000}
        resp = client.post("/filter", json=big)
        assert resp.status_code == 413 and "--max-body-bytes" in resp.json()["error"]
        assert client.post("/filter", json={"Pod": make_pod("p", gpus=1), "NodeNames": []}).status_code == 200
        metrics = client.get("/metrics").text
        assert 'gpu_autoscaler_requests_refused_total{reason="body_too_large"}' in metrics


def test_extender_over_budget_answers_error_and_neutral_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(cluster="demo", extender_budget_seconds=0.2)
    release = threading.Event()
    with TestClient(create_app(settings, components=[ExtenderComponent])) as client:
        comp = client.app.state.ctx.components["extender"]  # type: ignore[attr-defined]

        def stuck(*a: Any, **k: Any) -> Any:
            release.wait(10)
            raise RuntimeError("released")

        monkeypatch.setattr(comp.service, "filter", stuck)
        monkeypatch.setattr(comp.service, "prioritize", stuck)
        body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["dgx-h100-0", "dgx-h100-1"]}
        try:
            out = client.post("/filter", json=body).json()
            assert out["NodeNames"] is None and "no answer within its 0.2s budget" in out["Error"]
            scores = client.post("/prioritize", json=body).json()
            assert scores == [{"Host": "dgx-h100-0", "Score": 0}, {"Host": "dgx-h100-1", "Score": 0}]
        finally:
            release.set()
        metrics = client.get("/metrics").text
        assert 'gpu_autoscaler_extender_requests_total{outcome="timeout",verb="filter"}' in metrics


def test_grace_watchdog_ends_a_shutdown_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from app.commands import serve

    ended = threading.Event()
    monkeypatch.setattr(serve, "_exit_now", lambda grace: ended.set())
    server = serve.graceful_server(uvicorn.Config(create_app(Settings(cluster="demo"), components=[])), 0.05)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    assert ended.wait(5), "the watchdog fired"
    server.handle_exit(signal.SIGTERM, None)  # a second signal does not start a second watchdog
    time.sleep(0.1)


async def test_budget_never_waits_for_a_decision_stuck_in_its_thread() -> None:
    """The decision runs in a worker thread, so the event loop stays free to answer (never a hang)."""
    settings = Settings(cluster="demo", extender_budget_seconds=0.1)
    app = create_app(settings, components=[ExtenderComponent])
    import httpx

    async with app.router.lifespan_context(app):
        comp = app.state.ctx.components["extender"]
        release = threading.Event()

        def stuck(*a: Any, **k: Any) -> Any:
            release.wait(10)
            return {}

        comp.service.filter = stuck
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["dgx-h100-0"]}
            slow = asyncio.create_task(client.post("/filter", json=body))
            health = await client.get("/healthz")  # the loop answers meanwhile
            assert health.status_code == 200 and not slow.done()
            assert "budget" in (await slow).json()["Error"]
        release.set()
