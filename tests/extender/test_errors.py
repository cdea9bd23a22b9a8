"""Malformed bodies -> 400 naming the field; internal problems -> HTTP 200 with Error (never 5xx)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.extender.conftest import make_pod, sample


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "body: empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"NodeNames": ["a"]}', "Pod"),
        (b'{"Pod": {"metadata": {}, "spec": {"containers": []}}, "NodeNames": ["a"]}', "Pod.spec.containers"),
        (b'{"Pod": {"spec": {"containers": [{}]}}, "NodeNames": ["a"]}', "Pod.metadata"),
        (b'{"Pod": {"metadata": {}, "spec": {"containers": [{}]}}, "NodeNames": "a"}', "NodeNames"),
        (b'{"Pod": {"metadata": {}, "spec": {"containers": [{}]}}}', "Nodes/NodeNames"),
        (b'{"Pod": {"metadata": {}, "spec": {"containers": [{}]}}, "Nodes": {"items": 3}}', "Nodes.items"),
        (
            b'{"Pod": {"metadata": {}, "spec": {"containers": [{}]}}, "Nodes": {"items": [3]}}',
            "Nodes.items.0",
        ),
    ],
)
@pytest.mark.parametrize("verb", ["/filter", "/prioritize"])
def test_malformed_body_is_400(sample_client: Any, verb: str, body: bytes, needle: str) -> None:
    client, _, _ = sample_client
    resp = client.post(verb, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert needle in resp.json()["error"]


def test_bad_quantity_is_400(sample_client: Any) -> None:
    client, _, _ = sample_client
    pod = make_pod("p", gpus=1)
    pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "lots"
    resp = client.post("/filter", json={"Pod": pod, "NodeNames": ["0001-gpu-a100-0"]})
    assert resp.status_code == 400
    assert "nvidia.com/gpu" in resp.json()["error"]


def test_internal_error_goes_into_error_field(sample_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, comp = sample_client

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("state exploded")

    monkeypatch.setattr(comp.service, "filter", boom)
    monkeypatch.setattr(comp.service, "prioritize", boom)
    body = sample("extender-filter-nodenames.json")
    resp = client.post("/filter", json=body)
    assert resp.status_code == 200
    out = resp.json()
    assert "state exploded" in out["Error"]
    assert set(out) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    resp = client.post("/prioritize", json=body)
    assert resp.status_code == 200
    assert resp.json() == [{"Host": n, "Score": 0} for n in body["NodeNames"]]
    assert 'outcome="error"' in client.get("/metrics").text
