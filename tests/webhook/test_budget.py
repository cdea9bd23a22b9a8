"""Budget admission (/validate-budget): which pods are refused, the message, warnings when not enforced."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.cost.budgets import Budget, BudgetStatus, statuses
from webhook.budget import build_router, handle

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webhook" / "pod_create_deployment.json"
NOW = datetime(2025, 6, 20, tzinfo=UTC)


def review(
    namespace: str = "inference",
    resources: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    operation: str = "CREATE",
) -> dict[str, Any]:
    r = copy.deepcopy(json.loads(FIXTURE.read_text()))
    r["request"]["namespace"] = namespace
    r["request"]["operation"] = operation
    pod = r["request"]["object"]
    pod["metadata"]["namespace"] = namespace
    pod["metadata"].setdefault("labels", {}).update(labels or {})
    if resources is not None:
        for c in pod["spec"]["containers"]:
            c["resources"] = {"limits": resources}
    return r


def states(*spent: tuple[str, str, float]) -> dict[tuple[str, str], BudgetStatus]:
    budgets = [Budget(scope, name, 1000) for scope, name, _ in spent]
    got = statuses(budgets, {(s, n): v for s, n, v in spent}, {}, NOW)
    return {s.budget.key: s for s in got}


OVER = states(("namespace", "inference", 1250.5), ("cost-center", "cc-1", 1000), ("namespace", "ok", 10))


@pytest.mark.parametrize(
    ("case", "body", "enforce", "outcome"),
    [
        ("over its hard budget, enforced: denied", review(), True, "denied"),
        ("over, not enforced: admitted with a warning", review(), False, "warned"),
        ("a namespace under budget", review("ok"), True, "allowed"),
        ("a namespace without a budget", review("other"), True, "allowed"),
        ("a pod asking no GPU", review(resources={"cpu": "1"}), True, "allowed"),
        (
            "a MIG slice counts as a GPU pod",
            review(resources={"nvidia.com/mig-1g.10gb": "1"}),
            True,
            "denied",
        ),
        ("an UPDATE is not a new pod", review(operation="UPDATE"), True, "allowed"),
        ("its cost centre is over budget", review("ok", labels={"gpu-cost-center": "cc-1"}), True, "denied"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_budget_review(case: str, body: dict[str, Any], enforce: bool, outcome: str) -> None:
    status, out = handle(json.dumps(body).encode(), OVER, enforce, "ConfigMap gpu-autoscaler/gpu-budgets")
    assert status == 200
    resp = out["response"]
    assert resp["uid"] == body["request"]["uid"] and out["kind"] == "AdmissionReview"
    assert resp["allowed"] is (outcome != "denied")
    if outcome == "warned":
        assert resp["warnings"][0].startswith("gpu-autoscaler: namespace inference is over its GPU budget")
    if outcome == "allowed":
        assert "warnings" not in resp and "status" not in resp


def test_denial_names_the_budget_and_by_how_much() -> None:
    _, out = handle(json.dumps(review()).encode(), OVER, True, "ConfigMap gpu-autoscaler/gpu-budgets")
    status = out["response"]["status"]
    assert status["code"] == 403
    assert status["message"] == (
        "gpu-autoscaler: namespace inference is over its GPU budget: $1,250.50 spent in 2025-06 of "
        "$1,000.00 (hard limit 100% = $1,000.00), over by $250.50. New GPU pods are refused until the month "
        "ends or the budget (ConfigMap gpu-autoscaler/gpu-budgets) is raised."
    )


@pytest.mark.parametrize(("body", "field"), [(b"{", "body"), (b'{"kind": "AdmissionReview"}', "apiVersion")])
def test_malformed_reviews_get_400(body: bytes, field: str) -> None:
    status, out = handle(body, OVER, True)
    assert status == 400 and field in (out.get("field") or out["error"])


def test_route() -> None:
    app = FastAPI()
    app.include_router(build_router(lambda: OVER, True))
    with TestClient(app) as client:
        r = client.post("/validate-budget", json=review())
    assert r.status_code == 200 and r.json()["response"]["allowed"] is False
