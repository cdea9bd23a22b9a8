"""Live cluster view: list + watch every kind the service reads, through the official `kubernetes` client.

One daemon thread per kind runs the classic informer loop: LIST (paged) → WATCH from the list's
resourceVersion → on `410 Gone` relist → relist every `resync_seconds` anyway → back off on errors. Events are
handed to the event loop (`call_soon_threadsafe`), so listeners always run on the loop thread, as with the
snapshot view. Objects stay raw API JSON (camelCase dicts), identical to `kubectl get -o json`.

All apiserver I/O sits behind `KubeApi` (three blocking calls) so tests feed recorded objects and scripted
watch streams without an apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from app.cluster.base import (
    KINDS,
    ApiError,
    ClusterEvent,
    ClusterView,
    Conflict,
    NotFound,
    Obj,
    TooManyRequests,
)
from app.cluster.compact import compact
from app.cluster.kinds import REGISTRY, kind_info

log = logging.getLogger(__name__)

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

#: apiVersion of each kind (list items come without apiVersion/kind; we put them back)
API_VERSIONS: dict[str, str] = {k: info.api_version for k, info in REGISTRY.items()}
#: kinds served by a CRD that may be absent: a 404/403 marks them empty instead of blocking readiness
OPTIONAL_KINDS: frozenset[str] = frozenset(k for k, info in REGISTRY.items() if info.optional)
VA_GROUP, VA_VERSION, VA_PLURAL = "llmd.ai", "v1alpha1", "variantautoscalings"


class KubeConfigError(RuntimeError):
    """No usable in-cluster or kubeconfig configuration; the message is one line."""


def kube_config_available() -> bool:
    """True when in-cluster service-account config or a kubeconfig file is present (nothing is contacted)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SA_TOKEN.is_file():
        return True
    env = os.environ.get("KUBECONFIG")
    candidates = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else []
    candidates.append(Path("~/.kube/config").expanduser())
    return any(p.is_file() for p in candidates)


# --------------------------------------------------------------------------------------------------
# The seam
# --------------------------------------------------------------------------------------------------
class WatchStream(Protocol):
    """Iterable of raw watch events (`{"type": ..., "object": {...}}`); `close` unblocks a reader."""

    def __iter__(self) -> Iterator[Obj]: ...

    def close(self) -> None: ...


class KubeApi(Protocol):
    """Blocking apiserver calls KubeCluster needs. Errors are `kubernetes.client.ApiException`."""

    def list(self, kind: str) -> Obj:
        """A raw List: `{"metadata": {"resourceVersion": ...}, "items": [...]}` (all pages)."""
        ...

    def watch(self, kind: str, resource_version: str, timeout_seconds: int) -> WatchStream: ...

    def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        """JSON merge patch; a top-level `status` goes to the status subresource where one exists."""
        ...

    def request(
        self, method: str, path: str, body: Obj | None = None, content_type: str | None = None
    ) -> Obj:
        """Any other call: `method` on an API `path` (built from `kinds.py`), JSON body in, JSON out."""
        ...

    @property
    def host(self) -> str: ...


def to_plain(obj: Any) -> Obj:
    """API-shaped dict from a client model (V1Pod…) or a dict (models: sanitize_for_serialization)."""
    if isinstance(obj, dict):
        return obj
    from kubernetes.client import ApiClient

    plain: Obj = ApiClient().sanitize_for_serialization(obj)
    return plain


