"""The service's OpenAPI document, complete enough to fuzz against (schemathesis, tests/app/test_fuzz_api.py).

The verbs read their raw body themselves (so a malformed one gets our 400 naming the field, and big node lists
are not copied through pydantic), which leaves FastAPI nothing to document: `request_body(Model)` puts the
wire model's JSON schema in the route's `openapi_extra`, and `install(app)` moves the models it refers to
into `components.schemas`. `ERRORS` documents the error replies every verb can give.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
#: models a request body refers to, hoisted into components.schemas
_COMPONENTS: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """Every error reply: one sentence naming the field at fault (`field` on the webhook's 400)."""

    error: str
    field: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not what the verb reads; `error` names the field"},
    413: {"model": ErrorBody, "description": "The body is larger than --max-body-bytes (refused unread)"},
}


def request_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` as its JSON body."""
    schema = model.model_json_schema(ref_template=_REF)
    _COMPONENTS.update(schema.pop("$defs", {}))
    _COMPONENTS[model.__name__] = schema
    body: dict[str, Any] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def _bad_parameter() -> dict[str, Any]:
    return {
        "description": "A parameter is missing or not what the route reads; `error` names it",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
    }


def install(app: FastAPI) -> None:
    """Serve the document with the request-body models in `components.schemas`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_COMPONENTS)
            schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template=_REF))
            # a parameter that does not validate is our 400 naming it (app/main.py), never FastAPI's 422
            for ops in doc.get("paths", {}).values():
                for op in ops.values():
                    responses = op.get("responses", {})
                    if responses.pop("422", None) is not None:
                        responses.setdefault("400", _bad_parameter())
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
