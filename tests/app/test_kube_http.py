"""The real-client adapter against a tiny fake apiserver over HTTP: paths, paging, watch streaming,
a missing CRD and merge patches, end to end through KubeCluster."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes.client import ApiClient, Configuration

from app.cluster.kube import ClientKubeApi, KubeCluster
from app.cluster.snapshot import demo_snapshot_path, load_snapshot

NODES = [o for o in load_snapshot(demo_snapshot_path()) if o["kind"] == "Node"]


class FakeApiserver(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict[str, list[str]], str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = parse_qs(url.query)
        self.requests.append(("GET", url.path, q, ""))
        if url.path == "/api/v1/nodes" and q.get("watch") == ["true"]:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            new = {
                **NODES[0],
                "metadata": {**NODES[0]["metadata"], "name": "gpu-new", "resourceVersion": "77"},
            }
            for ev in ({"type": "ADDED", "object": new},):
                self.wfile.write((json.dumps(ev) + "\n").encode())
            self.wfile.flush()
            return  # server ends the watch; the client re-watches
        if url.path == "/api/v1/nodes":
            items = [{k: v for k, v in n.items() if k not in ("kind", "apiVersion")} for n in NODES]
            if "continue" not in q:
                meta = {"resourceVersion": "70", "continue": "page2"}
                return self._send(
                    200, {"kind": "NodeList", "apiVersion": "v1", "metadata": meta, "items": items[:4]}
                )
            last = {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "70"}}
            return self._send(200, {**last, "items": items[4:]})
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
        }
        self._send(404, status)

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append(("PATCH", self.path, {}, self.headers["Content-Type"] + " " + body))
        node = {k: v for k, v in NODES[1].items()}
        node["metadata"] = {
            **node["metadata"],
            "labels": {**node["metadata"]["labels"], **json.loads(body)["metadata"]["labels"]},
        }
        self._send(200, node)


@pytest.fixture
def apiserver() -> Iterator[str]:
    FakeApiserver.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiserver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_kube_cluster_over_http(apiserver: str) -> None:
    api = ClientKubeApi(ApiClient(Configuration(host=apiserver)))
    view = KubeCluster(api=api, kinds=("Node", "VariantAutoscaling"), initial_sync_timeout=10)
    await view.start()
    try:
        assert view.ready
        assert view.unavailable == {"VariantAutoscaling"}
        names = {n["metadata"]["name"] for n in view.list("Node")}
        assert set(n["metadata"]["name"] for n in NODES) <= names
        gets = [(p, q) for m, p, q, _ in FakeApiserver.requests if m == "GET"]
        assert ("/api/v1/nodes", {"limit": ["500"]}) in gets
        assert any(q.get("continue") == ["page2"] for p, q in gets if p == "/api/v1/nodes")
        assert any(p == "/apis/llmd.ai/v1alpha1/variantautoscalings" for p, _ in gets)
        # the watch's ADDED event lands in the view
        for _ in range(200):
            if view.get("Node", "gpu-new") is not None:
                break
            await asyncio.sleep(0.01)
        assert view.get("Node", "gpu-new") is not None
        gets = [(p, q) for m, p, q, _ in FakeApiserver.requests if m == "GET"]
        watches = [q for p, q in gets if p == "/api/v1/nodes" and q.get("watch") == ["true"]]
        assert (
            watches
            and watches[0]["resourceVersion"] == ["70"]
            and watches[0]["allowWatchBookmarks"] == ["true"]
        )

        name = NODES[1]["metadata"]["name"]
        new = await view.patch("Node", name, "", {"metadata": {"labels": {"team": "ml"}}})
        assert new["metadata"]["labels"]["team"] == "ml" and new["kind"] == "Node"
        patches = [(p, b) for m, p, _, b in FakeApiserver.requests if m == "PATCH"]
        assert patches == [
            (f"/api/v1/nodes/{name}", 'application/merge-patch+json {"metadata": {"labels": {"team": "ml"}}}')
        ]
    finally:
        await view.stop()


class WriteApiserver(BaseHTTPRequestHandler):
    """Answers the generic writes: records method, path, content type and body; scripted replies."""

    requests: list[tuple[str, str, str, Any]] = []
    replies: dict[tuple[str, str], tuple[int, Any]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        body = json.loads(raw) if raw else None
        path = urlparse(self.path).path
        self.requests.append((self.command, path, self.headers.get("Content-Type", ""), body))
        code, reply = self.replies.get((self.command, path), (200, body or {}))
        data = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _handle


@pytest.fixture
def write_server() -> Iterator[str]:
    WriteApiserver.requests, WriteApiserver.replies = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), WriteApiserver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
            "message": message}  # fmt: skip


async def test_generic_writes_use_the_api_paths_kubectl_uses(write_server: str) -> None:
    from app.cluster.base import Conflict, NotFound, TooManyRequests

    view = KubeCluster(api=ClientKubeApi(ApiClient(Configuration(host=write_server))), kinds=())
    view.connect()
    lease = {"metadata": {"name": "gpu-autoscaler", "namespace": "gpu-autoscaler", "resourceVersion": "5"},
             "spec": {"holderIdentity": "a"}}  # fmt: skip
    WriteApiserver.replies = {
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/gpu-autoscaler/leases/missing"): (
            404,
            _status(404, "NotFound", 'leases "missing" not found'),
        ),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/gpu-autoscaler/leases/gpu-autoscaler"): (
            409,
            _status(409, "Conflict", "the object has been modified"),
        ),
        ("POST", "/api/v1/namespaces/ml/pods/trainer-0/eviction"): (
            429,
            _status(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."
            ),
        ),
    }
    assert await view.read("Lease", "missing", "gpu-autoscaler") is None
    WriteApiserver.replies[("GET", "/apis/cluster.x-k8s.io/v1beta1/machinedeployments")] = (
        200,
        {"metadata": {"resourceVersion": "9"}, "items": [{"metadata": {"name": "md"}}]},
    )
    assert view._api is not None
    assert view._api.list("MachineDeployment")["items"] == [{"metadata": {"name": "md"}}]
    WriteApiserver.requests.clear()
    created = await view.create("Lease", lease)
    assert created["kind"] == "Lease" and created["apiVersion"] == "coordination.k8s.io/v1"
    with pytest.raises(Conflict, match="modified"):
        await view.replace("Lease", lease)
    await view.scale("MachineDeployment", "h100-pool", "capi", 3)
    with pytest.raises(TooManyRequests, match="disruption budget"):
        await view.evict("trainer-0", "ml")
    await view.bind("trainer-1", "ml", "gpu-7", uid="u-1")
    await view.create("Event", {"metadata": {"generateName": "x.", "namespace": "ml"}, "reason": "R"})
    seen = [(m, p, ct.split(";")[0]) for m, p, ct, _ in WriteApiserver.requests]
    assert seen == [
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/gpu-autoscaler/leases", "application/json"),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/gpu-autoscaler/leases/gpu-autoscaler",
         "application/json"),
        ("PATCH", "/apis/cluster.x-k8s.io/v1beta1/namespaces/capi/machinedeployments/h100-pool/scale",
         "application/merge-patch+json"),
        ("POST", "/api/v1/namespaces/ml/pods/trainer-0/eviction", "application/json"),
        ("POST", "/api/v1/namespaces/ml/pods/trainer-1/binding", "application/json"),
        ("POST", "/api/v1/namespaces/ml/events", "application/json"),
    ]  # fmt: skip
    bodies = [b for _, _, _, b in WriteApiserver.requests]
    assert bodies[2] == {"spec": {"replicas": 3}}
    assert bodies[3]["kind"] == "Eviction" and bodies[3]["apiVersion"] == "policy/v1"
    assert bodies[4]["target"] == {"apiVersion": "v1", "kind": "Node", "name": "gpu-7"}
    assert bodies[4]["metadata"]["uid"] == "u-1"
    with pytest.raises(NotFound):
        WriteApiserver.replies[("PATCH", "/api/v1/nodes/gone")] = (404, _status(404, "NotFound", "gone"))
        await view.patch("Node", "gone", "", {"metadata": {"labels": {"a": "b"}}})
