"""A real HTTP server on a loopback port that plays a sick Prometheus: down, slow, or answering garbage.

`mode` can change while it runs: "ok" answers every instant query with the vector `responder(query)` gives
(empty by default), "slow" accepts and never answers, "garbage" answers 200 with bytes that are not the
API's JSON, "html" answers a proxy's error page. `down_url()` is a port where nothing listens (connection
refused). Used by the fault tests of the webhook history, the autoscaler collector and the waste collector.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, query: str) -> None:
        srv = self.server
        srv.requests += 1
        mode = srv.mode
        if mode == "slow":
            srv.release.wait(60)
            return
        if mode == "garbage":
            body, ctype = b'{"status": "success", "data": [1, 2, 3', "application/json"
        elif mode == "html":
            body, ctype = b"<html><body>502 Bad Gateway</body></html>", "text/html"
        else:
            result = srv.responder(query)
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            ).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(parse_qs(urlsplit(self.path).query).get("query", [""])[0])

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        self._answer(form.get("query", [""])[0])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mode = "ok"
    requests = 0
    responder: Callable[[str], list[dict[str, Any]]] = staticmethod(lambda query: [])
    release: threading.Event


class SickPrometheus:
    """`with SickPrometheus("slow") as prom: prom.url ...`; set `prom.mode` to change its behaviour."""

    def __init__(self, mode: str = "ok", port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.release = threading.Event()
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._down: socket.socket | None = None
        self.mode = mode

    @property
    def mode(self) -> str:
        return self._server.mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._server.mode = value
        if value != "slow":
            self._server.release.set()  # let held requests go (they then answer in the new mode)
            self._server.release = threading.Event()

    @property
    def requests(self) -> int:
        return self._server.requests

    def answer_with(self, responder: Callable[[str], list[dict[str, Any]]]) -> None:
        """The vector each PromQL query gets in "ok" mode."""
        self._server.responder = responder  # type: ignore[assignment]

    def __enter__(self) -> SickPrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.release.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def down_url() -> Iterator[str]:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"