class _HttpWatchStream:
    """Reads a watch response line by line (raw JSON, no model round trip)."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp

    def __iter__(self) -> Iterator[Obj]:
        from kubernetes.watch.watch import iter_resp_lines

        for line in iter_resp_lines(self._resp):
            if line:
                yield json.loads(line)

    def close(self) -> None:
        try:
            self._resp.close()
            self._resp.release_conn()
        except Exception:  # pragma: no cover - best effort on shutdown
            pass


class ClientKubeApi:
    """`KubeApi` over the official client: raw JSON (`_preload_content=False`), paged lists, merge patches."""

    PAGE = 500

    def __init__(
        self,
        api_client: Any,
        field_selectors: dict[str, str] | None = None,
        transform: Callable[[str, Obj], Obj] | None = None,
    ) -> None:
        from kubernetes import client

        self._client = api_client
        #: applied to each listed object as its page arrives (the view's `compact`)
        self._transform = transform
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._selectors = dict(field_selectors or {})
        self._list_fns: dict[str, Callable[..., Any]] = {
            "Node": self._core.list_node,
            "Pod": self._core.list_pod_for_all_namespaces,
            "Namespace": self._core.list_namespace,
            "ConfigMap": self._core.list_config_map_for_all_namespaces,
            "Deployment": self._apps.list_deployment_for_all_namespaces,
            "VariantAutoscaling": lambda **kw: self._custom.list_cluster_custom_object(
                VA_GROUP, VA_VERSION, VA_PLURAL, **kw
            ),
        }

    @property
    def host(self) -> str:
        return str(getattr(self._client.configuration, "host", "?"))

    def request(
        self, method: str, path: str, body: Obj | None = None, content_type: str | None = None
    ) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        resp = self._raw(method, path, [], headers, body, 30)
        data = resp.data
        return dict(json.loads(data)) if data else {}

    def _raw(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]],
        headers: dict[str, str],
        body: Any,
        timeout: Any,
    ) -> Any:
        """One authenticated call; the raw urllib3 response (not read: watches stream it). Non-2xx raises
        ApiException, as the typed client's methods do."""
        c = self._client
        if hasattr(c, "param_serialize"):  # client >= 35 (openapi-generator 7)
            m, url, hdrs, payload, _ = c.param_serialize(
                method=method,
                resource_path=path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = c.call_api(m, url, header_params=hdrs, body=payload, _request_timeout=timeout)
            if not 200 <= resp.status <= 299:
                resp.read()
                raise ApiException(http_resp=resp)
            return resp.response
        return c.call_api(  # pragma: no cover - older clients
            path,
            method,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=timeout,
        )

    def _generic_list(self, kind: str) -> Callable[..., Any]:
        """list_* for a kind the typed client does not cover (CRDs, Leases…): a GET on its collection."""
        path = kind_info(kind).collection_path()

        def call(**kw: Any) -> Any:
            query = []
            for key, name in (
                ("field_selector", "fieldSelector"),
                ("limit", "limit"),
                ("_continue", "continue"),
                ("watch", "watch"),
                ("resource_version", "resourceVersion"),
                ("allow_watch_bookmarks", "allowWatchBookmarks"),
                ("timeout_seconds", "timeoutSeconds"),
            ):
                if kw.get(key) is not None:
                    value = kw[key]
                    query.append((name, str(value).lower() if isinstance(value, bool) else value))
            return self._raw(
                "GET", path, query, {"Accept": "application/json"}, None, kw.get("_request_timeout")
            )

        return call

    def _kwargs(self, kind: str) -> dict[str, Any]:
        sel = self._selectors.get(kind)
        return {"field_selector": sel} if sel else {}

    def list(self, kind: str) -> Obj:
        fn = self._list_fns.get(kind) or self._generic_list(kind)
        items: list[Obj] = []
        token: str | None = None
        rv = ""
        while True:
            kw = self._kwargs(kind) | {"limit": self.PAGE, "_preload_content": False, "_request_timeout": 60}
            if token:
                kw["_continue"] = token
            page = json.loads(fn(**kw).data)
            raw = page.get("items") or []
            if self._transform is not None:
                raw = [self._transform(kind, o) for o in raw]
            items.extend(raw)
            meta = page.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            token = meta.get("continue")
            if not token:
                return {"metadata": {"resourceVersion": rv}, "items": items}

    def watch(self, kind: str, resource_version: str, timeout_seconds: int) -> WatchStream:
        kw = self._kwargs(kind) | {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_seconds,
            "_preload_content": False,
            # client-side read timeout a little past the server's, so a dead connection cannot hang forever
            "_request_timeout": (10, timeout_seconds + 30),
        }
        return _HttpWatchStream((self._list_fns.get(kind) or self._generic_list(kind))(**kw))

    def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        merge: dict[str, Any] = {"_content_type": "application/merge-patch+json", "_preload_content": False}
        if kind == "VariantAutoscaling":
            status_only = set(patch) == {"status"}
            fn: Callable[..., Any] = (
                self._custom.patch_namespaced_custom_object_status
                if status_only
                else self._custom.patch_namespaced_custom_object
            )
            resp = fn(VA_GROUP, VA_VERSION, namespace, VA_PLURAL, name, patch, _preload_content=False)
            return dict(json.loads(resp.data))
        calls: dict[str, Callable[[], Any]] = {
            "Node": lambda: self._core.patch_node(name, patch, **merge),
            "Namespace": lambda: self._core.patch_namespace(name, patch, **merge),
            "Pod": lambda: self._core.patch_namespaced_pod(name, namespace, patch, **merge),
            "ConfigMap": lambda: self._core.patch_namespaced_config_map(name, namespace, patch, **merge),
            "Deployment": lambda: self._apps.patch_namespaced_deployment(name, namespace, patch, **merge),
        }
        if kind in calls:
            return dict(json.loads(calls[kind]().data))
        try:
            info = kind_info(kind)
        except ValueError:
            raise ValueError(f"cannot patch kind {kind}") from None
        sub = "status" if info.status_subresource and set(patch) == {"status"} else ""
        return self.request(
            "PATCH", info.object_path(name, namespace, sub), patch, "application/merge-patch+json"
        )


def load_api_client() -> Any:
    """In-cluster config first, else the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if os.environ.get("KUBERNETES_SERVICE_HOST") and SA_TOKEN.is_file():
        try:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        except ConfigException as exc:
            raise KubeConfigError(f"in-cluster config: {exc}") from exc
    try:
        return config.new_client_from_config()
    except (ConfigException, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KubeConfigError(f"kubeconfig: {first}") from exc


# --------------------------------------------------------------------------------------------------
# The view
# --------------------------------------------------------------------------------------------------
@dataclass
class Backoff:
    """Exponential backoff with full jitter; `reset` after a success."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


def api_error(exc: ApiException) -> ApiError:
    """The client's exception as ours, with the server's own message (from its Status body)."""
    message = str(exc.reason or "")
    with contextlib.suppress(Exception):
        body = json.loads(exc.body) if exc.body else {}
        message = str(body.get("message") or message)
    status = int(exc.status or 0)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 429:
        return TooManyRequests(message)
    return ApiError(status, message)


class _Relist(Exception):
    """Internal: the watch's resourceVersion expired (410 Gone)."""


class KubeCluster(ClusterView):
    """Cluster view over a live apiserver (see module docstring)."""

    shared = True

    def __init__(
        self,
        resync_seconds: float = 300.0,
        api: KubeApi | None = None,
        *,
        kinds: Iterable[str] = KINDS,
        watch_timeout_seconds: int = 300,
        initial_sync_timeout: float = 20.0,
        field_selectors: dict[str, str] | None = None,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        super().__init__()
        self.resync_seconds = resync_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self.initial_sync_timeout = initial_sync_timeout
        self._api = api
        self._kinds = tuple(kinds)
        self._field_selectors = field_selectors
        self._new_backoff = backoff
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: set[WatchStream] = set()
        self._streams_lock = threading.Lock()
        self._listed: set[str] = set()
        self._rv: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._synced: asyncio.Event | None = None
        #: kinds whose CRD is missing (or forbidden): served as empty, retried every resync
        self.unavailable: set[str] = set()

    @property
    def source(self) -> str:
        return f"kube:{self._api.host}" if self._api is not None else "kube"

    def connect(self) -> None:
        """Build the API client now, so the CLI fails with one line before serving. Raises KubeConfigError."""
        if self._api is None:
            self._api = ClientKubeApi(load_api_client(), self._field_selectors, transform=compact)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one informer thread per kind; wait (bounded) for the initial lists, ready once all are in."""
        self.connect()
        self._loop = asyncio.get_running_loop()
        self._synced = asyncio.Event()
        self._stop.clear()
        for kind in self._kinds:
            t = threading.Thread(target=self._run_kind, args=(kind,), name=f"kube-{kind}", daemon=True)
            t.start()
            self._threads.append(t)
        try:
            await asyncio.wait_for(self._synced.wait(), timeout=self.initial_sync_timeout)
        except TimeoutError:
            log.warning(
                "cluster view not synced yet; serving not-ready until it is",
                extra={"missing": sorted(set(self._kinds) - self._listed), "source": self.source},
            )

    async def stop(self) -> None:
        self._stop.set()
        with self._streams_lock:
            streams = list(self._streams)
        for s in streams:
            s.close()
        threads, self._threads = self._threads, []
        for t in threads:
            await asyncio.to_thread(t.join, 5.0)
        self._ready.clear()
        log.info("kube watches stopped", extra={"source": self.source})

    # -- writes ----------------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking API call in a thread; ApiException -> ApiError (NotFound, Conflict…)."""
        if self._api is None:
            raise RuntimeError("KubeCluster: API call before start()")
        try:
            return await asyncio.to_thread(fn, *args)
        except ApiException as exc:
            raise api_error(exc) from exc

    def _reflect(self, kind: str, obj: Obj) -> Obj:
        """Show our own write at once (the watch event that follows carries the same object)."""
        obj = self._complete(kind, to_plain(obj))
        if kind in self._kinds:
            self._apply(ClusterEvent("MODIFIED", kind, obj))
        return obj

    async def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        if self._api is None:
            raise RuntimeError("KubeCluster.patch before start()")
        return self._reflect(kind, await self._call(self._api.patch, kind, name, namespace, patch))

    async def read(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        info = kind_info(kind)
        try:
            obj = await self._call(self._request, "GET", info.object_path(name, namespace))
        except NotFound:
            return None
        return self._complete(kind, obj)

    async def create(self, kind: str, obj: Obj) -> Obj:
        info = kind_info(kind)
        body = {"apiVersion": info.api_version, "kind": kind, **obj}
        ns = str((obj.get("metadata") or {}).get("namespace") or "")
        new = await self._call(self._request, "POST", info.collection_path(ns or None), body)
        return self._complete(kind, new)

    async def replace(self, kind: str, obj: Obj) -> Obj:
        info = kind_info(kind)
        meta = obj.get("metadata") or {}
        path = info.object_path(str(meta.get("name")), str(meta.get("namespace") or ""))
        body = {"apiVersion": info.api_version, "kind": kind, **obj}
        return self._reflect(kind, await self._call(self._request, "PUT", path, body))

    async def scale(self, kind: str, name: str, namespace: str, replicas: int) -> Obj:
        path = kind_info(kind).object_path(name, namespace, "scale")
        patch = {"spec": {"replicas": int(replicas)}}
        scale: Obj = await self._call(self._request, "PATCH", path, patch, "application/merge-patch+json")
        return scale

    async def evict(self, name: str, namespace: str) -> None:
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        path = kind_info("Pod").object_path(name, namespace, "eviction")
        await self._call(self._request, "POST", path, body)

    async def bind(self, name: str, namespace: str, node: str, uid: str | None = None) -> None:
        meta: Obj = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        path = kind_info("Pod").object_path(name, namespace, "binding")
        await self._call(self._request, "POST", path, body)

    def _request(self, method: str, path: str, body: Obj | None = None, ctype: str | None = None) -> Obj:
        assert self._api is not None
        return self._api.request(method, path, body, ctype)

    # -- informer loop (runs in a thread per kind) -----------------------------------------------
    @staticmethod
    def _complete(kind: str, obj: Obj) -> Obj:
        """What the view keeps (app/cluster/compact.py), with apiVersion and kind put back."""
        obj = compact(kind, obj)
        obj.setdefault("apiVersion", API_VERSIONS.get(kind, "v1"))
        obj.setdefault("kind", kind)
        return obj

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the event loop (listeners expect the loop thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            loop.call_soon_threadsafe(fn, *args)

    def _mark_listed(self, kind: str) -> None:
        if kind in self._listed:
            return
        self._listed.add(kind)
        if self._listed >= set(self._kinds):
            self._ready.set()
            if self._synced is not None:
                self._synced.set()
            log.info("cluster view synced", extra={"source": self.source, "kinds": list(self._kinds)})

    def _relist(self, kind: str) -> str:
        assert self._api is not None
        raw = self._api.list(kind)
        items = [self._complete(kind, to_plain(o)) for o in raw.get("items") or []]
        rv = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        self._post(self._replace_all, kind, items)
        self._post(self._mark_listed, kind)
        self.unavailable.discard(kind)
        log.debug("listed", extra={"kind": kind, "objects": len(items), "resourceVersion": rv})
        return rv

    def _watch(self, kind: str, rv: str, until: float) -> str:
        """Watch from `rv` until `until` (monotonic) or the server closes; returns the last resourceVersion.

        The last resourceVersion seen is also kept in `_rv`, so a watch that breaks mid-stream resumes there.
        """
        assert self._api is not None
        timeout = max(1, min(self.watch_timeout_seconds, int(until - time.monotonic())))
        stream = self._api.watch(kind, rv, timeout)
        with self._streams_lock:
            self._streams.add(stream)
            if self._stop.is_set():  # stop() ran between our loop check and here: it did not see this stream
                stream.close()
        try:
            for event in stream:
                if self._stop.is_set():
                    break
                etype = event.get("type")
                obj = event.get("object")
                if etype == "ERROR":
                    status = obj if isinstance(obj, dict) else {}
                    if status.get("code") == 410:
                        raise _Relist()
                    raise ApiException(status=status.get("code") or 500, reason=str(status.get("message")))
                plain = to_plain(obj)
                new_rv = (plain.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = self._rv[kind] = str(new_rv)
                if etype == "BOOKMARK":
                    continue
                if etype in ("ADDED", "MODIFIED", "DELETED"):
                    self._post(self._apply, ClusterEvent(etype, kind, self._complete(kind, plain)))
                if time.monotonic() >= until:
                    break
        finally:
            with self._streams_lock:
                self._streams.discard(stream)
            stream.close()
        return rv

    def _run_kind(self, kind: str) -> None:
        backoff = self._new_backoff()
        rv: str | None = None
        next_resync = 0.0
        while not self._stop.is_set():
            try:
                if rv is None or time.monotonic() >= next_resync:
                    rv = self._rv[kind] = self._relist(kind)
                    next_resync = time.monotonic() + self.resync_seconds
                    backoff.reset()
                rv = self._watch(kind, rv, next_resync)
            except _Relist:
                log.info("watch expired (410 Gone); relisting", extra={"kind": kind})
                rv = None
            except ApiException as exc:
                rv = self._rv.get(kind) if rv is not None else None
                if exc.status == 410:
                    rv = None
                    continue
                if self._stop.is_set():
                    break
                if kind in OPTIONAL_KINDS and exc.status in (403, 404):
                    if kind not in self.unavailable:
                        log.warning(
                            "kind not served; treating as empty and retrying at resync",
                            extra={"kind": kind, "status": exc.status, "reason": exc.reason},
                        )
                    self.unavailable.add(kind)
                    self._post(self._replace_all, kind, [])
                    self._post(self._mark_listed, kind)
                    rv = None
                    self._stop.wait(self.resync_seconds)
                    continue
                delay = backoff.next()
                log.warning(
                    "kube API error; backing off",
                    extra={
                        "kind": kind,
                        "status": exc.status,
                        "reason": exc.reason,
                        "retry_in_s": round(delay, 2),
                    },
                )
                self._stop.wait(delay)
            except Exception as exc:
                rv = self._rv.get(kind) if rv is not None else None
                if self._stop.is_set():
                    break
                delay = backoff.next()
                log.warning(
                    "kube watch failed; backing off",
                    extra={
                        "kind": kind,
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in_s": round(delay, 2),
                    },
                )
                self._stop.wait(delay)
