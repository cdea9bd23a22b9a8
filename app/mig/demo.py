"""Demo act: the MIG layout and GPU-sharing controllers re-plan as demand changes, and drive NVIDIA's own
operators through their node labels. The demo has no GPU Operator, so this act plays mig-manager, the device
plugin and GPU Feature Discovery on the snapshot cluster (the labels and allocatable they would write)."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from app.demo import DemoRun
from app.gpu.mig import geometry_for
from app.mig.plan import layout_capacity

NODE = "a100-mig-0"
NEW_NODE = "l40s-2"
COUNTERS = ("gpu_autoscaler_mig_reconfigurations_total{", "gpu_autoscaler_sharing_reconfigurations_total{")


def _pending_pod(name: str, namespace: str, resources: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "spec": {
            "containers": [
                {"name": "main", "image": "vllm", "resources": {"limits": resources, "requests": resources}}
            ]
        },
        "status": {"phase": "Pending"},
    }


def _plan_table(run: DemoRun, body: dict[str, Any], only: set[str] | None = None) -> None:
    from rich.table import Table

    table = Table("node", "current", "target", "action", "reason", "blocked by")
    colour = {"keep": "white", "reconfigure": "bold green", "blocked": "yellow"}
    for n in body["nodes"]:
        if only is not None and n["node"] not in only:
            continue
        table.add_row(
            n["node"],
            n["current"] or "-",
            n["target"] or "-",
            f"[{colour[n['action']]}]{n['action']}[/]",
            n["reason"],
            ", ".join(n["blocked_by"]) or "-",
        )
    run.console.print(table)


def _labels(run: DemoRun, name: str, *prefixes: str) -> str:
    node = run.cluster.get("Node", name) or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k.startswith(prefixes))


def _mig_manager(run: DemoRun, state: str, layout: str | None = None) -> None:
    """What mig-manager writes (state), then the device plugin and GFD (slices) once it succeeded."""
    node = copy.deepcopy(run.cluster.get("Node", NODE))
    assert node is not None
    node["metadata"]["labels"]["nvidia.com/mig.config.state"] = state
    if layout is not None:
        mig = run.app.state.ctx.components["mig"]
        geo = geometry_for(node["metadata"]["labels"]["nvidia.com/gpu.product"])
        assert geo is not None
        per_gpu = mig.configs().layouts[layout].per_gpu(geo, 4)
        slices = layout_capacity([g for g in per_gpu if g is not None])
        labels = node["metadata"]["labels"]
        for section in ("allocatable", "capacity"):
            res = node["status"][section]
            for key in [k for k in res if k.startswith("nvidia.com/mig-")]:
                del res[key]
            res.update({f"nvidia.com/mig-{p}": str(n) for p, n in slices.items()})
        for key in [k for k in labels if k.startswith("nvidia.com/mig-") and k.endswith(".count")]:
            labels[key] = "0"
        labels.update({f"nvidia.com/mig-{p}.count": str(n) for p, n in slices.items()})
    run.cluster.upsert(node)


def _mig_part(run: DemoRun) -> None:
    mig = run.app.state.ctx.components["mig"]
    run.console.print(
        f"[bold]MIG[/bold]: {NODE} runs nvidia.com/mig.config=demo-mixed (GPU 0, 1: 7x 1g.10gb; "
        "GPU 2: 3x 2g.20gb; GPU 3: 2x 3g.40gb); nb-carol holds a 1g.10gb slice on GPU 0. "
        "Layouts: ConfigMap gpu-operator/default-mig-parted-config."
    )
    mig.cycle_threadsafe()
    body = run.client.get("/mig/plan").json()
    _plan_table(run, body, {NODE})
    free = next(n["free"] for n in body["nodes"] if n["node"] == NODE).get("3g.40gb", 0)
    for i in range(4):
        run.cluster.upsert(_pending_pod(f"llm-batch-{i}", "inference", {"nvidia.com/mig-3g.40gb": "1"}))
    run.console.print(
        f"4 pods of a batch job arrive asking nvidia.com/mig-3g.40gb; {free} such slice(s) free."
    )
    mig.cycle_threadsafe()
    body = run.client.get("/mig/plan").json()
    _plan_table(run, body, {NODE})
    unmet = body["unmet"] or "none"
    run.console.print(f"dry-run (the default): nothing written. Still unmet with this plan: {unmet}")

    mig.apply = True
    run.console.print("[bold]--mig-apply[/bold]: the controller sets the label, mig-manager does the rest")
    mig.cycle_threadsafe()
    shown = _labels(run, NODE, "nvidia.com/mig.config")
    run.console.print(f"  {NODE}: {shown} (mig-manager has not picked it up yet)")
    for state in ("pending", "rebooting"):
        _mig_manager(run, state)
        plan = mig.cycle_threadsafe()
        np = plan.node(NODE)
        run.console.print(
            f"  mig-manager: state={state} -> {np.action if np else '?'}: {np.reason if np else ''}"
        )
    _mig_manager(run, "success", "demo-inference")
    plan = mig.cycle_threadsafe()
    np = plan.node(NODE)
    status = np.request if np else "?"
    run.console.print(f"  mig-manager: state=success, the device plugin advertises the slices -> {status}")
    alloc = (run.cluster.get("Node", NODE) or {})["status"]["allocatable"]
    free = {k.removeprefix("nvidia.com/mig-"): v for k, v in alloc.items() if k.startswith("nvidia.com/mig-")}
    run.console.print(f"  {NODE} allocatable now: {free}; unmet: {plan.unmet or 'none'}")
    events = [
        f"{e['reason']} ({e['type']}): {e['message']}"
        for e in run.cluster.others.get("Event", {}).values()
        if e["involvedObject"]["name"] == NODE
    ]
    for line in events:
        run.console.print(f"  Event on Node/{NODE}: {line}")


def _sharing_part(run: DemoRun) -> None:
    from webhook.demo import L40S, _review, _u, demo_history
    from webhook.history import RecordedHistory, WorkloadKey

    ctx = run.app.state.ctx
    sharing, webhook = ctx.components["sharing"], ctx.components["webhook"]
    run.console.print(
        "\n[bold]GPU sharing[/bold]: namespace research is labelled gpu-autoscaler.io/sharing=enabled; "
        "its lab notebook used 5 GiB and 7 % of an L40S last week."
    )
    run.cluster.upsert(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "research", "labels": {"gpu-autoscaler.io/sharing": "enabled"}},
        }
    )
    table = dict(demo_history().table)
    table[WorkloadKey("research", "StatefulSet", "lab")] = {"notebook": _u(5.0, 0.07, L40S, 46068)}
    webhook.set_history_source(RecordedHistory(table, label="recorded demo history (simulated DCGM)"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "lab-0",
            "namespace": "research",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "lab", "controller": True}
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "jupyter",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
                }
            ]
        },
    }

    def admit() -> None:
        body = run.client.post("/mutate", json=_review(copy.deepcopy(pod))).json()["response"]
        warning = (body.get("warnings") or ["(silent)"])[-1].removeprefix("gpu-autoscaler: ")
        patch = "patch" in body
        run.console.print(f"  POST /mutate lab-0: {'rewritten' if patch else 'unchanged'}: {warning}")

    admit()
    l40s = copy.deepcopy(run.cluster.get("Node", "l40s-0"))
    assert l40s is not None
    l40s["metadata"]["name"] = NEW_NODE
    l40s["metadata"]["labels"].update(
        {"kubernetes.io/hostname": NEW_NODE, "nvidia.com/device-plugin.config": "default"}
    )
    l40s["metadata"]["annotations"].pop("gpu-autoscaler.io/topology", None)
    run.cluster.upsert(l40s)
    run.console.print(
        f"A new node {NEW_NODE} (4x L40S) joins, labelled nvidia.com/device-plugin.config=default: "
        "the sharing controller may use it. The webhook's wanted share is the pool's demand:"
    )
    sharing.apply = True
    sharing.cycle_threadsafe()
    body = run.client.get("/sharing/plan").json()
    _plan_table(run, body, {NEW_NODE, "l40s-0", "l40s-1"})
    run.console.print(f"  pool: {body['pool']}")
    node = copy.deepcopy(run.cluster.get("Node", NEW_NODE))
    assert node is not None
    config = node["metadata"]["labels"]["nvidia.com/device-plugin.config"]
    replicas = int(config.rsplit("-", 1)[-1]) if config.startswith("time-sliced-") else 1
    node["metadata"]["labels"].update(
        {
            "nvidia.com/gpu.sharing-strategy": "time-slicing",
            "nvidia.com/gpu.replicas": str(replicas),
            "nvidia.com/gpu.product": "NVIDIA-L40S-SHARED",
        }
    )
    node["status"]["allocatable"]["nvidia.com/gpu"] = str(4 * replicas)
    run.cluster.upsert(node)  # the device plugin re-advertises, GFD relabels
    plan = sharing.cycle_threadsafe()
    np = plan.node(NEW_NODE)
    shown = _labels(
        run, NEW_NODE, "nvidia.com/gpu.sharing", "nvidia.com/gpu.replicas", "nvidia.com/gpu.product"
    )
    run.console.print(f"  device plugin + GFD: {shown} -> request {np.request if np else '?'}")
    admit()
    metrics = run.client.get("/metrics").text
    lines = [
        line
        for line in metrics.splitlines()
        if line.startswith(COUNTERS) or (line.startswith("gpu_autoscaler_mig_slices{") and "3g.40gb" in line)
    ]
    run.console.print("GET /metrics:")
    for line in lines:
        run.console.print(f"  {line}")


def act(run: DemoRun) -> None:
    """Re-plan MIG slices for a queue of 3g pods, then build a sharing pool for a light notebook."""
    run.console.rule("[bold]MIG layout and GPU-sharing controllers (driving the GPU Operator's labels)")
    if "mig" not in run.app.state.ctx.components or "sharing" not in run.app.state.ctx.components:
        run.console.print("mig / sharing components not running; skipped")
        return
    _mig_part(run)
    _sharing_part(run)
