"""Demo act: a load ramp on the llama model, the autoscaler's decisions per step, then GET /metrics.

There is no Prometheus in the demo, so a `StaticSource` plays the vLLM gauges, and the act plays the HPA and
the Deployment controller (scales Deployments, starts pods, marks them ready one step later). Time is
simulated (30 s per step) so the stabilisation windows are visible in a few seconds.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from rich.table import Table

from app.autoscaler.collector import StaticSource
from app.autoscaler.component import AutoscalerComponent
from app.autoscaler.stabilize import Stabilizer
from extender.demo import schedule

NS = "inference"
#: llama demand, in "replicas of KV at 100 %" (spread evenly on ready replicas); rises then falls
RAMP = [0.8, 1.6, 2.4, 3.0, 3.6, 3.6, 3.0, 2.2, 1.4, 0.8, 0.6, 0.6, 0.6, 0.6]
QWEN_DEMAND = 0.8
STEP_S = 30.0


def _pods(run: Any, deploy: dict[str, Any]) -> list[dict[str, Any]]:
    sel = deploy["spec"]["selector"]["matchLabels"]
    return [
        p
        for p in run.cluster.list("Pod", NS)
        if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())
    ]


def _set_ready(pod: dict[str, Any], ready: bool) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    status = pod.setdefault("status", {})
    status["phase"] = "Running"
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return pod


def _actuate(run: Any, name: str, desired: int, step: int) -> None:
    """Play the HPA + Deployment controller: new pods start not ready; removed pods go at once."""
    deploy = copy.deepcopy(run.cluster.get("Deployment", name, NS))
    pods = sorted(_pods(run, deploy), key=lambda p: p["metadata"]["name"])
    for i in range(len(pods), desired):
        new = _set_ready(pods[0], False)
        new["metadata"]["name"] = f"{name}-demo-{step}-{i}"
        new["metadata"].pop("uid", None)
        new["spec"].pop("nodeName", None)
        names = [n["metadata"]["name"] for n in run.cluster.list("Node")]
        node = schedule(run.client, new, names).chosen
        if node is None:  # no room: the replica stays Pending (and is not counted ready)
            new["status"] = {"phase": "Pending"}
        else:
            new["spec"]["nodeName"] = node
        run.cluster.upsert(new)
    for pod in pods[desired:]:
        run.cluster.delete("Pod", pod["metadata"]["name"], NS)
    deploy["spec"]["replicas"] = desired
    deploy["status"]["replicas"] = desired
    deploy["status"]["readyReplicas"] = min(desired, sum(1 for p in pods if _ready(p)))
    run.cluster.upsert(deploy)


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions", [])
    )


def _finish_starts(run: Any) -> None:
    """Pods started last step are ready now."""
    for deploy in run.cluster.list("Deployment", NS):
        deploy = copy.deepcopy(deploy)
        pods = _pods(run, deploy)
        for pod in pods:
            if not _ready(pod) and pod["spec"].get("nodeName"):
                run.cluster.upsert(_set_ready(pod, True))
        deploy["status"]["readyReplicas"] = sum(1 for p in _pods(run, deploy) if _ready(p))
        run.cluster.upsert(deploy)


def _feed(run: Any, source: StaticSource, llama: float) -> None:
    """Spread each model's demand over its ready replicas: kv = demand / n, queue grows past 70 % KV."""
    demand = {"meta-llama/Llama-3.1-8B-Instruct": llama, "Qwen/Qwen2.5-32B-Instruct": QWEN_DEMAND}
    by_model: dict[str, list[str]] = {}
    for va in run.cluster.list("VariantAutoscaling", NS):
        deploy = run.cluster.get("Deployment", va["spec"]["scaleTargetRef"]["name"], NS)
        for pod in _pods(run, deploy):
            if _ready(pod):
                by_model.setdefault(va["spec"]["modelID"], []).append(pod["metadata"]["name"])
    source.pods.clear()
    for model, names in by_model.items():
        kv = min(1.0, demand[model] / len(names))
        queue = round(max(0.0, (kv - 0.7) * 40))
        for name in names:
            source.set(NS, name, kv=round(kv, 3), queue=queue, running=round(kv * 32))


def act(run: Any) -> None:
    """Rising then falling load on llama; a table of decisions per step; /metrics at the end."""
    run.console.rule("[bold]Saturation autoscaler: load ramp on meta-llama/Llama-3.1-8B-Instruct")
    comp: AutoscalerComponent = run.app.state.ctx.components["autoscaler"]
    now = [time.time()]
    comp.clock = lambda: now[0]
    source = StaticSource(clock=lambda: now[0])
    comp.source = source
    comp.write_status = True
    comp.stabilizer = Stabilizer(up_window_s=0, down_window_s=60)  # short so the demo shows it
    run.console.print(
        "thresholds: llama kvCacheThreshold 0.75 (override), qwen 0.80 (default); triggers kv 0.10, queue 3; "
        "scale-down window 60 s, one step = 30 s simulated"
    )
    table = Table(
        "step", "llama demand", "variant", "cost", "kv / queue", "ready/cur", "decision", "desired", "reason"
    )
    for step, demand in enumerate(RAMP):
        now[0] += STEP_S
        _finish_starts(run)
        _feed(run, source, demand)
        decisions = comp.run_cycle_threadsafe()
        for d in sorted(decisions, key=lambda d: (d.variant.model_id, d.variant.name)):
            v = d.variant
            if not v.model_id.startswith("meta-llama") and step not in (0, len(RAMP) - 1):
                continue
            sample = next((r.metrics for r in v.replicas if r.metrics is not None), None)
            kvq = f"{sample.kv:.2f} / {sample.queue:g}" if sample and sample.kv is not None else "-"
            colour = {"scale_up": "green", "scale_down": "yellow", "hold": "magenta"}.get(
                d.action.value, "white"
            )
            table.add_row(
                str(step),
                f"{demand:.1f}",
                v.name,
                f"{v.cost:g}",
                kvq,
                f"{v.ready}/{v.current}",
                f"[{colour}]{d.action.value}[/]",
                str(d.desired),
                d.reasons[-1][:70],
            )
        for d in decisions:
            if d.desired != d.variant.current:
                _actuate(run, d.variant.name, d.desired, step)
    run.console.print(table)
    body = run.client.get("/autoscaler/decisions").json()
    run.console.print(
        f"GET /autoscaler/decisions: {len(body['decisions'])} variants, cycles={body['cycles']}"
    )
    metrics = run.client.get("/metrics").text
    lines = [
        line
        for line in metrics.splitlines()
        if line.startswith(("wva_desired_replicas{", "wva_current_replicas{"))
    ]
    run.console.print("GET /metrics (wva_*):")
    for line in lines:
        run.console.print(f"  {line}")
    va = run.cluster.get("VariantAutoscaling", "llama-8b-l40s", NS) or {}
    alloc = (va.get("status") or {}).get("desiredOptimizedAlloc")
    run.console.print(f"VariantAutoscaling llama-8b-l40s status.desiredOptimizedAlloc: {alloc}")


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_VARIANTS = ("llama-8b-h100", "llama-8b-l40s")


