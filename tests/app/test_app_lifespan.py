"""App factory and lifespan: health, readiness gated on the cluster view, our own metrics registry,
components started in order and stopped in reverse."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app.cluster.base import ClusterView, Obj
from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.main import build_cluster, create_app
from app.metrics import REGISTRY
from app.settings import Settings, load_settings


class Body(BaseModel):
    count: int


class SlowCluster(ClusterView):
    """A view that starts without being ready (like a kube view still listing)."""

    started = False
    stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def become_ready(self) -> None:
        self._ready.set()

    async def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        raise NotImplementedError


class Recorder:
    """A component that records its lifecycle into a shared journal and serves one route."""

    def __init__(self, name: str, journal: list[str], fail_start: bool = False) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.ctx: AppContext | None = None

    def router(self) -> APIRouter | None:
        r = APIRouter()

        @r.get(f"/_test/{self.name}")
        async def hello() -> dict[str, Any]:
            assert self.ctx is not None
            return {"name": self.name, "cluster_ready": self.ctx.cluster.ready}

        return r

    async def start(self, ctx: AppContext) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.ctx = ctx
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


def factory(name: str, journal: list[str], fail_start: bool = False) -> Any:
    return lambda settings: Recorder(name, journal, fail_start)


@pytest.fixture
def settings() -> Settings:
    return load_settings({"cluster": "demo"})


def test_health_ready_metrics_on_the_demo_cluster(settings: Settings) -> None:
    with TestClient(create_app(settings, cluster=SnapshotCluster(), components=[])) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert "gpu_autoscaler_build_info{version=" in text
        assert "gpu_autoscaler_cluster_ready 1.0" in text
        # our own registry, not the process-global default one
        for default_metric in (
            "process_cpu_seconds_total",
            "python_gc_objects_collected_total",
            "python_info",
        ):
            assert default_metric not in text


def test_readyz_is_503_until_the_view_is_ready(settings: Settings) -> None:
    cluster = SlowCluster()
    with TestClient(create_app(settings, cluster=cluster, components=[])) as client:
        assert cluster.started
        assert client.get("/healthz").status_code == 200, "live even when not ready"
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["reason"] == "cluster view not loaded"
        assert "gpu_autoscaler_cluster_ready 0.0" in client.get("/metrics").text
        cluster.become_ready()
        assert client.get("/readyz").status_code == 200
        assert "gpu_autoscaler_cluster_ready 1.0" in client.get("/metrics").text
    assert cluster.stopped


def test_components_start_in_order_and_stop_in_reverse(settings: Settings) -> None:
    journal: list[str] = []
    comps = [factory("a", journal), factory("b", journal), factory("c", journal)]
    app = create_app(settings, cluster=SnapshotCluster(), components=comps)
    assert list(app.state.ctx.components) == ["a", "b", "c"]
    with TestClient(app) as client:
        assert journal == ["start a", "start b", "start c"]
        assert client.get("/_test/b").json() == {"name": "b", "cluster_ready": True}
    assert journal[3:] == ["stop c", "stop b", "stop a"]


def test_a_failing_component_stops_the_ones_already_started(settings: Settings) -> None:
    journal: list[str] = []
    cluster = SlowCluster()
    comps = [factory("a", journal), factory("b", journal, fail_start=True), factory("c", journal)]
    with (
        pytest.raises(RuntimeError, match="b cannot start"),
        TestClient(create_app(settings, cluster, comps)),
    ):
        pass
    assert journal == ["start a", "stop a"]
    assert cluster.stopped


def test_malformed_body_is_400_naming_the_field(settings: Settings) -> None:
    app = create_app(settings, cluster=SnapshotCluster(), components=[])

    @app.post("/_test/body")
    async def body(b: Body) -> dict[str, int]:
        return {"count": b.count}

    with TestClient(app) as client:
        resp = client.post("/_test/body", json={"count": "many"})
        assert resp.status_code == 400
        assert resp.json()["error"].startswith("count:")


@pytest.mark.parametrize(
    ("choice", "kube_available", "expect"),
    [("demo", False, "SnapshotCluster"), ("auto", False, "SnapshotCluster"), ("auto", True, "KubeCluster"),
     ("kube", False, "KubeCluster")],
)  # fmt: skip
def test_build_cluster_choice(
    choice: str, kube_available: bool, expect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.cluster.kube.kube_config_available", lambda: kube_available)
    assert type(build_cluster(load_settings({"cluster": choice}))).__name__ == expect


def test_build_cluster_snapshot_path(tmp_path: Any) -> None:
    view = build_cluster(load_settings({"cluster": str(tmp_path)}))
    assert isinstance(view, SnapshotCluster) and view.path == tmp_path


def test_registry_is_not_the_global_default() -> None:
    from prometheus_client import REGISTRY as GLOBAL

    assert REGISTRY is not GLOBAL
