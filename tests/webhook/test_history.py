"""Workload keys, PromQL, Prometheus parsing and the history cache (timeouts, staleness, errors)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.webhook.conftest import FIXTURES, TEXT_EMBED, usage
from webhook.history import (
    MIN_SAMPLES,
    PrometheusHistory,
    RecordedHistory,
    UsageHistory,
    WorkloadKey,
    build_queries,
    pod_selector,
    usage_from_vectors,
    workload_key,
)


def _pod(owner: tuple[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("pod", "key"),
    [
        (_pod(("ReplicaSet", "web-7d9f8c6b5"), {"pod-template-hash": "7d9f8c6b5"}), ("Deployment", "web")),
        (_pod(("ReplicaSet", "web-7d9f8c6b5")), ("ReplicaSet", "web-7d9f8c6b5")),
        (_pod(("StatefulSet", "nb-alice")), ("StatefulSet", "nb-alice")),
        (_pod(("Job", "train-bert")), ("Job", "train-bert")),
        (_pod(("Job", "nightly-eval-28912345")), ("CronJob", "nightly-eval")),
        (_pod(("DaemonSet", "probe")), ("DaemonSet", "probe")),
        (_pod(("Notebook", "x"), {"app.kubernetes.io/name": "jupyter"}), ("label", "jupyter")),
        (_pod(None, {"app.kubernetes.io/name": "jupyter"}), ("label", "jupyter")),
    ],
)
def test_workload_key(pod: dict[str, Any], key: tuple[str, str]) -> None:
    assert workload_key(pod, "ns") == WorkloadKey("ns", *key)


def test_no_key_for_a_bare_pod() -> None:
    assert workload_key(_pod(), "ns") is None


@pytest.mark.parametrize(
    ("kind", "name", "matches", "misses"),
    [
        (
            "Deployment",
            "text-embed",
            ["text-embed-7d9f8c6b5-x2k9p"],
            ["text-embed-v2-7d9f8c6b5-x2k9p", "text-embed-0"],
        ),
        ("StatefulSet", "nb-alice", ["nb-alice-0", "nb-alice-12"], ["nb-alice-x-0", "nb-alice-abcde"]),
        ("Job", "train", ["train-x2k9p", "train-3-x2k9p"], ["train-eval-x2k9p"]),
        ("CronJob", "nightly", ["nightly-28912345-x2k9p"], ["nightly-x2k9p"]),
    ],
)
def test_pod_regex_selects_the_workloads_pods(
    kind: str, name: str, matches: list[str], misses: list[str]
) -> None:
    regex = pod_selector(WorkloadKey("ns", kind, name))
    assert regex is not None
    for pod in matches:
        assert re.fullmatch(regex, pod), pod  # Prometheus anchors =~ like fullmatch
    for pod in misses:
        assert not re.fullmatch(regex, pod), pod


def test_queries_use_dcgm_metrics_with_namespace_and_pod_labels() -> None:
    q = build_queries(TEXT_EMBED, "7d")
    assert set(q) == {"peak_memory_mib", "gpu_memory_mib", "p95_compute", "samples"}
    sel = 'namespace="inference",pod=~"text\\\\-embed-[a-z0-9]{1,10}-[a-z0-9]{5}"'
    assert f"max by (container) (max_over_time(DCGM_FI_DEV_FB_USED{{{sel}}}[7d]))" == q["peak_memory_mib"]
    assert "DCGM_FI_DEV_FB_FREE" in q["gpu_memory_mib"] and "GPU_I_PROFILE" in q["gpu_memory_mib"]
    assert "quantile_over_time(0.95, DCGM_FI_PROF_GR_ENGINE_ACTIVE" in q["p95_compute"]
    assert " or " in q["p95_compute"] and "DCGM_FI_DEV_GPU_UTIL" in q["p95_compute"]
    label_q = build_queries(WorkloadKey("notebooks", "label", "jupyter"), "3d")["peak_memory_mib"]
    assert 'kube_pod_labels{namespace="notebooks",label_app_kubernetes_io_name="jupyter"}' in label_q
    assert label_q.endswith("[3d:1m]))")


def _recorded() -> dict[str, list[dict[str, Any]]]:
    raw = json.loads((FIXTURES / "prometheus_text_embed.json").read_text())
    return {k: v["data"]["result"] for k, v in raw.items()}


def test_usage_from_recorded_prometheus_answers() -> None:
    got = usage_from_vectors(_recorded())
    assert got == {
        "vllm": usage(6553.0 / 1024, 0.09, model="NVIDIA A100-SXM4-80GB", total_mib=81920.0).__class__(
            peak_memory_mib=6553.0,
            p95_compute=0.09,
            gpu_memory_mib=81920.0,
            gpu_model="NVIDIA A100-SXM4-80GB",
            samples=20160,
        )
    }


def test_usage_on_a_mig_slice_is_brought_back_to_whole_gpu_terms() -> None:
    def v(metric: dict[str, str], value: float) -> dict[str, Any]:
        return {"metric": metric, "value": [0, str(value)]}

    mig = {"container": "c", "modelName": "NVIDIA A100-SXM4-80GB", "GPU_I_PROFILE": "1g.10gb"}
    got = usage_from_vectors(
        {
            "peak_memory_mib": [v({"container": "c"}, 5000)],
            "gpu_memory_mib": [v(mig, 9856)],  # the slice's framebuffer, not the GPU's
            "p95_compute": [v(mig, 0.7)],  # 70 % of a 1g slice = 10 % of the GPU
            "samples": [v({"container": "c"}, 500)],
        }
    )["c"]
    assert got.gpu_memory_mib is None and got.gpu_model == "NVIDIA A100-SXM4-80GB"
    assert got.p95_compute == pytest.approx(0.1)


def test_too_few_samples_or_nan_is_no_history() -> None:
    few = _recorded()
    few["samples"] = [{"metric": {"container": "vllm"}, "value": [0, str(MIN_SAMPLES - 1)]}]
    assert usage_from_vectors(few) == {}
    nan = _recorded()
    nan["peak_memory_mib"] = [{"metric": {"container": "vllm"}, "value": [0, "NaN"]}]
    assert usage_from_vectors(nan) == {}


async def test_prometheus_source_queries_the_http_api() -> None:
    recorded = json.loads((FIXTURES / "prometheus_text_embed.json").read_text())
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        query = request.url.params["query"]
        seen.append(query)
        name = next(k for k, q in build_queries(TEXT_EMBED, "7d").items() if q == query)
        return httpx.Response(200, json=recorded[name])

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = PrometheusHistory("http://prom:9090/", "7d", client=client)
    got = await source.fetch(TEXT_EMBED)
    await source.aclose()
    assert len(seen) == 4 and got["vllm"].peak_memory_mib == 6553.0


async def test_prometheus_error_answer_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"})

    source = PrometheusHistory(
        "http://prom", client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(httpx.HTTPStatusError):
        await source.fetch(TEXT_EMBED)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_miss_then_hit_then_stale_while_refreshing() -> None:
    clock = _Clock()
    source = RecordedHistory({TEXT_EMBED: {"vllm": usage(6, 0.1)}})
    history = UsageHistory(source, ttl=60, timeout=1, clock=clock)
    first = await history.lookup(TEXT_EMBED)
    assert first.status == "miss" and "vllm" in first.usage
    assert (await history.lookup(TEXT_EMBED)).status == "hit"
    assert source.calls == 1
    clock.now += 61
    stale = await history.lookup(TEXT_EMBED)
    assert stale.status == "stale" and "vllm" in stale.usage  # answered at once, refresh in background
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert source.calls == 2
    assert (await history.lookup(TEXT_EMBED)).status == "hit"


async def test_slow_source_never_slows_admission_and_fills_the_cache_later() -> None:
    source = RecordedHistory({TEXT_EMBED: {"vllm": usage(6, 0.1)}}, delay=0.3)
    history = UsageHistory(source, ttl=60, timeout=0.05)
    started = time.perf_counter()
    result = await history.lookup(TEXT_EMBED)
    assert result.status == "timeout" and time.perf_counter() - started < 0.25
    await asyncio.sleep(0.4)
    assert (await history.lookup(TEXT_EMBED)).status == "hit"
    assert source.calls == 1


async def test_concurrent_lookups_share_one_fetch() -> None:
    source = RecordedHistory({TEXT_EMBED: {"vllm": usage(6, 0.1)}}, delay=0.05)
    history = UsageHistory(source, ttl=60, timeout=1)
    results = await asyncio.gather(*(history.lookup(TEXT_EMBED) for _ in range(10)))
    assert {r.status for r in results} == {"miss"} and source.calls == 1


async def test_errors_are_cached_briefly_and_good_answers_survive_outages() -> None:
    clock = _Clock()
    source = RecordedHistory({TEXT_EMBED: {"vllm": usage(6, 0.1)}}, fail=True)
    history = UsageHistory(source, ttl=60, timeout=1, error_ttl=10, clock=clock)
    bad = await history.lookup(TEXT_EMBED)
    assert bad.status == "error" and "ConnectionError" in bad.note
    assert (await history.lookup(TEXT_EMBED)).status == "error" and source.calls == 1
    source.fail = False
    clock.now += 11
    await history.lookup(TEXT_EMBED)  # error entry expired: refresh starts
    await asyncio.sleep(0.01)
    assert (await history.lookup(TEXT_EMBED)).status == "hit"
    # Prometheus goes down: the last good answer keeps serving
    source.fail = True
    clock.now += 61
    assert (await history.lookup(TEXT_EMBED)).status == "stale"
    await asyncio.sleep(0.01)
    assert (await history.lookup(TEXT_EMBED)).usage["vllm"].peak_memory_mib == 6 * 1024


async def test_refresher_keeps_hot_entries_warm() -> None:
    clock = _Clock()
    source = RecordedHistory({TEXT_EMBED: {"vllm": usage(6, 0.1)}})
    history = UsageHistory(source, ttl=60, timeout=1, clock=clock)
    await history.lookup(TEXT_EMBED)
    clock.now += 50
    tasks = history.refresh_due()
    await asyncio.gather(*tasks)
    assert source.calls == 2
    clock.now += 20  # 70 s after the first fetch, 20 s after the refresh
    assert (await history.lookup(TEXT_EMBED)).status == "hit"


async def test_no_source_means_disabled() -> None:
    history = UsageHistory(None)
    result = await history.lookup(TEXT_EMBED)
    assert result.status == "disabled" and "Prometheus" in result.note
