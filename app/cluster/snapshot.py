"""Snapshot cluster: Kubernetes objects from YAML/JSON files, exactly as `kubectl get -o yaml` writes them.

The bundled demo cluster (`app/cluster/demo/`) is such a snapshot. Writes (`patch`) change the in-memory
copy only, so the demo behaves like a cluster without one.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from app.cluster.base import KINDS, ClusterEvent, ClusterView, Obj, merge_patch

log = logging.getLogger(__name__)

CLUSTER_SCOPED = {"Node", "Namespace"}


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
    """A cluster view over a snapshot; `start` loads it, `patch` edits the in-memory copy."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path or demo_snapshot_path()
        self._loaded: list[Obj] | None = None

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

    async def patch(self, kind: str, name: str, namespace: str, patch: Obj) -> Obj:
        obj = self.get(kind, name, namespace)
        if obj is None:
            raise KeyError(f"{kind} {namespace}/{name} not found")
        new = merge_patch(obj, patch)
        self._apply(ClusterEvent("MODIFIED", kind, new))
        return new
