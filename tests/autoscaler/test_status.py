"""VariantAutoscaling status: conditions people read, and writes only when something they read changes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.autoscaler.saturation import Action, Decision, Reason, Replica, ReplicaMetrics, Variant
from app.autoscaler.status import metrics_condition, rfc3339, status_patch, unresolved_status, variant_status

T0 = 1_750_000_000.0


def variant(replicas: tuple[Replica, ...], current: int | None = None) -> Variant:
    n = len(replicas) if current is None else current
    return Variant("llama-l40s", "inf", "llama", "L40S", 15.0, n, n, replicas, target="llama-l40s-deploy")


def rep(pod: str, kv: float | None = 0.4, age: float | None = 1.0, ready: bool = True) -> Replica:
    return Replica(pod, ready, ReplicaMetrics(kv=kv, queue=0, age_s=age))


@pytest.mark.parametrize(
    ("replicas", "current", "error", "status", "reason"),
    [
        ((), 0, None, "Unknown", "NoReplicas"),
        ((rep("a", ready=False),), None, None, "Unknown", "ReplicasStarting"),
        ((rep("a"), rep("b")), None, None, "True", "MetricsFound"),
        ((rep("a"), rep("b", age=300)), None, None, "False", "MetricsStale"),
        ((rep("a"), Replica("b", True, None)), None, None, "False", "MetricsMissing"),
        ((rep("a", kv=None),), None, None, "False", "MetricsMissing"),
        ((Replica("b", True, None),), None, "ConnectError: refused", "False", "PrometheusError"),
        ((rep("a", age=300),), None, "ConnectError: refused", "False", "MetricsStale"),
    ],
)
def test_metrics_condition(
    replicas: tuple[Replica, ...], current: int | None, error: str | None, status: str, reason: str
) -> None:
    c = metrics_condition(variant(replicas, current), 90, error)
    assert (c["type"], c["status"], c["reason"]) == ("MetricsAvailable", status, reason)
    if error:
        assert error in c["message"]


def decision(desired: int = 3, code: Reason = Reason.SCALE_UP, action: Action = Action.SCALE_UP) -> Decision:
    return Decision(
        variant((rep("a"), rep("b"))), desired, action, ("scale up cheapest variant",), None, code
    )


def test_variant_status_shape() -> None:
    st = variant_status(decision(), T0, 90, None)
    assert st["currentAlloc"] == {"accelerator": "L40S", "numReplicas": 2}
    assert st["desiredOptimizedAlloc"] == {
        "lastRunTime": rfc3339(T0),
        "accelerator": "L40S",
        "numReplicas": 3,
    }
    assert st["actuation"] == {"applied": False}
    cond = {c["type"]: c for c in st["conditions"]}
    assert cond["OptimizationReady"]["status"] == "True" and cond["OptimizationReady"]["reason"] == "ScaleUp"
    assert cond["TargetResolved"]["message"] == "Deployment llama-l40s-deploy found"
    held = variant_status(decision(2, Reason.METRICS_STALE, Action.HOLD), T0, 90, None)
    assert {c["type"]: c["status"] for c in held["conditions"]}["OptimizationReady"] == "False"


def _times(patch: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["lastTransitionTime"] for c in patch["status"]["conditions"]}


def test_status_written_on_change_and_refresh_only() -> None:
    first = status_patch(None, variant_status(decision(), T0, 90, None), T0, refresh_s=300)
    assert first is not None and set(_times(first).values()) == {rfc3339(T0)}
    existing = first["status"]
    # same numbers and reasons 30 s later: nothing to write (the message's numbers may differ)
    again = variant_status(decision(), T0 + 30, 90, None)
    again["conditions"][2]["message"] = "spareKv=0.021 ..."
    assert status_patch(existing, again, T0 + 30, refresh_s=300) is None
    # past the refresh interval: rewritten, transition times kept
    late = status_patch(existing, variant_status(decision(), T0 + 301, 90, None), T0 + 301, refresh_s=300)
    assert late is not None and set(_times(late).values()) == {rfc3339(T0)}
    # a new reason with the same status: written, transition time kept
    steady = variant_status(decision(3, Reason.WITHIN_BAND, Action.NONE), T0 + 60, 90, None)
    changed = status_patch(existing, steady, T0 + 60, refresh_s=300)
    assert changed is not None and _times(changed)["OptimizationReady"] == rfc3339(T0)
    # the status flips: a new transition time
    held = variant_status(decision(2, Reason.METRICS_STALE, Action.HOLD), T0 + 90, 90, None)
    flipped = status_patch(existing, held, T0 + 90, refresh_s=300)
    assert flipped is not None and _times(flipped)["OptimizationReady"] == rfc3339(T0 + 90)
    assert _times(flipped)["TargetResolved"] == rfc3339(T0)
    # a different desired count is always written
    more = status_patch(existing, variant_status(decision(4), T0 + 5, 90, None), T0 + 5, refresh_s=300)
    assert more is not None and more["status"]["desiredOptimizedAlloc"]["numReplicas"] == 4


def test_unresolved_status() -> None:
    st = unresolved_status("Deployment inf/gone not found", T0)
    cond = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert cond == {
        "TargetResolved": ("False", "TargetNotFound"),
        "OptimizationReady": ("False", "InvalidConfiguration"),
    }


CRD = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "variantautoscaling.yaml"


def _crd_version() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def _jsonpath(obj: dict[str, Any], path: str) -> Any:
    """The two JSONPath forms the printer columns use: `.a.b` and `.a.conditions[?(@.type=="X")].b`."""
    value: Any = obj
    for part in re.findall(r'\.((?:\\\.|[^.\[])+)(\[\?\(@\.type=="(\w+)"\)\])?', path):
        key, _, ctype = part
        value = (value or {}).get(key.replace("\\.", "."))
        if ctype:
            value = next((c for c in value or [] if c.get("type") == ctype), None)
    return value


@pytest.mark.parametrize(
    "status",
    [
        variant_status(decision(), T0, 90, None),
        variant_status(decision(0, Reason.SCALED_TO_ZERO, Action.SCALE_DOWN), T0, 90, None),
        unresolved_status("Deployment inf/x not found", T0),
    ],
)
def test_written_status_fits_the_crd(status: dict[str, Any]) -> None:
    patch = status_patch(None, status, T0, 300)
    assert patch is not None
    schema = _crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    jsonschema.validate(patch["status"], schema)
    assert "conditions" in schema["properties"] and "currentAlloc" in schema["properties"]


def test_printer_columns_show_what_the_autoscaler_writes() -> None:
    patch = status_patch(None, variant_status(decision(), T0, 90, None), T0, 300)
    assert patch is not None
    va = {
        "metadata": {
            "labels": {"inference.optimization/acceleratorName": "L40S"},
            "creationTimestamp": "2025-06-02T07:41:19Z",
        },
        "spec": {"modelID": "llama", "variantCost": "15.0", "scaleTargetRef": {"name": "llama-l40s-deploy"}},
        **patch,
    }
    columns = {c["name"]: _jsonpath(va, c["jsonPath"]) for c in _crd_version()["additionalPrinterColumns"]}
    assert columns == {
        "Model": "llama",
        "Accelerator": "L40S",
        "Current": 2,
        "Desired": 3,
        "Reason": "ScaleUp",
        "Target": "llama-l40s-deploy",
        "Cost": "15.0",
        "Metrics": "MetricsFound",
        "Age": "2025-06-02T07:41:19Z",
    }