def _va_table(run: Any, title: str) -> Table:
    """What `kubectl get va -n inference` prints (the CRD's printer columns over the written status)."""
    table = Table(
        "NAME", "MODEL", "ACCELERATOR", "CURRENT", "DESIRED", "REASON", title=title, title_justify="left"
    )
    for va in sorted(run.cluster.list("VariantAutoscaling", NS), key=lambda v: v["metadata"]["name"]):
        st = va.get("status") or {}
        reason = next(
            (c.get("reason") for c in st.get("conditions") or [] if c.get("type") == "OptimizationReady"), ""
        )
        table.add_row(
            va["metadata"]["name"],
            va["spec"]["modelID"],
            va["metadata"].get("labels", {}).get("inference.optimization/acceleratorName", ""),
            str((st.get("currentAlloc") or {}).get("numReplicas", "")),
            str((st.get("desiredOptimizedAlloc") or {}).get("numReplicas", "")),
            str(reason),
        )
    return table


def act_zero(run: Any) -> None:
    """The llama model goes idle: to zero after the retention window; requests queue at the gateway: only
    its cheapest variant wakes, its Deployment scaled 0 -> 1 directly."""
    run.console.rule("[bold]Autoscaler: llama to zero and back")
    comp: AutoscalerComponent = run.app.state.ctx.components["autoscaler"]
    source = comp.source
    assert isinstance(source, StaticSource)
    comp.wake_direct = True
    for name in LLAMA_VARIANTS:  # the VariantAutoscalings must allow zero (the CRD's default is 1)
        va = copy.deepcopy(run.cluster.get("VariantAutoscaling", name, NS))
        va["spec"]["minReplicas"] = 0
        run.cluster.upsert(va)
    run.cluster.upsert(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": comp.settings.scale_to_zero_config_name,
                "namespace": comp.settings.namespace,
            },
            "data": {
                "llama": f"model_id: {LLAMA}\nnamespace: {NS}\n"
                "enable_scale_to_zero: true\nretention_period: 10m"
            },
        }
    )
    run.console.print(
        "wva-model-scale-to-zero-config: llama enable_scale_to_zero, retention_period 10m; "
        "llama VariantAutoscalings: minReplicas 0"
    )
    clock = comp.clock
    now = [clock()]
    comp.clock = lambda: now[0]
    steps: list[tuple[str, float, float]] = [
        ("no request for 10 min", 0.0, 0.0),
        ("KEDA applied it (cooldown)", 0.0, 0.0),
        ("4 requests queue at the gateway", 0.0, 4.0),
    ]
    table = Table("step", "variant", "cost", "current", "desired", "reason", "why")
    for step, (label, requests, queued) in enumerate(steps):
        now[0] += STEP_S
        _finish_starts(run)
        _feed(run, source, 0.6)
        source.requests = {(NS, LLAMA): requests}
        source.queued = {LLAMA: queued}
        _ = comp.wake_cycle_threadsafe() if queued else comp.run_cycle_threadsafe()
        # the background wake poll may have got there first: show the latest decisions, whoever made them
        for d in sorted(comp.last_decisions, key=lambda d: d.variant.name):
            if d.variant.model_id != LLAMA:
                continue
            v = d.variant
            table.add_row(
                label, v.name, f"{v.cost:g}", str(v.current), str(d.desired), d.code.value, d.reasons[0][:60]
            )
        if step == 0:
            for name in LLAMA_VARIANTS:  # play KEDA + the Deployment controller: to zero
                _actuate(run, name, 0, 100 + step)
    run.console.print(table)
    deploys = {
        n: (run.cluster.get("Deployment", n, NS) or {}).get("spec", {}).get("replicas")
        for n in LLAMA_VARIANTS
    }
    run.console.print(
        f"--autoscaler-wake-direct scaled the cheapest variant only: Deployment spec.replicas {deploys}"
    )
    for event in (run.cluster.others.get("Event") or {}).values():
        if event["reason"] == "ScaledFromZero":
            run.console.print(
                f"Event {event['reason']} on Deployment {event['involvedObject']['name']}: "
                f"{event['message'][:90]}"
            )
    run.console.print(_va_table(run, "kubectl get va -n inference"))
    comp.clock = clock
