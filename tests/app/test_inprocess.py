"""serve_in_thread: the demo's and the HTTP benchmarks' way to run the real server on loopback."""

from __future__ import annotations

import httpx
import pytest

from app.cluster.snapshot import SnapshotCluster
from app.inprocess import free_port, serve_in_thread
from app.main import create_app
from app.settings import Settings, load_settings
from tests.app.test_app_lifespan import SlowCluster


@pytest.fixture
def settings() -> Settings:
    return load_settings({"cluster": "demo"})


def test_serves_until_the_block_ends(settings: Settings) -> None:
    port = free_port()
    app = create_app(settings, cluster=SnapshotCluster(), components=[])
    with serve_in_thread(app, "127.0.0.1", port) as base:
        assert base == f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz", timeout=1)


def test_times_out_when_the_view_never_loads(settings: Settings) -> None:
    app = create_app(settings, cluster=SlowCluster(), components=[])
    with (
        pytest.raises(TimeoutError, match="did not become ready"),
        serve_in_thread(app, "127.0.0.1", free_port(), ready_timeout=0.5),
    ):
        pass
