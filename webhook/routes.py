"""HTTP edge of the webhook: POST /mutate (AdmissionReview v1 in, AdmissionReview v1 out)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

if TYPE_CHECKING:
    from webhook.component import WebhookComponent


def build_router(component: WebhookComponent) -> APIRouter:
    router = APIRouter(tags=["webhook"])

    @router.post("/mutate")
    async def mutate(request: Request) -> Response:
        """Reads the raw body (no FastAPI body model) so malformed input gets our 400 naming the field."""
        status, payload = await component.handle(await request.body())
        return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")

    @router.get("/webhook/decisions")
    async def decisions() -> dict[str, Any]:
        """The last admission decisions with their reasons (what the console shows)."""
        return component.describe()

    return router
