"""POST /mutate through the real app: status codes, wire shape, metrics, fail-open on slow or broken parts."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.metrics import REGISTRY
from app.settings import Settings
from tests.webhook.conftest import TEXT_EMBED, apply_response, load_review, usage
from webhook.component import WebhookComponent
from webhook.history import RecordedHistory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def component() -> WebhookComponent:
    return WebhookComponent(Settings(cluster="demo", history_timeout_seconds=0.2))


@pytest.fixture
def client(component: WebhookComponent) -> Iterator[TestClient]:
    app = create_app(Settings(cluster="demo"), components=[lambda _s: component])
    with TestClient(app) as c:
        component.set_history_source(
            RecordedHistory({TEXT_EMBED: {"vllm": usage(6.0, 0.09)}}, "recorded (test)")
        )
        yield c


def _count(outcome: str, profile: str) -> float:
    value = REGISTRY.get_sample_value(
        "gpu_autoscaler_webhook_mutations_total", {"outcome": outcome, "profile": profile}
    )
    return value or 0.0


def test_mutate_answers_an_admission_review(client: TestClient) -> None:
    raw = load_review("pod_create_deployment.json")
    before = _count("mutated", "1g.10gb")
    resp = client.post("/mutate", json=raw)
    assert resp.status_code == 200
    body = resp.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    r = body["response"]
    assert r["uid"] == raw["request"]["uid"] and r["allowed"] is True and r["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(r["patch"]))
    assert {"op": "remove", "path": "/spec/containers/0/resources/limits/nvidia.com~1gpu"} in ops
    patched = apply_response(raw["request"]["object"], r)
    assert patched["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert _count("mutated", "1g.10gb") == before + 1
    assert "gpu_autoscaler_webhook_mutations_total" in client.get("/metrics").text


def test_dry_run_makes_no_side_effects(client: TestClient) -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["dryRun"] = True
    before = _count("mutated", "1g.10gb")
    r = client.post("/mutate", json=raw).json()["response"]
    assert r["patchType"] == "JSONPatch"
    assert _count("mutated", "1g.10gb") == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"kind": "AdmissionReview", "request": {}}).encode(), "apiVersion"),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(),
            "apiVersion",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request"),
    ],
)
def test_malformed_reviews_get_400_naming_the_field(client: TestClient, body: bytes, field: str) -> None:
    resp = client.post("/mutate", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"].startswith(field)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["request"].pop("uid"), "request.uid"),
        (lambda r: r["request"].update(uid=""), "request.uid"),
        (lambda r: r["request"].pop("operation"), "request.operation"),
        (
            lambda r: r["request"]["object"]["spec"].update(containers="vllm"),
            "request.object.spec.containers",
        ),
        (lambda r: r["request"]["object"]["spec"].update(containers=[]), "request.object.spec.containers"),
        (lambda r: r["request"].update(object=None), "request.object"),
        (
            lambda r: r["request"]["object"]["spec"]["containers"][0]["resources"].update(limits=[1]),
            "request.object.spec.containers.0.resources.limits",
        ),
    ],
)
def test_malformed_pods_get_400_naming_the_field(client: TestClient, mutate: Any, field: str) -> None:
    raw = load_review("pod_create_deployment.json")
    mutate(raw)
    resp = client.post("/mutate", json=raw)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field


def test_slow_prometheus_does_not_slow_admission(client: TestClient, component: WebhookComponent) -> None:
    component.set_history_source(RecordedHistory({TEXT_EMBED: {"vllm": usage(6.0, 0.09)}}, delay=5.0))
    raw = load_review("pod_create_deployment.json")
    started = time.perf_counter()
    r = client.post("/mutate", json=raw).json()["response"]
    assert time.perf_counter() - started < 1.5
    assert r["allowed"] is True and "patch" not in r
    assert any("took over" in w for w in r["warnings"])


def test_broken_prometheus_fails_open(client: TestClient, component: WebhookComponent) -> None:
    component.set_history_source(RecordedHistory({}, fail=True))
    r = client.post("/mutate", json=load_review("pod_create_deployment.json")).json()["response"]
    assert r["allowed"] is True and "patch" not in r and any("unavailable" in w for w in r["warnings"])


def test_internal_error_fails_open(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("webhook.component.decide", boom)
    raw = load_review("pod_create_deployment.json")
    resp = client.post("/mutate", json=raw)
    assert resp.status_code == 200
    r = resp.json()["response"]
    assert r == {"uid": raw["request"]["uid"], "allowed": True, "warnings": [r["warnings"][0]]}
    assert "internal error" in r["warnings"][0]


def test_unknown_fields_are_tolerated(client: TestClient) -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["someFutureField"] = {"x": 1}
    raw["futureTopLevel"] = True
    assert client.post("/mutate", json=raw).status_code == 200
