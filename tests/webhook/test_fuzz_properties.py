"""Hypothesis over AdmissionReviews broken at a random place (issue 11, item 5): `/mutate`'s handler never
raises; it answers 400 naming the field, or 200 with the uid echoed, allowed, and a patch that applies."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.settings import Settings
from tests.webhook.conftest import NB_ALICE, QWEN, TEXT_EMBED, load_review, usage
from webhook.component import WebhookComponent
from webhook.history import RecordedHistory

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
REVIEWS = ["pod_create_deployment.json", "pod_create_notebook.json", "pod_create_multigpu.json"]


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON document (for the mutation to pick one)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def _demo() -> AppContext:
    cluster = SnapshotCluster()
    asyncio.run(cluster.start())
    return AppContext(settings=Settings(cluster="demo"), cluster=cluster)


#: the demo cluster: its namespaces opt in to MIG rewrites, its A100 node offers slices
DEMO = _demo()


def component() -> WebhookComponent:
    comp = WebhookComponent(Settings(cluster="demo"))
    comp._ctx = DEMO
    table = {
        key: {"vllm": usage(6.0, 0.09), "notebook": usage(3.0, 0.05)} for key in (TEXT_EMBED, NB_ALICE, QWEN)
    }
    comp.set_history_source(RecordedHistory(table))
    return comp


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(REVIEWS), value=JSON, drop=st.booleans())
def test_handler_never_raises_on_broken_reviews(data: Any, name: str, value: Any, drop: bool) -> None:
    raw = load_review(name)
    where = data.draw(st.sampled_from(paths(raw)[1:]))
    parent = raw
    for part in where[:-1]:
        parent = parent[part]
    if drop and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    status, body = asyncio.run(component().handle(json.dumps(raw).encode()))
    event(f"{status} {'patched' if 'patch' in body.get('response', {}) else 'unchanged'}")
    if status == 400:
        assert isinstance(body["error"], str) and body["error"]
        return
    assert status == 200
    response = body["response"]
    assert response["uid"] == raw["request"]["uid"] and response["allowed"] is True
    if "patch" in response:
        ops = json.loads(base64.b64decode(response["patch"]))
        jsonpatch.apply_patch(copy.deepcopy(raw["request"]["object"]), ops)  # applies cleanly
