"""Thin adapter over the Prometheus HTTP API: one instant query, its vector answer, clear errors.

Every capability that reads Prometheus (autoscaler, webhook history, waste) sends its queries through here,
so the answer checking (status, result type) is written once.
"""

from __future__ import annotations

from typing import Any

import httpx


class PrometheusError(RuntimeError):
    """Prometheus answered, but not with a usable vector (an error status or another result type)."""


async def query_vector(
    client: httpx.AsyncClient, base_url: str, promql: str, *, method: str = "GET"
) -> list[dict[str, Any]]:
    """Run an instant query (`/api/v1/query`) and return its samples (`[{"metric": {...}, "value": [t, v]}]`).

    POST suits long queries (the form body has no URL length limit); GET is cache-friendly. Transport and
    HTTP errors propagate as httpx errors; a bad answer raises PrometheusError.
    """
    url = f"{base_url.rstrip('/')}/api/v1/query"
    if method == "POST":
        resp = await client.post(url, data={"query": promql})
    else:
        resp = await client.get(url, params={"query": promql})
    resp.raise_for_status()
    try:
        body = resp.json()
    except ValueError as exc:
        raise PrometheusError(f"prometheus: answer is not JSON ({resp.text[:60]!r})") from exc
    if not isinstance(body, dict):
        raise PrometheusError(f"prometheus: answer is not a JSON object ({type(body).__name__})")
    if body.get("status") != "success":
        raise PrometheusError(f"prometheus: {body.get('errorType', '?')}: {body.get('error', '?')}")
    data = body.get("data") or {}
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusError(f"prometheus: expected a vector, got {got}")
    result = data.get("result") or []
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise PrometheusError("prometheus: vector result is not a list of samples")
    return result
