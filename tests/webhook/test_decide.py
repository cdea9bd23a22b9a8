"""The decision on real AdmissionReview JSON: patches applied with jsonpatch to the original pod, checked."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.webhook.conftest import (
    NB_ALICE,
    NS_LABELS,
    TEXT_EMBED,
    apply_response,
    demo_offers,
    load_review,
    usage,
)
from webhook.decide import Outcome, Params, decide, history_key
from webhook.history import HistoryResult
from webhook.models import parse_review

OFFERS = demo_offers()
GOOD = HistoryResult("hit", {"vllm": usage(6.0, 0.09), "notebook": usage(14.0, 0.18)})


def run(
    raw: dict[str, Any], history: HistoryResult | None = GOOD, offers: Any = None
) -> tuple[Outcome, dict]:
    review = parse_review(raw)
    ns = review.request.namespace
    out = decide(review, NS_LABELS.get(ns), OFFERS if offers is None else offers, history, Params(0.5, 0.2))
    pod = raw["request"]["object"]
    return out, apply_response(pod, out.response.model_dump(exclude_none=True))


def limits(pod: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return dict(pod["spec"]["containers"][i]["resources"]["limits"])


def test_deployment_replica_is_rewritten_to_the_smallest_fitting_slice() -> None:
    raw = load_review("pod_create_deployment.json")
    assert history_key(parse_review(raw), NS_LABELS["inference"]) == TEXT_EMBED
    out, patched = run(raw)
    assert out.outcome == "mutated" and out.profile == "1g.10gb"
    assert out.response.uid == raw["request"]["uid"] and out.response.allowed
    for section in ("limits", "requests"):
        res = patched["spec"]["containers"][0]["resources"][section]
        assert "nvidia.com/gpu" not in res and res["nvidia.com/mig-1g.10gb"] == "1"
        assert (
            res["memory"] == raw["request"]["object"]["spec"]["containers"][0]["resources"][section]["memory"]
        )
    ann = patched["metadata"]["annotations"]
    assert ann["gpu-autoscaler.io/optimized"] == "true"
    assert ann["gpu-autoscaler.io/original-gpu-request"] == "1"
    assert "1g.10gb" in ann["gpu-autoscaler.io/optimization-reason"]
    assert ann["prometheus.io/scrape"] == "true"  # existing annotations kept
    assert any("nvidia.com~1gpu" in op["path"] for op in out.ops)
    assert all(len(w) < 120 for w in out.warnings)


def test_notebook_without_annotations_and_with_a_sidecar() -> None:
    raw = load_review("pod_create_notebook.json")
    assert history_key(parse_review(raw), NS_LABELS["notebooks"]) == NB_ALICE
    out, patched = run(raw)
    assert out.profile == "2g.20gb"  # 14 GiB + 20 % > 9.62; 18 % compute > 1/7
    assert limits(patched, 0)["nvidia.com/mig-2g.20gb"] == "1"
    assert patched["spec"]["containers"][1] == raw["request"]["object"]["spec"]["containers"][1]
    assert {op["path"] for op in out.ops} >= {"/metadata/annotations"}


def test_reinvocation_is_idempotent() -> None:
    raw = load_review("pod_create_deployment.json")
    out, patched = run(raw)
    again = copy.deepcopy(raw)
    again["request"]["object"] = patched
    out2, patched2 = run(again)
    assert out2.ops == [] and out2.response.patch is None and patched2 == patched
    out3, _ = run(raw)
    assert out3.ops == out.ops  # same input, same patch


def test_dry_run_gets_the_same_answer() -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["dryRun"] = True
    out, _ = run(raw)
    assert out.outcome == "mutated" and out.log["dry_run"] is True


def test_multi_gpu_is_never_sliced() -> None:
    out, patched = run(load_review("pod_create_multigpu.json"))
    assert out.ops == [] and patched == load_review("pod_create_multigpu.json")["request"]["object"]
    assert any("multi-GPU" in w for w in out.warnings)


def _with_annotation(value: str) -> dict[str, Any]:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["object"]["metadata"]["annotations"]["gpu-autoscaler.io/mig"] = value
    return raw


def test_opt_out_annotation() -> None:
    raw = _with_annotation("off")
    assert history_key(parse_review(raw), NS_LABELS["inference"]) is None
    out, _ = run(raw)
    assert out.ops == [] and out.outcome == "skipped" and out.warnings == []


def test_pin_annotation_needs_no_history() -> None:
    raw = _with_annotation("3g.40gb")
    assert history_key(parse_review(raw), NS_LABELS["inference"]) is None
    out, patched = run(raw, history=None)
    assert out.outcome == "pinned" and limits(patched)["nvidia.com/mig-3g.40gb"] == "1"
    out, _ = run(_with_annotation("1g.5gb"), history=None)  # known (A100-40GB), offered nowhere
    assert out.outcome == "pinned" and any("offered by no node" in w for w in out.warnings)
    out, _ = run(_with_annotation("9g.999gb"), history=None)
    assert out.ops == [] and any("not a known MIG profile" in w for w in out.warnings)


def test_namespace_not_opted_in_or_unknown() -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["namespace"] = "ml-training"
    out, _ = run(raw)
    assert out.ops == [] and out.outcome == "skipped" and not out.warnings
    raw["request"]["namespace"] = "nowhere"
    out, _ = run(raw)
    assert out.ops == [] and any("unknown to the webhook" in w for w in out.warnings)


def test_fail_open_without_history() -> None:
    raw = load_review("pod_create_deployment.json")
    for history, word in [
        (HistoryResult("disabled", {}, "no Prometheus configured"), "no Prometheus"),
        (HistoryResult("timeout", {}, "history query took over 2s"), "took over"),
        (HistoryResult("error", {}, "history unavailable: ConnectError"), "ConnectError"),
        (HistoryResult("hit", {}), "no usage history"),
    ]:
        out, patched = run(raw, history=history)
        assert out.ops == [] and patched == raw["request"]["object"]
        assert any(word in w for w in out.warnings), out.warnings
        assert all(len(w) < 120 for w in out.warnings)


def test_unknown_gpu_types_and_product_constraints() -> None:
    raw = load_review("pod_create_deployment.json")
    out, _ = run(raw, offers={"NVIDIA-B200": frozenset({"1g.23gb"})})
    assert out.outcome == "unknown_gpu" and any("unknown GPU type" in w for w in out.warnings)
    raw["request"]["object"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    out, _ = run(raw)
    assert out.ops == [] and out.outcome == "unknown_gpu"
    raw["request"]["object"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert run(raw)[0].profile == "1g.10gb"


def test_no_mig_in_the_cluster() -> None:
    out, _ = run(load_review("pod_create_deployment.json"), offers={})
    assert out.ops == [] and any("no node offers MIG" in w for w in out.warnings)


def test_busy_workload_is_kept() -> None:
    out, _ = run(
        load_review("pod_create_deployment.json"), history=HistoryResult("hit", {"vllm": usage(72, 0.4)})
    )
    assert out.outcome == "kept" and out.ops == [] and any("uses 90% of a GPU" in w for w in out.warnings)


def test_non_pod_and_non_create_are_left_alone() -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["operation"] = "UPDATE"
    raw["request"]["oldObject"] = raw["request"]["object"]
    out, _ = run(raw)
    assert out.outcome == "skipped" and out.ops == []


# --- properties over generated pods ---------------------------------------------------------------
QUANTITY = st.sampled_from(["1", "2", "500m", "4Gi", "0", 1, 3])
RESOURCE_NAMES = st.sampled_from(
    ["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage", "example.com/foo~bar"]
)
OTHER = st.dictionaries(RESOURCE_NAMES, QUANTITY, max_size=4)
ONE_GPU = st.builds(lambda d, n: {**d, "nvidia.com/gpu": n}, OTHER, st.sampled_from(["1", "1", 1, "2"]))
RESOURCES = st.one_of(ONE_GPU, ONE_GPU, OTHER)
CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["vllm", "notebook", "side", "c"]), "image": st.just("img")},
    optional={"resources": st.fixed_dictionaries({}, optional={"limits": RESOURCES, "requests": RESOURCES})},
)
ANNOTATIONS = st.dictionaries(
    st.sampled_from(["a", "x/y", "gpu-autoscaler.io/mig", "gpu-autoscaler.io/optimized"]),
    st.sampled_from(["off", "1g.10gb", "2g.20gb", "true", "junk", ""]),
    max_size=3,
)
POD = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {
                "generateName": st.just("text-embed-7d9f8c6b5-"),
                "labels": st.just({"pod-template-hash": "7d9f8c6b5"}),
            },
            optional={"annotations": st.one_of(st.just({}), ANNOTATIONS)},
        ),
        "spec": st.fixed_dictionaries({"containers": st.lists(CONTAINER, min_size=1, max_size=3)}),
    }
)
USAGE = st.builds(usage, st.floats(0.1, 79.0), st.floats(0.0, 1.0)) | st.builds(
    usage, st.floats(0.1, 30.0), st.floats(0.0, 0.45)
)


def _review(pod: dict[str, Any]) -> dict[str, Any]:
    raw = load_review("pod_create_deployment.json")
    pod["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "text-embed-7d9f8c6b5", "controller": True}
    ]
    raw["request"]["object"] = pod
    return raw


def _non_gpu(pod: dict[str, Any]) -> list[Any]:
    out = []
    for c in pod["spec"]["containers"]:
        res = c.get("resources") or {}
        for section in ("limits", "requests"):
            values = res.get(section) or {}
            out.append(
                {
                    k: v
                    for k, v in values.items()
                    if k != "nvidia.com/gpu" and not k.startswith("nvidia.com/mig-")
                }
            )
        out.append({k: v for k, v in c.items() if k != "resources"})
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(pod=POD, vllm=USAGE, other=USAGE)
def test_patch_applies_touches_only_gpu_resources_and_is_idempotent(
    pod: dict[str, Any], vllm: Any, other: Any
) -> None:
    raw = _review(pod)
    history = HistoryResult("hit", {"vllm": vllm, "notebook": other, "side": other, "c": vllm})
    try:
        out, patched = run(raw, history)
    except Exception as exc:  # malformed generated pods must be rejected as such, never crash later
        from webhook.models import ReviewError

        assert isinstance(exc, ReviewError), exc
        return
    event(out.outcome)
    assert out.response.allowed is True
    assert _non_gpu(patched) == _non_gpu(pod)
    for key, value in ((pod["metadata"].get("annotations")) or {}).items():
        if not key.startswith("gpu-autoscaler.io/"):
            assert patched["metadata"]["annotations"][key] == value
    again = copy.deepcopy(raw)
    again["request"]["object"] = patched
    out2, patched2 = run(again, history)
    assert out2.ops == [] and patched2 == patched
    assert all(len(w) < 120 for w in out.warnings)
