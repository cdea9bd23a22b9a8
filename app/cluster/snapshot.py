"""Snapshot cluster: Kubernetes objects from YAML/JSON files, exactly as `kubectl get -o yaml` writes them.

The bundled demo cluster (`app/cluster/demo/`) is such a snapshot. Writes (`patch`) change the in-memory
copy only, so the demo behaves like a cluster without one.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from app.cluster.base import (
    KINDS,
    ClusterEvent,
    ClusterView,
    Conflict,
    NotFound,
    Obj,
    TooManyRequests,
    merge_patch,
    object_key,
)
from app.cluster.kinds import REGISTRY, kind_info
from app.cluster.selectors import selector_matches

log = logging.getLogger(__name__)

CLUSTER_SCOPED = {k for k, info in REGISTRY.items() if not info.namespaced}


class SnapshotError(ValueError):
    """The snapshot cannot be used; the message names the file and the object at fault."""


def demo_snapshot_path() -> Path:
    """Folder of the bundled demo cluster."""
    return Path(str(resources.files("app.cluster") / "demo"))


def _documents(path: Path) -> list[Any]:
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return [json.loads(text)]
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SnapshotError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {first}"
        ) from exc


def _flatten(doc: Any, where: str) -> list[tuple[Obj, str]]:
    """The objects of one document (a `…List` is unpacked), each with where it came from."""
    if not isinstance(doc, dict):
        raise SnapshotError(f"{where}: expected a Kubernetes object (mapping), got {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List"):
        items = doc.get("items")
        if not isinstance(items, list):
            raise SnapshotError(f"{where}: {kind} has no 'items' list")
        out: list[tuple[Obj, str]] = []
        for i, item in enumerate(items):
            out.extend(_flatten(item, f"{where} items[{i}]"))
        return out
    return [(doc, where)]


def _check(obj: Obj, where: str) -> None:
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise SnapshotError(f"{where}: object has no 'kind'")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise SnapshotError(f"{where}: {kind} has no metadata.name")
    if kind not in CLUSTER_SCOPED and kind in KINDS and not meta.get("namespace"):
        raise SnapshotError(f"{where}: {kind} {meta['name']} has no metadata.namespace")
    for field in ("spec", "status"):
        if field in obj and obj[field] is not None and not isinstance(obj[field], dict):
            raise SnapshotError(f"{where}: {kind} {meta['name']}: '{field}' must be a mapping")
    if kind == "Node":
        alloc = (obj.get("status") or {}).get("allocatable")
        if alloc is not None and not isinstance(alloc, dict):
            raise SnapshotError(f"{where}: Node {meta['name']}: status.allocatable must be a mapping")
    if kind == "Pod":
        containers = (obj.get("spec") or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            raise SnapshotError(f"{where}: Pod {meta['name']}: spec.containers must be a non-empty list")


def load_snapshot(path: Path) -> list[Obj]:
    """All objects of the kinds we use from a file or a folder of `.yaml`/`.yml`/`.json` files.

    Objects of other kinds (Services, …) are skipped; a malformed object raises SnapshotError.
    """
    if not path.exists():
        raise SnapshotError(f"{path}: no such file or folder")
    files = (
        sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"})
        if path.is_dir()
        else [path]
    )
    if not files:
        raise SnapshotError(f"{path}: folder holds no .yaml, .yml or .json file")
    objs: list[Obj] = []
    for file in files:
        for d, doc in enumerate(_documents(file)):
            for obj, where in _flatten(doc, f"{file.name} document {d}"):
                _check(obj, where)
                if obj["kind"] in KINDS:
                    objs.append(obj)
                else:
                    log.debug("snapshot: skipping %s %s", obj["kind"], obj["metadata"]["name"])
    return objs


class SnapshotCluster(ClusterView):
    """A cluster view over a snapshot; `start` loads it, writes edit the in-memory copy.

    Writes behave as the API server's do where it matters to callers: `replace` checks resourceVersion,
    `evict` honours PodDisruptionBudgets, `bind` sets `spec.nodeName`, `scale` sets `spec.replicas`.
    Objects of kinds that are not watched (Events, Leases…) live in `others`, where tests can read them.
    """

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path or demo_snapshot_path()
        self._loaded: list[Obj] | None = None
        self.others: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = itertools.count(1)

    @property
    def source(self) -> str:
        return f"snapshot:{self.path}"

    def load(self) -> None:
        """Read and validate the files now (so the CLI can fail before serving)."""
        self._loaded = load_snapshot(self.path)

    async def start(self) -> None:
        if self._loaded is None:
            self.load()
        by_kind: dict[str, list[Obj]] = {k: [] for k in KINDS}
        for obj in self._loaded or []:
            by_kind[obj["kind"]].append(obj)
        for kind, objs in by_kind.items():
            self._replace_all(kind, objs)
        self._ready.set()
        log.info("cluster view loaded", extra={"source": self.source, "objects": len(self._loaded or [])})

    def upsert(self, obj: Obj) -> None:
        """Add or replace an object (demo and tests use this to play a cluster)."""
        _check(obj, "upsert")
        kind = obj["kind"]
        key = (
            obj["metadata"].get("namespace", "") if kind not in CLUSTER_SCOPED else "",
            obj["metadata"]["name"],
        )
        exists = self.get(kind, key[1], key[0]) is not None
        self._apply(ClusterEvent("MODIFIED" if exists else "ADDED", kind, obj))

    def delete(self, kind: str, name: str, namespace: str = "") -> None:
        obj = self.get(kind, name, namespace)
        if obj is not None:
            self._apply(ClusterEvent("DELETED", kind, obj))

    # -- writes --------------------------------------------------------------------------------
    def _find(self, kind: str, name: str, namespace: str) -> Obj | None:
        namespace = namespace if kind_info(kind).namespaced else ""
        if kind in KINDS:
            return self.get(kind, name, namespace)
        return self.others.get(kind, {}).get((namespace, name))

    def _store(self, kind: str, obj: Obj, etype: str) -> Obj:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        if kind in KINDS:
            self._apply(ClusterEvent(etype, kind, obj))  # type: ignore[arg-type]
        else:
            self.others.setdefault(kind, {})[object_key(obj)] = obj
        return obj

    async def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        obj = self._find(kind, name, namespace)
        if obj is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return self._store(kind, merge_patch(obj, patch), "MODIFIED")

    async def read(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        obj = self._find(kind, name, namespace)
        return copy.deepcopy(obj) if obj is not None else None

    async def create(self, kind: str, obj: Obj) -> Obj:
        info = kind_info(kind)
        new = copy.deepcopy(obj)
        new.setdefault("apiVersion", info.api_version)
        new.setdefault("kind", kind)
        meta = new.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ValueError(f"create {kind}: metadata.name or metadata.generateName is needed")
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if info.namespaced and not meta.get("namespace"):
            raise ValueError(f"create {kind} {meta['name']}: metadata.namespace is needed")
        if self._find(kind, meta["name"], meta.get("namespace", "")) is not None:
            raise Conflict(f"{kind} {meta.get('namespace', '')}/{meta['name']} already exists")
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return copy.deepcopy(self._store(kind, new, "ADDED"))

    async def replace(self, kind: str, obj: Obj) -> Obj:
        meta = obj.get("metadata") or {}
        current = self._find(kind, str(meta.get("name")), str(meta.get("namespace") or ""))
        if current is None:
            raise NotFound(f"{kind} {meta.get('namespace', '')}/{meta.get('name')} not found")
        given_rv = meta.get("resourceVersion")
        current_rv = (current.get("metadata") or {}).get("resourceVersion")
        if given_rv and current_rv and str(given_rv) != str(current_rv):
            raise Conflict(f"{kind} {meta.get('name')}: resourceVersion {given_rv} is not {current_rv}")
        return copy.deepcopy(self._store(kind, copy.deepcopy(obj), "MODIFIED"))

    async def scale(self, kind: str, name: str, namespace: str, replicas: int) -> Obj:
        obj = await self.patch(kind, name, namespace, {"spec": {"replicas": int(replicas)}})
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": int(replicas)},
            "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0)},
        }

    async def evict(self, name: str, namespace: str) -> None:
        pod = self.get("Pod", name, namespace)
        if pod is None:
            raise NotFound(f"Pod {namespace}/{name} not found")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        pdbs = list(self.others.get("PodDisruptionBudget", {}).values())
        if "PodDisruptionBudget" in KINDS:
            pdbs = self.list("PodDisruptionBudget", namespace)
        for pdb in pdbs:
            if object_key(pdb)[0] != namespace:
                continue
            if not selector_matches((pdb.get("spec") or {}).get("selector"), labels, empty_matches=True):
                continue
            if int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) <= 0:
                pdb_name = object_key(pdb)[1]
                raise TooManyRequests(
                    f"Cannot evict pod as it would violate the pod's disruption budget {pdb_name}"
                )
        self.delete("Pod", name, namespace)

    async def bind(self, name: str, namespace: str, node: str, uid: str | None = None) -> None:
        pod = self.get("Pod", name, namespace)
        if pod is None:
            raise NotFound(f"Pod {namespace}/{name} not found")
        if uid and (pod.get("metadata") or {}).get("uid") not in (None, uid):
            raise Conflict(f"Pod {namespace}/{name}: uid {uid} does not match")
        if (pod.get("spec") or {}).get("nodeName"):
            raise Conflict(f"pod {name} is already assigned to node {pod['spec']['nodeName']}")
        await self.patch("Pod", name, namespace, {"spec": {"nodeName": node}})
