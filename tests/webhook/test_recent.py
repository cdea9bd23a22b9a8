"""The webhook keeps its last decisions (bounded) for the console: GET /webhook/decisions."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.webhook.conftest import TEXT_EMBED, load_review, usage
from webhook import component as webhook_component
from webhook.component import WebhookComponent
from webhook.history import RecordedHistory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def setup() -> Iterator[tuple[TestClient, WebhookComponent]]:
    comp = WebhookComponent(Settings(cluster="demo"))
    app = create_app(Settings(cluster="demo"), components=[lambda _s: comp])
    with TestClient(app) as client:
        comp.set_history_source(RecordedHistory({TEXT_EMBED: {"vllm": usage(6.0, 0.09)}}, "recorded (test)"))
        yield client, comp


def test_decisions_newest_first_with_outcome_profile_and_reasons(
    setup: tuple[TestClient, WebhookComponent],
) -> None:
    client, _ = setup
    client.post("/mutate", json=load_review("pod_create_deployment.json"))
    client.post("/mutate", json=load_review("pod_create_multigpu.json"))
    client.post("/mutate", content=b"not json")  # malformed: answered 400, not a decision
    recent = client.get("/webhook/decisions").json()["recent"]
    assert len(recent) == 2
    newest, first = recent
    assert first["outcome"] == "mutated" and first["profile"] == "1g.10gb"
    assert first["namespace"] == "inference" and first["reasons"] and first["at"] > 0
    assert newest["outcome"] != "mutated" and any("never sliced" in r for r in newest["reasons"])


def test_bounded(setup: tuple[TestClient, WebhookComponent]) -> None:
    client, comp = setup
    raw = load_review("pod_create_deployment.json")
    for i in range(webhook_component.RECENT + 5):
        review = copy.deepcopy(raw)
        review["request"]["uid"] = f"uid-{i}"
        client.post("/mutate", json=review)
    recent = comp.describe()["recent"]
    assert len(recent) == webhook_component.RECENT
    assert recent[0]["uid"] == f"uid-{webhook_component.RECENT + 4}"
