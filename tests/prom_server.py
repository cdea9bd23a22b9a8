"""The real Prometheus server for integration tests (`make prometheus` installs it and promtool).

`PrometheusServer` starts one on a free port over a config and a data folder, ready when `/-/ready` answers,
stopped (and restartable over the same data) by the test. `Exporters` serves one /metrics/<name> per registry
the test fills (vLLM pods, a gateway, DCGM…); a name in `broken` answers 500, so Prometheus marks its series
stale as after a real scrape failure. `prometheus(tmp_path, jobs)` scrapes those every second and yields the
server's URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="needs the prometheus server binary (make prometheus installs it)"
)


class Exporters:
    """Loopback HTTP server: GET /metrics/<name> renders `registries[name]`."""

    def __init__(self) -> None:
        self.registries: dict[str, CollectorRegistry] = {}
        self.broken: set[str] = set()
        exporters = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                if name not in exporters.registries or name in exporters.broken:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = generate_latest(exporters.registries[name])
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def registry(self, name: str) -> CollectorRegistry:
        return self.registries.setdefault(name, CollectorRegistry())

    def close(self) -> None:
        self.server.shutdown()


def job(name: str, port: int, labels: dict[str, str] | None = None) -> str:
    """One scrape job for /metrics/<name>, with target labels (e.g. namespace, pod)."""
    extra = ", ".join(f"{k}: {v}" for k, v in (labels or {}).items())
    return f"""  - job_name: {name}
    metrics_path: /metrics/{name}
    static_configs:
      - targets: ['127.0.0.1:{port}']
        labels: {{{extra}}}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    def __init__(self, config: Path, data: Path, *args: str) -> None:
        self.config = config
        self.data = data
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> str:
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"prometheus did not start: {err}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def prometheus(tmp_path: Path, jobs: list[str]) -> Iterator[str]:
    """A Prometheus scraping `jobs` every second; yields its base URL once it is ready."""
    cfg = tmp_path / "prometheus.yml"
    body = "\n".join(jobs)
    cfg.write_text(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{body}\n")
    server = PrometheusServer(cfg, tmp_path / "data")
    try:
        server.start(timeout=20)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.url
    finally:
        server.stop()
