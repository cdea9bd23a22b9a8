"""Polling helpers for tests: wait for a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable

import httpx


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def until_http_ok(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200; fail at once with the server's stderr if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout}s"
        time.sleep(0.1)
