"""The sharing rewrite on real AdmissionReview JSON: gpu-milli + the pool's node selector, beside MIG."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.webhook.conftest import apply_response, demo_offers, load_review, usage
from webhook.component import WebhookComponent
from webhook.decide import Outcome, Params, decide
from webhook.history import HistoryResult
from webhook.models import parse_review
from webhook.share import PoolOffer, choose_share, pool_offers

L40S = "NVIDIA L40S"
GOOD = HistoryResult("hit", {"vllm": usage(6.0, 0.09), "notebook": usage(14.0, 0.18)})
BUSY = HistoryResult("hit", {"vllm": usage(40.0, 0.7)})
SHARE_ONLY = {"gpu-autoscaler.io/sharing": "enabled"}
BOTH = {**SHARE_ONLY, "gpu-autoscaler.io/mig-rewrite": "enabled"}


def l40s_node(strategy: str = "time-slicing", replicas: int = 4, rename: bool = False) -> dict[str, Any]:
    alloc = {"nvidia.com/gpu": str(4 * replicas)}
    if rename:
        alloc = {"nvidia.com/gpu": "0", "nvidia.com/gpu.shared": str(4 * replicas)}
    return {
        "metadata": {
            "name": "l40s-shared",
            "labels": {
                "nvidia.com/gpu.product": "NVIDIA-L40S" if rename else "NVIDIA-L40S-SHARED",
                "nvidia.com/gpu.memory": "46068",
                "nvidia.com/gpu.sharing-strategy": strategy,
                "nvidia.com/gpu.replicas": str(replicas),
            },
        },
        "status": {"allocatable": alloc},
    }


POOL = pool_offers([l40s_node()], "time-slicing")


def run(
    raw: dict[str, Any],
    ns_labels: dict[str, str] | None = None,
    history: HistoryResult = GOOD,
    offers: Any = None,
    pool: list[PoolOffer] | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    out = decide(
        parse_review(raw),
        SHARE_ONLY if ns_labels is None else ns_labels,
        {} if offers is None else offers,
        history,
        Params(0.5, 0.2, "time-slicing"),
        POOL if pool is None else pool,
    )
    return out, apply_response(raw["request"]["object"], out.response.model_dump(exclude_none=True))


def test_a_light_workload_gets_a_share_of_a_pool_gpu() -> None:
    raw = load_review("pod_create_deployment.json")
    out, patched = run(raw)
    # 6 GiB + 20 % of a 45 GiB L40S is 16 %, p95 9 % + 20 %: 200 m
    assert (out.outcome, out.profile) == ("shared", "200m")
    ann = patched["metadata"]["annotations"]
    assert ann["gpu-autoscaler.io/gpu-milli"] == "200"
    assert (
        ann["gpu-autoscaler.io/optimized"] == "true" and ann["gpu-autoscaler.io/original-gpu-request"] == "1"
    )
    assert patched["spec"]["nodeSelector"] == {"nvidia.com/gpu.sharing-strategy": "time-slicing"}
    assert patched["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any("200m of a shared NVIDIA-L40S" in w for w in out.warnings)
    assert all(len(w) < 120 for w in out.warnings)
    # the API server calls again after other webhooks: nothing more to change
    again = copy.deepcopy(raw)
    again["request"]["object"] = patched
    out2, _ = run(again)
    assert out2.ops == [] and out2.outcome == "skipped"


def test_renamed_pool_resources_and_an_existing_node_selector() -> None:
    raw = load_review("pod_create_notebook.json")
    raw["request"]["object"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    pool = pool_offers([l40s_node(rename=True)], "time-slicing")
    assert pool[0].resource == "nvidia.com/gpu.shared"
    out, patched = run(raw, pool=pool)
    assert out.outcome == "shared"
    res = patched["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu.shared"] == "1" and "nvidia.com/gpu" not in res["requests"]
    assert patched["spec"]["containers"][1] == raw["request"]["object"]["spec"]["containers"][1]
    assert patched["spec"]["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
    }


def test_mig_first_then_sharing() -> None:
    raw = load_review("pod_create_deployment.json")
    out, _ = run(raw, ns_labels=BOTH, offers=demo_offers())
    assert (out.outcome, out.profile, out.slices) == ("mutated", "1g.10gb", ["1g.10gb"])
    # no MIG node offers a slice: the pod is shared instead, the reasons say both
    out, _ = run(raw, ns_labels=BOTH, offers={})
    assert out.outcome == "shared" and "no node offers MIG slices" in out.reasons
    # MIG only (no sharing label): unchanged as before
    out, _ = run(raw, ns_labels={"gpu-autoscaler.io/mig-rewrite": "enabled"}, offers={})
    assert out.outcome == "no_fit" and out.ops == []


@pytest.mark.parametrize(
    ("change", "outcome", "why"),
    [
        ({"history": BUSY}, "kept", "uses 70% of a GPU"),
        ({"pool": []}, "no_pool", "no node shares GPUs yet"),
        (
            {"pool": pool_offers([l40s_node("mps", 8)], "mps")},
            "no_fit",
            "an MPS replica of NVIDIA-L40S holds 125m",
        ),
        ({"selector": "NVIDIA-L40S"}, "no_fit", "no sharing node matches the pod's GPU product"),
        ({"history": HistoryResult("timeout", {}, "slow")}, "no_history", "no usage history (slow)"),
    ],
)
def test_left_whole_and_why(change: dict[str, Any], outcome: str, why: str) -> None:
    raw = load_review("pod_create_deployment.json")
    if "selector" in change:
        raw["request"]["object"]["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": change["selector"]}
    out, _ = run(raw, history=change.get("history", GOOD), pool=change.get("pool"))
    assert out.outcome == outcome and out.ops == []
    assert "patch" not in out.response.model_dump(exclude_none=True)
    assert any(why in r for r in out.reasons), out.reasons
    assert out.response.warnings


def test_opt_outs_and_pods_that_already_ask_a_share() -> None:
    raw = load_review("pod_create_deployment.json")
    raw["request"]["object"]["metadata"]["annotations"]["gpu-autoscaler.io/sharing"] = "off"
    out, _ = run(raw)
    assert out.outcome == "skipped" and out.reasons == ["gpu-autoscaler.io/sharing=off"]
    raw = load_review("pod_create_deployment.json")
    raw["request"]["object"]["metadata"]["annotations"]["gpu-autoscaler.io/gpu-milli"] = "300"
    out, _ = run(raw, ns_labels=BOTH, offers=demo_offers())
    assert out.outcome == "skipped" and out.ops == []
    # a MIG pin in a namespace that only shares is not a share request
    raw = load_review("pod_create_deployment.json")
    raw["request"]["object"]["metadata"]["annotations"]["gpu-autoscaler.io/mig"] = "3g.40gb"
    out, _ = run(raw)
    assert out.outcome == "skipped" and "has no MIG rewrite" in out.reasons[-1]


def test_the_share_is_the_larger_of_memory_and_compute() -> None:
    offer = POOL[0]
    assert choose_share(usage(2.0, 0.30), POOL, [], None).milli == 400  # 36 % compute wins
    assert choose_share(usage(13.0, 0.01), POOL, [], None).milli == 350  # 15.6 GiB of 45 GiB
    assert choose_share(usage(0.1, 0.0), POOL, [], None).milli == 50  # never below one step
    wanted = choose_share(usage(6.0, 0.09), [], [], None)
    assert wanted.milli is None and wanted.wanted == 150  # on the 80 GiB A100 it ran on: compute 11 %
    assert offer.product == "NVIDIA-L40S"


def test_the_webhook_remembers_its_choices_for_the_controllers() -> None:
    from app.settings import Settings

    hook = WebhookComponent(Settings(cluster="demo"))
    raw = load_review("pod_create_deployment.json")
    mig, _ = run(raw, ns_labels=BOTH, offers=demo_offers())
    wanted, _ = run(raw, pool=[])
    shared, _ = run(raw)
    for when, out in ((100.0, mig), (200.0, wanted), (300.0, shared)):
        hook.note(out, now=when)
    assert hook.recent_slices(since=0) == {"1g.10gb": 1}
    assert hook.recent_slices(since=150) == {}
    assert hook.recent_wanted_shares(since=0) == [150]  # a shared pod is already in the pool's demand
