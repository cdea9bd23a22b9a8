"""The NVIDIA device plugin's per-node configurations, read as the plugin reads them.

The ConfigMap the GPU Operator hands the device plugin (ClusterPolicy `devicePlugin.config.name`) holds one
config file per data key; the node label `nvidia.com/device-plugin.config=<key>` picks one per node (an
unknown key: the plugin keeps what it has; no label: the ConfigMap's default). A config shares GPUs with
`sharing.timeSlicing` or `sharing.mps`, each `resources: [{name: nvidia.com/gpu, replicas: N}]` (N >= 2;
`renameByDefault: true` advertises `nvidia.com/gpu.shared` instead). Only `nvidia.com/gpu` matters here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

GPU = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"
#: GFD / device-plugin labels that show the sharing a node runs
LABEL_CONFIG = "nvidia.com/device-plugin.config"
LABEL_STRATEGY = "nvidia.com/gpu.sharing-strategy"
LABEL_REPLICAS = "nvidia.com/gpu.replicas"


@dataclass(frozen=True)
class SharingConfig:
    """One device-plugin config as far as whole GPUs go."""

    name: str
    strategy: str = "none"  # none | time-slicing | mps
    replicas: int = 1
    rename: bool = False  # renameByDefault: the replicas are advertised as nvidia.com/gpu.shared

    @property
    def resource(self) -> str:
        return SHARED_GPU if self.rename and self.strategy != "none" else GPU

    def describe(self) -> str:
        if self.strategy == "none":
            return "no sharing"
        return f"{self.strategy} x{self.replicas}" + (" (nvidia.com/gpu.shared)" if self.rename else "")


@dataclass
class SharingConfigSet:
    configs: dict[str, SharingConfig]
    source: str
    errors: list[str] = field(default_factory=list)


def _replicated(raw: Any, where: str) -> tuple[int, bool] | None:
    """(replicas of nvidia.com/gpu, renameByDefault) of a `timeSlicing` / `mps` block; None if it has none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a mapping")
    rename = raw.get("renameByDefault", False)
    if not isinstance(rename, bool):
        raise ValueError(f"{where}.renameByDefault: must be true or false")
    resources = raw.get("resources")
    if not resources:
        if "resources" in raw:
            raise ValueError(f"{where}: no resources specified")
        return None
    if not isinstance(resources, list):
        raise ValueError(f"{where}.resources: must be a list")
    for i, res in enumerate(resources):
        if not isinstance(res, dict) or not res.get("name"):
            raise ValueError(f"{where}.resources[{i}]: no resource name specified")
        replicas = res.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ValueError(f"{where}.resources[{i}]: no replicas specified")
        if replicas < 2:
            raise ValueError(f"{where}.resources[{i}]: number of replicas must be >= 2")
        if res["name"] == GPU:
            return replicas, rename
    return None


def parse_config(name: str, text: str) -> SharingConfig:
    """One data key's config file -> SharingConfig. Raises ValueError (one line)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: must be a mapping")
    version = doc.get("version") or "v1"
    if version != "v1":
        raise ValueError(f"{name}: unknown version: {version}")
    sharing = doc.get("sharing") or {}
    if not isinstance(sharing, dict):
        raise ValueError(f"{name}: sharing must be a mapping")
    mps = _replicated(sharing.get("mps"), f"{name}: sharing.mps")
    if mps is not None:
        return SharingConfig(name, "mps", mps[0], mps[1])
    ts = _replicated(sharing.get("timeSlicing"), f"{name}: sharing.timeSlicing")
    if ts is not None:
        return SharingConfig(name, "time-slicing", ts[0], ts[1])
    return SharingConfig(name)


def parse_configmap(obj: Mapping[str, Any] | None, source: str) -> SharingConfigSet:
    """Every usable config of the device plugin's ConfigMap; the unusable ones listed in `errors`."""
    if obj is None:
        return SharingConfigSet({}, source, [f"ConfigMap {source} not found: no sharing config to pick"])
    data = obj.get("data") or {}
    out = SharingConfigSet({}, source)
    for key, text in sorted(data.items()):
        try:
            out.configs[str(key)] = parse_config(str(key), str(text))
        except ValueError as exc:
            out.errors.append(f"device-plugin config {source}: {exc}")
    return out
