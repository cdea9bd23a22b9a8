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
