"""Kubernetes LabelSelector matching (`matchLabels` + `matchExpressions`), shared by every capability."""

from __future__ import annotations

import re
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


_REQUIREMENT = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def parse_selector(text: str) -> dict[str, Any]:
    """kubectl's label-selector syntax (`a=b,c!=d,e,!f,g in (h,i),j notin (k)`) -> a LabelSelector.

    Raises ValueError naming the requirement that does not parse. An empty text selects everything."""
    exprs: list[dict[str, Any]] = []
    match_labels: dict[str, str] = {}
    for part in _split_requirements(text):
        m = _REQUIREMENT.match(part)
        if not m:
            raise ValueError(f"label selector: cannot parse {part.strip()!r}")
        if m.group("not"):
            exprs.append({"key": m.group("nkey"), "operator": "DoesNotExist"})
        elif m.group("op") in ("=", "=="):
            match_labels[m.group("key")] = m.group("value")
        elif m.group("op") == "!=":
            exprs.append({"key": m.group("key"), "operator": "NotIn", "values": [m.group("value")]})
        elif m.group("set"):
            values = [v.strip() for v in m.group("values").split(",") if v.strip()]
            operator = "In" if m.group("set") == "in" else "NotIn"
            exprs.append({"key": m.group("key"), "operator": operator, "values": values})
        else:
            exprs.append({"key": m.group("key"), "operator": "Exists"})
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if exprs:
        out["matchExpressions"] = exprs
    return out


def _split_requirements(text: str) -> list[str]:
    """Split on commas outside parentheses; blank parts are dropped."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (ch == "(") - (ch == ")")
        current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]
