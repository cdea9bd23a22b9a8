"""KubeCluster without an apiserver: a fake `KubeApi` serves recorded objects (the demo snapshot, i.e. real
`kubectl get -o yaml` shapes) and scripted watch streams."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiException, V1ObjectMeta, V1Pod

from app.cluster.base import KINDS, ClusterEvent, Obj, merge_patch
from app.cluster.kube import (
    Backoff,
    ClientKubeApi,
    KubeCluster,
    kube_config_available,
    to_plain,
)
from app.cluster.snapshot import demo_snapshot_path, load_snapshot
from tests.waiting import until

RECORDED = load_snapshot(demo_snapshot_path())


def as_list_items(kind: str) -> list[Obj]:
    """Items as a LIST response carries them: without apiVersion/kind."""
    out = []
    for o in RECORDED:
        if o["kind"] == kind:
            item = copy.deepcopy(o)
            item.pop("apiVersion")
            item.pop("kind")
            out.append(item)
    return out


class FakeStream:
    """Yields scripted events, then blocks like an idle watch until closed or its timeout."""

    def __init__(self, events: list[Obj], timeout: float) -> None:
        self.events = events
        self.timeout = timeout
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[Obj]:
        yield from self.events
        self.closed.wait(self.timeout)

    def close(self) -> None:
        self.closed.set()


Script = list[Obj] | Exception


class FakeApi:
    """Scripted apiserver. `lists[kind]`: items or an exception (a callable gives one per call);
    `watches[kind]`: queue of scripts (events or an exception), then idle watches."""

    host = "https://fake:6443"

    def __init__(self) -> None:
        self.lists: dict[str, list[Obj] | Exception | Callable[[int], list[Obj] | Exception]] = {
            k: as_list_items(k) for k in KINDS
        }
        self.rv: dict[str, int] = dict.fromkeys(KINDS, 100)
        self.watches: dict[str, list[Script]] = {k: [] for k in KINDS}
        self.list_calls: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.watch_calls: list[tuple[str, str, int]] = []
        self.patches: list[tuple[str, str, str, Obj]] = []
        self.requests: list[tuple[str, str, Obj | None]] = []
        self.idle_timeout = 5.0

    def list(self, kind: str) -> Obj:
        self.list_calls[kind] += 1
        spec = self.lists[kind]
        result = spec(self.list_calls[kind]) if callable(spec) else spec
        if isinstance(result, Exception):
            raise result
        self.rv[kind] += 1
        return {"metadata": {"resourceVersion": str(self.rv[kind])}, "items": copy.deepcopy(result)}

    def watch(self, kind: str, resource_version: str, timeout_seconds: int) -> FakeStream:
        self.watch_calls.append((kind, resource_version, timeout_seconds))
        script = self.watches[kind].pop(0) if self.watches[kind] else []
        if isinstance(script, Exception):
            raise script
        return FakeStream(script, min(self.idle_timeout, timeout_seconds))

    def request(
        self, method: str, path: str, body: Obj | None = None, content_type: str | None = None
    ) -> Obj:
        """Other calls (Leases, Events, scale…): a GET finds nothing, a write echoes its body."""
        self.requests.append((method, path, body))
        if method == "GET":
            raise ApiException(status=404, reason="Not Found")
        out = copy.deepcopy(body or {})
        out.setdefault("metadata", {})["resourceVersion"] = str(len(self.requests))
        return out

    def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        self.patches.append((kind, name, namespace, patch))
        current = next(o for o in RECORDED if o["kind"] == kind and o["metadata"]["name"] == name)
        new = merge_patch(current, patch)
        new.pop("kind")
        return new


def event(etype: str, obj: Obj, rv: int) -> Obj:
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
    return {"type": etype, "object": obj}


def pod(name: str, ns: str = "inference") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c"}]},
    }


def fast_backoff() -> Backoff:
    return Backoff(base=0.001, cap=0.01)


def make(api: FakeApi, **kw: Any) -> KubeCluster:
    kw.setdefault("backoff", fast_backoff)
    kw.setdefault("initial_sync_timeout", 5.0)
    return KubeCluster(api=api, **kw)


async def test_initial_lists_make_the_view_ready_with_full_objects() -> None:
    api = FakeApi()
    view = make(api)
    assert not view.ready
    await view.start()
    try:
        assert view.ready
        assert view.source == "kube:https://fake:6443"
        assert len(view.list("Node")) == 7
        assert len(view.list("Pod")) == 10
        assert len(view.list("VariantAutoscaling", "inference")) == 4
        node = view.get("Node", "dgx-h100-0")
        assert node is not None and node["apiVersion"] == "v1" and node["kind"] == "Node"
        dep = view.get("Deployment", "qwen-32b-a100", "inference")
        assert dep is not None and dep["apiVersion"] == "apps/v1"
        va = view.get("VariantAutoscaling", "llama-8b-l40s", "inference")
        assert va is not None and va["apiVersion"] == "llmd.ai/v1alpha1"
        # each watch starts from its list's resourceVersion
        await until(lambda: len(api.watch_calls) >= len(KINDS))
        assert {(k, rv) for k, rv, _ in api.watch_calls} == {(k, "101") for k in KINDS}
    finally:
        await view.stop()
    assert not view.ready


async def test_watch_events_reach_the_view_and_listeners_on_the_loop_thread() -> None:
    api = FakeApi()
    api.watches["Pod"] = [
        [
            event("ADDED", pod("new-pod"), 200),
            event("MODIFIED", {**pod("new-pod"), "status": {"phase": "Running"}}, 201),
            {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "250"}}},
            event("DELETED", RECORDED_POD("nb-bob-0"), 260),
        ]
    ]
    view = make(api)
    seen: list[tuple[str, str, bool]] = []
    loop_thread = threading.get_ident()
    view.add_listener(
        lambda e: seen.append((e.type, e.obj["metadata"]["name"], threading.get_ident() == loop_thread))
    )
    await view.start()
    try:
        await until(lambda: view.get("Pod", "nb-bob-0", "notebooks") is None)
        got = view.get("Pod", "new-pod", "inference")
        assert got is not None and got["status"]["phase"] == "Running" and got["kind"] == "Pod"
        assert ("ADDED", "new-pod", True) in seen and ("DELETED", "nb-bob-0", True) in seen
        assert all(on_loop for _, _, on_loop in seen)
        assert view._rv["Pod"] == "260"
    finally:
        await view.stop()


def RECORDED_POD(name: str) -> Obj:
    return next(o for o in RECORDED if o["kind"] == "Pod" and o["metadata"]["name"] == name)


@pytest.mark.parametrize(
    "gone",
    [
        [
            {
                "type": "ERROR",
                "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
            }
        ],
        ApiException(status=410, reason="Gone"),
    ],
    ids=["error-event", "exception"],
)
async def test_410_gone_relists_and_drops_vanished_objects(gone: Script) -> None:
    api = FakeApi()
    first = as_list_items("Pod")
    api.lists["Pod"] = lambda n: (
        first if n == 1 else [p for p in first if p["metadata"]["name"] != "nb-alice-0"]
    )
    api.watches["Pod"] = [gone]
    view = make(api)
    events: list[ClusterEvent] = []
    view.add_listener(events.append)
    await view.start()
    try:
        await until(lambda: api.list_calls["Pod"] >= 2 and view.get("Pod", "nb-alice-0", "notebooks") is None)
        assert [e.type for e in events if e.obj["metadata"]["name"] == "nb-alice-0"] == ["ADDED", "DELETED"]
        assert len(view.list("Pod")) == 9
    finally:
        await view.stop()


async def test_missing_crd_does_not_block_the_other_kinds() -> None:
    api = FakeApi()
    api.lists["VariantAutoscaling"] = ApiException(status=404, reason="Not Found")
    view = make(api)
    await view.start()
    try:
        assert view.ready
        assert view.list("VariantAutoscaling") == []
        assert view.unavailable == {"VariantAutoscaling"}
        assert len(view.list("Deployment")) == 4
    finally:
        await view.stop()


async def test_errors_back_off_and_recover() -> None:
    api = FakeApi()
    api.lists["Node"] = lambda n: (
        ApiException(status=500, reason="etcd down") if n <= 2 else as_list_items("Node")
    )
    api.watches["Pod"] = [ApiException(status=403, reason="Forbidden"), RuntimeError("connection reset")]
    view = make(api)
    await view.start()
    try:
        assert view.ready and len(view.list("Node")) == 7
        assert api.list_calls["Node"] == 3
        await until(lambda: sum(1 for k, _, _ in api.watch_calls if k == "Pod") >= 3)
        assert api.list_calls["Pod"] == 1, "a plain watch error resumes from the last resourceVersion"
    finally:
        await view.stop()


async def test_not_ready_until_every_kind_is_listed() -> None:
    api = FakeApi()
    api.lists["Namespace"] = ApiException(status=503, reason="unavailable")
    view = make(api, initial_sync_timeout=0.05)
    await view.start()  # returns after the bounded wait; readiness comes later
    try:
        assert not view.ready
        api.lists["Namespace"] = as_list_items("Namespace")
        await until(lambda: view.ready)
    finally:
        await view.stop()


async def test_periodic_resync_relists() -> None:
    api = FakeApi()
    api.idle_timeout = 0.02  # the server ends each watch quickly
    view = make(api, resync_seconds=0.05, watch_timeout_seconds=1)
    await view.start()
    try:
        await until(lambda: api.list_calls["ConfigMap"] >= 3)
        assert all(t >= 1 for _, _, t in api.watch_calls), "server-side watch timeout is at least 1 s"
    finally:
        await view.stop()


async def test_patch_goes_to_the_api_and_updates_the_cache() -> None:
    api = FakeApi()
    view = make(api)
    await view.start()
    try:
        new = await view.patch("Deployment", "llama-8b-h100", "inference", {"spec": {"replicas": 4}})
        assert new["spec"]["replicas"] == 4 and new["kind"] == "Deployment"
        assert api.patches == [("Deployment", "llama-8b-h100", "inference", {"spec": {"replicas": 4}})]
        cached = view.get("Deployment", "llama-8b-h100", "inference")
        assert cached is not None and cached["spec"]["replicas"] == 4
    finally:
        await view.stop()


async def test_client_models_in_events_become_api_shaped_dicts() -> None:
    api = FakeApi()
    model = V1Pod(
        api_version="v1", kind="Pod", metadata=V1ObjectMeta(name="m", namespace="d", resource_version="9")
    )
    api.watches["Pod"] = [[{"type": "ADDED", "object": model}]]
    view = make(api)
    await view.start()
    try:
        await until(lambda: view.get("Pod", "m", "d") is not None)
        got = view.get("Pod", "m", "d")
        assert got == {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "m", "namespace": "d", "resourceVersion": "9"},
        }
    finally:
        await view.stop()


async def test_stop_is_prompt_with_idle_watches() -> None:
    api = FakeApi()
    api.idle_timeout = 60
    view = make(api)
    await view.start()
    await asyncio.wait_for(view.stop(), timeout=3)


def test_to_plain_keeps_dicts_and_serializes_models() -> None:
    d = {"a": 1}
    assert to_plain(d) is d
    assert to_plain(V1ObjectMeta(name="x", resource_version="1")) == {"name": "x", "resourceVersion": "1"}


def test_backoff_grows_to_the_cap_and_resets() -> None:
    b = Backoff(base=1, cap=8)
    delays = [b.next() for _ in range(6)]
    assert all(0.5 <= d <= 8 for d in delays) and delays[-1] >= 4
    b.reset()
    assert b.next() <= 1


# ------------------------------------------------------------------ config discovery
def test_kube_config_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not kube_config_available()  # conftest: no KUBECONFIG file, empty HOME
    cfg = tmp_path / "kc"
    cfg.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{cfg}")
    assert kube_config_available()
    monkeypatch.delenv("KUBECONFIG")
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    (tmp_path / "home" / ".kube" / "config").write_text("x")
    assert kube_config_available()


# ------------------------------------------------------------------ the real-client adapter, without a server
class _Resp:
    def __init__(self, body: Obj | list[Obj]) -> None:
        self.body = body
        self.closed = False

    @property
    def data(self) -> bytes:
        return json.dumps(self.body).encode()

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        assert isinstance(self.body, list)
        text = "".join(json.dumps(e) + "\n" for e in self.body)
        yield text[:37].encode()  # split mid-line, as chunks arrive
        yield text[37:].encode()

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def test_client_adapter_pages_lists_and_streams_watches() -> None:
    from kubernetes.client import ApiClient

    adapter = ClientKubeApi(
        ApiClient(), field_selectors={"ConfigMap": "metadata.name=capacity-scaling-config"}
    )
    calls: list[dict[str, Any]] = []
    nodes = as_list_items("Node")

    def list_cm(**kw: Any) -> _Resp:
        calls.append(kw)
        if kw.get("watch"):
            return _Resp([event("ADDED", pod("a"), 5), event("DELETED", pod("a"), 6)])
        if "_continue" not in kw:
            return _Resp({"metadata": {"resourceVersion": "42", "continue": "tok"}, "items": nodes[:3]})
        return _Resp({"metadata": {"resourceVersion": "42"}, "items": nodes[3:]})

    adapter._list_fns["ConfigMap"] = list_cm
    listed = adapter.list("ConfigMap")
    assert listed["metadata"]["resourceVersion"] == "42" and len(listed["items"]) == 7
    assert calls[0]["field_selector"] == "metadata.name=capacity-scaling-config"
    assert calls[0]["_preload_content"] is False and calls[1]["_continue"] == "tok"
    stream = adapter.watch("ConfigMap", "42", 30)
    assert [e["type"] for e in stream] == ["ADDED", "DELETED"]
    assert calls[2]["watch"] is True and calls[2]["resource_version"] == "42"
    assert calls[2]["allow_watch_bookmarks"] is True and calls[2]["timeout_seconds"] == 30


def test_client_adapter_patches_with_merge_patch() -> None:
    from kubernetes.client import ApiClient

    adapter = ClientKubeApi(ApiClient())
    seen: dict[str, Any] = {}

    def patch_node(name: str, body: Obj, **kw: Any) -> _Resp:
        seen.update(name=name, body=body, **kw)
        return _Resp({"metadata": {"name": name}})

    def patch_va_status(*args: Any, **kw: Any) -> _Resp:
        seen.update(va_args=args)
        return _Resp({"metadata": {"name": args[4]}})

    adapter._core.patch_node = patch_node  # type: ignore[method-assign,assignment]
    adapter._custom.patch_namespaced_custom_object_status = patch_va_status  # type: ignore[method-assign]
    body = {"metadata": {"annotations": {"gpu-autoscaler.io/topology": "{}"}}}
    assert adapter.patch("Node", "n1", "", body) == {"metadata": {"name": "n1"}}
    assert seen["_content_type"] == "application/merge-patch+json" and seen["body"] == body
    adapter.patch("VariantAutoscaling", "v", "inference", {"status": {"actuation": {"applied": True}}})
    assert seen["va_args"][:5] == ("llmd.ai", "v1alpha1", "inference", "variantautoscalings", "v")
    with pytest.raises(ValueError, match="cannot patch kind"):
        adapter.patch("Secret", "s", "d", {})
