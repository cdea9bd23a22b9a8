"""Budget admission: `POST /validate-budget`, a validating webhook that refuses new GPU pods of a namespace
(or cost centre, the pod's `gpu-cost-center` label) whose GPU spend this month is past its hard budget.

Self-contained: it only needs something that says where each budget stands (the cost capability's latest
`BudgetStatus` per scope) and whether enforcement is on (`--enforce-budgets`, off by default). Off, a pod of
an over-budget scope is admitted with a warning saying so; on, it is denied with a message naming the budget
and by how much it is exceeded. Pods asking no GPU, other operations and anything it cannot read are admitted.
Registered by `manifests/webhook/budget-validatingwebhookconfiguration.yaml` with `failurePolicy: Ignore`:
a budget check never blocks the cluster when the service is down.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import Counter

from app.cost.budgets import BudgetStatus, ScopeKey
from app.metrics import REGISTRY
from app.openapi import ERRORS, request_body
from extender.inventory import InventoryError, parse_pod
from webhook.models import AdmissionResponse, AdmissionReview, AdmissionReviewOut, ReviewError, parse_review

log = logging.getLogger(__name__)

LABEL_COST_CENTER = "gpu-cost-center"
PREFIX = "gpu-autoscaler: "

BUDGET_REVIEWS = Counter(
    "gpu_autoscaler_budget_admissions_total",
    "Pod admissions checked against GPU budgets, by outcome (allowed, warned, denied)",
    ["outcome"],
    registry=REGISTRY,
)


def _over(status: BudgetStatus) -> str:
    b = status.budget
    return (
        f"{b.scope} {b.name} is over its GPU budget: ${status.spent_usd:,.2f} spent in "
        f"{status.now:%Y-%m} of ${b.monthly_usd:,.2f} (hard limit {b.hard_pct:g}% = ${b.hard_usd:,.2f}), "
        f"over by ${status.over_by_usd:,.2f}"
    )


def review_budget(
    review: AdmissionReview,
    states: Mapping[ScopeKey, BudgetStatus],
    enforce: bool,
    where: str = "gpu-budgets",
) -> tuple[AdmissionResponse, str]:
    """(the response, outcome: allowed | warned | denied) for one review."""
    req = review.request
    ok = AdmissionResponse(uid=req.uid, allowed=True)
    if req.kind.kind != "Pod" or req.operation != "CREATE" or req.subResource or not req.object:
        return ok, "allowed"
    try:
        ask = parse_pod(req.object)
    except InventoryError:
        return ok, "allowed"
    if not ask.wants_gpu:
        return ok, "allowed"
    namespace = req.namespace or ask.namespace
    labels = (req.object.get("metadata") or {}).get("labels") or {}
    scopes: list[ScopeKey] = [("namespace", namespace)]
    if labels.get(LABEL_COST_CENTER):
        scopes.append(("cost-center", str(labels[LABEL_COST_CENTER])))
    over = [states[s] for s in scopes if s in states and states[s].state == "exceeded"]
    if not over:
        return ok, "allowed"
    text = "; ".join(_over(s) for s in over)
    if not enforce:
        return AdmissionResponse(uid=req.uid, allowed=True, warnings=[PREFIX + text[:240]]), "warned"
    message = (
        f"{PREFIX}{text}. New GPU pods are refused until the month ends or the budget ({where}) is raised."
    )
    status = {"code": 403, "reason": "Forbidden", "message": message}
    return AdmissionResponse(uid=req.uid, allowed=False, status=status), "denied"


def build_router(
    states: Callable[[], Mapping[ScopeKey, BudgetStatus]], enforce: bool, where: str = "gpu-budgets"
) -> APIRouter:
    router = APIRouter(tags=["webhook"])

    @router.post(
        "/validate-budget",
        responses={200: {"model": AdmissionReviewOut, "description": "AdmissionReview v1 answer"}, **ERRORS},
        openapi_extra=request_body(AdmissionReview, "AdmissionReview v1 of a Pod (validating)"),
    )
    async def validate_budget(request: Request) -> Response:
        status, payload = handle(await request.body(), states(), enforce, where)
        return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")

    return router


def handle(
    body: bytes, states: Mapping[ScopeKey, BudgetStatus], enforce: bool, where: str = "gpu-budgets"
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body): 400 naming the field for a malformed review, else an AdmissionReview."""
    try:
        review = parse_review(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return 400, {"error": f"body: not valid JSON: {exc}"}
    except ReviewError as exc:
        return 400, {"error": str(exc), "field": exc.field}
    response, outcome = review_budget(review, states, enforce, where)
    BUDGET_REVIEWS.labels(outcome).inc()
    if outcome != "allowed":
        log.info(
            "budget admission",
            extra={
                "outcome": outcome,
                "namespace": review.request.namespace,
                "pod": review.request.name or (review.request.object or {}).get("metadata", {}).get("name"),
                "reason": (response.status or {}).get("message") or (response.warnings or [""])[0],
            },
        )
    return 200, {
        "apiVersion": review.apiVersion,
        "kind": "AdmissionReview",
        "response": response.model_dump(exclude_none=True),
    }
