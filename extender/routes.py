"""HTTP adapter: POST /filter and /prioritize in kube-scheduler's extender wire format.

- Malformed body (not JSON, no `Pod`, wrong types, unreadable Pod) -> HTTP 400 `{"error": "<field>: why"}`.
- Well-formed body -> always HTTP 200. An internal problem goes into the filter's `Error` field; prioritize
  (a bare array with no error field) then answers Score 0 for every node, which the scheduler treats like
  "no preference", and the error is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import pydantic_core
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from app.metrics import REGISTRY
from app.openapi import ERRORS, request_body
from extender.inventory import InventoryError, PodAsk, parse_pod
from extender.service import ExtenderService
from extender.wire import (
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
    canonical_keys,
    filter_result,
)

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "gpu_autoscaler_extender_requests_total",
    "Scheduler-extender calls by verb and outcome (ok, passthrough, bad_request, error, timeout)",
    ["verb", "outcome"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "gpu_autoscaler_extender_duration_seconds",
    "Time to answer one scheduler-extender call (parse, decide, serialise)",
    ["verb"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)


class BadRequest(ValueError):
    """The body is not an ExtenderArgs; the message names the field."""


def parse_args(body: bytes) -> tuple[ExtenderArgs, PodAsk]:
    """Raw body -> (ExtenderArgs, the pod's ask), or BadRequest naming what is wrong."""
    if not body:
        raise BadRequest("body: empty (expected ExtenderArgs JSON with Pod and Nodes or NodeNames)")
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:
        raise BadRequest(f"body: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"body: expected a JSON object (ExtenderArgs), got {type(data).__name__}")
    data = canonical_keys(data)
    try:
        args = ExtenderArgs.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        raise BadRequest(f"{loc}: {err.get('msg', 'invalid')}") from exc
    if args.Nodes is not None:
        for i, item in enumerate(args.Nodes.items):
            if not isinstance(item, dict):
                raise BadRequest(f"Nodes.items.{i}: expected a Node object, got {type(item).__name__}")
    if args.Nodes is None and args.NodeNames is None:
        raise BadRequest("Nodes/NodeNames: one of them must be given (NodeNames when nodeCacheCapable)")
    try:
        ask = parse_pod(args.Pod)  # a malformed Pod is a 400, not an internal failure
    except InventoryError as exc:
        raise BadRequest(str(exc)) from exc
    return args, ask


def parse_binding(body: bytes) -> ExtenderBindingArgs:
    """Raw body -> ExtenderBindingArgs, or BadRequest naming what is wrong."""
    try:
        data = pydantic_core.from_json(body) if body else None
    except ValueError as exc:
        raise BadRequest(f"body: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object (ExtenderBindingArgs)")
    try:
        return ExtenderBindingArgs.model_validate(canonical_keys(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        raise BadRequest(f"{loc}: {err.get('msg', 'invalid')}") from exc


def _json(content: Any) -> Response:
    return Response(content=pydantic_core.to_json(content), media_type="application/json")


def _filter_error(args: ExtenderArgs, exc: Exception) -> Any:
    log.error("extender filter failed", exc_info=exc)
    why = str(exc) if isinstance(exc, TimeoutError) else f"extender internal error: {exc}"
    return filter_result(nodes=None, node_names=None, failed={}, unresolvable={}, error=why)


def _prioritize_error(args: ExtenderArgs, exc: Exception) -> Any:
    log.error("extender prioritize failed; answering Score 0 for every node", exc_info=exc)
    return [{"Host": n, "Score": 0} for n in ExtenderService._input_names(args)]


#: decisions run here, one at a time (they serialise on the node state's lock anyway), so the event loop
#: can answer `Error` when one overruns its budget instead of hanging with it
_DECIDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extender-decide")


async def _answer(
    verb: str,
    request: Request,
    decide: Callable[[ExtenderArgs, PodAsk], Any],
    on_error: Callable[[ExtenderArgs, Exception], Any],
    budget_s: float,
) -> Response:
    """One verb: parse (400 naming the field), decide within the budget, serialise; outcome and latency are
    always counted. Over budget -> the filter's `Error` / Score 0 for every node, never a hang."""
    start = time.perf_counter()
    outcome = "ok"
    try:
        try:
            args, ask = parse_args(await request.body())
        except BadRequest as exc:
            outcome = "bad_request"
            return JSONResponse({"error": str(exc)}, status_code=400)
        outcome = "ok" if ask.wants_gpu else "passthrough"
        remaining = budget_s - (time.perf_counter() - start)
        try:
            if remaining <= 0:
                raise TimeoutError()
            work = asyncio.get_running_loop().run_in_executor(_DECIDER, decide, args, ask)
            result = await asyncio.wait_for(work, timeout=remaining)
        except TimeoutError:
            outcome = "timeout"
            result = on_error(args, TimeoutError(f"extender: no answer within its {budget_s:g}s budget"))
        except Exception as exc:
            outcome = "error"
            result = on_error(args, exc)
        return _json(result)
    finally:
        REQUESTS.labels(verb, outcome).inc()
        DURATION.labels(verb).observe(time.perf_counter() - start)


def build_router(get_service: Callable[[], ExtenderService], budget_s: float = 4.0) -> APIRouter:
    router = APIRouter(tags=["scheduler-extender"])

    @router.post(
        "/filter",
        responses={200: {"model": ExtenderFilterResult, "description": "ExtenderFilterResult"}, **ERRORS},
        openapi_extra=request_body(ExtenderArgs, "kube-scheduler ExtenderArgs (Nodes or NodeNames)"),
    )
    async def filter_verb(request: Request) -> Response:
        return await _answer(
            "filter", request, lambda a, p: get_service().filter(a, p), _filter_error, budget_s
        )

    @router.post(
        "/prioritize",
        responses={200: {"model": list[HostPriority], "description": "HostPriorityList"}, **ERRORS},
        openapi_extra=request_body(ExtenderArgs, "kube-scheduler ExtenderArgs (Nodes or NodeNames)"),
    )
    async def prioritize_verb(request: Request) -> Response:
        return await _answer(
            "prioritize", request, lambda a, p: get_service().prioritize(a, p), _prioritize_error, budget_s
        )

    @router.post(
        "/bind",
        responses={200: {"model": ExtenderBindingResult, "description": "ExtenderBindingResult"}, **ERRORS},
        openapi_extra=request_body(ExtenderBindingArgs, "kube-scheduler ExtenderBindingArgs (binder mode)"),
    )
    async def bind_verb(request: Request) -> Response:
        """Binder mode (`bindVerb: bind`): ExtenderBindingArgs in, ExtenderBindingResult out."""
        start = time.perf_counter()
        outcome = "ok"
        try:
            try:
                args = parse_binding(await request.body())
            except BadRequest as exc:
                outcome = "bad_request"
                return JSONResponse({"error": str(exc)}, status_code=400)
            try:
                result = await get_service().bind(args)
            except Exception as exc:  # never a 5xx: kube-scheduler reads Error and retries the pod
                log.exception("extender bind failed")
                result = {"Error": f"extender internal error: {exc}"}
            if result.get("Error"):
                outcome = "error"
            return _json(result)
        finally:
            REQUESTS.labels("bind", outcome).inc()
            DURATION.labels("bind").observe(time.perf_counter() - start)

    @router.get("/extender/placements")
    async def placements(pod: str | None = None) -> dict[str, Any]:
        """Where the extender last steered pods (node, GPU ids, score parts): the answer to "why there?"."""
        service = get_service()
        items = service.last_placement.items()
        return {k: asdict(v) for k, v in items if pod is None or k == pod}

    return router
