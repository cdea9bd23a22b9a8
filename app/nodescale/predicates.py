"""The kube-scheduler rules the extender does not run (it only sees nodes kube-scheduler already kept), which
a simulation of "would this pod land on that node" needs: taints and tolerations, nodeSelector and required
node affinity, and whether the node takes new pods at all (Ready, not cordoned).

Pure functions over API JSON. Each answers None (fits) or one short sentence saying why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.cluster.selectors import expression_matches

Obj = Mapping[str, Any]

#: effects that keep a pod off a node (PreferNoSchedule only lowers a score)
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def toleration_matches(tol: Obj, taint: Obj) -> bool:
    """core/v1 Toleration.ToleratesTaint: empty key + Exists tolerates everything; empty effect any effect."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    operator = tol.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return operator == "Equal" and str(tol.get("value") or "") == str(taint.get("value") or "")


def untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint of the node that the pod does not tolerate."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in BLOCKING_EFFECTS:
            continue
        if not any(toleration_matches(t, taint) for t in tolerations):
            return dict(taint)
    return None


def _node_expression(labels: Mapping[str, str], expr: Obj) -> bool:
    op = expr.get("operator")
    if op in ("Gt", "Lt"):  # node affinity only: one integer value compared with the label's
        raw, values = labels.get(str(expr.get("key"))), expr.get("values") or []
        try:
            have, want = int(str(raw)), int(str(values[0]))
        except (ValueError, IndexError, TypeError):
            return False
        return have > want if op == "Gt" else have < want
    return expression_matches(labels, expr)


def _term_matches(term: Obj, node: Obj) -> bool:
    """A NodeSelectorTerm: every expression and field expression holds; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    name_field = {"metadata.name": str(meta.get("name") or "")}
    return all(_node_expression(labels, e) for e in exprs) and all(
        expression_matches(name_field, f) for f in fields
    )


def affinity_mismatch(pod: Obj, node: Obj) -> str | None:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            return f"node does not match the pod's nodeSelector {key}={value}"
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not any(_term_matches(t, node) for t in terms):
        return "node does not match the pod's required node affinity"
    return None


def node_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"  # no conditions at all: a snapshot without status


def takes_new_pods(node: Obj) -> str | None:
    """Why the node takes no new pods at all (cordoned, not Ready), else None."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "node is cordoned (spec.unschedulable)"
    if not node_ready(node):
        return "node is not Ready"
    return None


def pod_fits_node(pod: Obj, node: Obj) -> str | None:
    """Everything kube-scheduler checks besides resources (those are the extender core's filters)."""
    taint = untolerated_taint(pod, node)
    if taint is not None:
        value = f"={taint['value']}" if taint.get("value") else ""
        return f"pod does not tolerate taint {taint.get('key')}{value}:{taint.get('effect')}"
    return affinity_mismatch(pod, node)
