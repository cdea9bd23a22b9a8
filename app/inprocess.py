"""Serve the app from a thread of this process: the demo and the HTTP benchmarks drive a real uvicorn
server on loopback while they keep a handle on its cluster view."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str, port: int, ready_timeout: float = 30.0) -> Iterator[str]:
    """Start uvicorn in a daemon thread, wait until `/readyz` answers 200, yield the base URL; stop on exit.

    Raises TimeoutError when the app is not ready in time (the cluster view never loaded)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="inprocess-server", daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or not thread.is_alive():
                    raise TimeoutError(f"server on {base} did not become ready within {ready_timeout:g} s")
                time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
