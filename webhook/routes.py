"""HTTP edge of the webhook: POST /mutate (AdmissionReview v1 in, AdmissionReview v1 out)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.openapi import ERRORS, request_body
from webhook.models import AdmissionReview, AdmissionReviewOut

if TYPE_CHECKING:
    from webhook.component import WebhookComponent


def build_router(component: WebhookComponent) -> APIRouter:
    router = APIRouter(tags=["webhook"])

    @router.post(
        "/mutate",
        responses={200: {"model": AdmissionReviewOut, "description": "AdmissionReview v1 answer"}, **ERRORS},
        openapi_extra=request_body(AdmissionReview, "AdmissionReview v1 (admission.k8s.io/v1) of a Pod"),
    )
    async def mutate(request: Request) -> Response:
        """Reads the raw body (no FastAPI body model) so malformed input gets our 400 naming the field.
        A review that cannot be decided within the budget is admitted unchanged (fail open), never left
        hanging until the API server's own timeout."""
        body = await request.body()
        budget = component.settings.webhook_budget_seconds
        try:
            status, payload = await asyncio.wait_for(component.handle(body), timeout=budget)
        except TimeoutError:
            status, payload = component.over_budget(body, budget)
        return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")

    @router.get("/webhook/decisions")
    async def decisions() -> dict[str, Any]:
        """The last admission decisions with their reasons (what the console shows)."""
        return component.describe()

    return router
