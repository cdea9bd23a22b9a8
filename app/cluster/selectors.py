"""Kubernetes LabelSelector matching (`matchLabels` + `matchExpressions`), shared by every capability."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def expression_matches(labels: Mapping[str, str], expr: Mapping[str, Any]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # unknown operator: match nothing rather than everything


def selector_matches(
    selector: Mapping[str, Any] | None, labels: Mapping[str, str], *, empty_matches: bool
) -> bool:
    """Does a LabelSelector select these labels? An empty selector matches everything for a
    PodDisruptionBudget (`empty_matches=True`) and nothing for a Deployment (`False`)."""
    if not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions")):
        return empty_matches
    match_labels: Mapping[str, Any] = selector.get("matchLabels") or {}
    return all(labels.get(k) == str(v) for k, v in match_labels.items()) and all(
        expression_matches(labels, e) for e in selector.get("matchExpressions") or []
    )
