"""Wire models of k8s.io/kube-scheduler/extender/v1.

The Go structs there have no json tags, so encoding/json uses the Go field names as they are: PascalCase
(`Pod`, `Nodes`, `NodeNames`, `FailedNodes`, `FailedAndUnresolvableNodes`, `Error`, `Host`, `Score`). The
embedded v1.Pod / v1.NodeList keep the normal lowerCamel Kubernetes JSON. Go decodes keys
case-insensitively, so we accept any casing of the top-level keys, and always answer in exact PascalCase.

Pods and Nodes stay plain dicts (the inventory module reads them): validating full Kubernetes objects with
pydantic on every call would cost more than the scheduling itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MIN_EXTENDER_PRIORITY = 0
MAX_EXTENDER_PRIORITY = 10


class NodeList(BaseModel):
    """v1.NodeList as kube-scheduler sends it (`metadata`, `items`; apiVersion/kind usually absent)."""

    model_config = ConfigDict(extra="allow")
    metadata: dict[str, Any] | None = None
    #: Node objects; `list[Any]` so pydantic does not copy 1,000 big dicts (routes check each is an object)
    items: list[Any] = Field(default_factory=list)


class ExtenderArgs(BaseModel):
    """Body of POST /filter and /prioritize. `Nodes` when nodeCacheCapable=false, `NodeNames` when true."""

    model_config = ConfigDict(extra="ignore")
    Pod: dict[str, Any]
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None


class ExtenderFilterResult(BaseModel):
    """Reply of /filter. The scheduler reads `NodeNames` (nodeCacheCapable) or only `Nodes` (otherwise)."""

    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None
    FailedNodes: dict[str, str] = Field(default_factory=dict)
    FailedAndUnresolvableNodes: dict[str, str] = Field(default_factory=dict)
    Error: str = ""


class ExtenderBindingArgs(BaseModel):
    """Body of POST /bind (binder mode, `bindVerb: bind`): kube-scheduler's final choice for the pod."""

    model_config = ConfigDict(extra="ignore")
    PodName: str = Field(min_length=1)
    PodNamespace: str = Field(min_length=1)
    PodUID: str = ""
    Node: str = Field(min_length=1)


class ExtenderBindingResult(BaseModel):
    """Reply of /bind: `Error` empty when the pod was bound."""

    Error: str = ""


class HostPriority(BaseModel):
    Host: str
    Score: int = Field(ge=MIN_EXTENDER_PRIORITY, le=MAX_EXTENDER_PRIORITY)


#: Reply of /prioritize: a bare JSON array of HostPriority
HostPriorityList = TypeAdapter(list[HostPriority])

_KEYS = ("Pod", "Nodes", "NodeNames", "PodName", "PodNamespace", "PodUID", "Node")
_CANONICAL = {k.lower(): k for k in _KEYS}


def canonical_keys(body: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys in any casing -> PascalCase (as Go's case-insensitive decoder would match them)."""
    if all(k in _KEYS for k in body):
        return body
    return {_CANONICAL.get(k.lower(), k): v for k, v in body.items()}


def filter_result(
    *,
    nodes: list[dict[str, Any]] | None,
    node_names: list[str] | None,
    failed: dict[str, str],
    unresolvable: dict[str, str],
    error: str = "",
) -> dict[str, Any]:
    """ExtenderFilterResult as a plain dict (serialised directly: no model copy of big node lists)."""
    return {
        "Nodes": None if nodes is None else {"metadata": {}, "items": nodes},
        "NodeNames": node_names,
        "FailedNodes": failed,
        "FailedAndUnresolvableNodes": unresolvable,
        "Error": error,
    }
