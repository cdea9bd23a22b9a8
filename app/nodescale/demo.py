"""Demo act: a Pending 8x H100 job scales a Cluster API node group up, the new node takes it (placed by the
extender over HTTP), the job ends, the idle node goes again.

The act plays the other controllers: kube-scheduler (through the extender's /filter and /prioritize), the
MachineSet controller (a scale-up creates a Machine, a Machine marked `cluster.x-k8s.io/delete-machine` goes
when replicas drop), the infrastructure provider and kubelet (the Machine's Node joins), the Job controller
(the pod completes). Time is simulated; the node autoscaler runs in apply mode for the act.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from app.demo import DemoRun
from app.nodescale.component import NodeScaleComponent
from app.nodescale.groups import ANN_DELETE_MACHINE, LABEL_DEPLOYMENT
from app.nodescale.planner import Plan
from extender.demo import schedule

NS = "gpu-cluster"
GROUP = "dgx-h100"
JOB = "llama-70b-finetune"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.nodescale.gpu-autoscaler.demo"))


def job_pod(created: float) -> dict[str, Any]:
    """The training job's pod as the API returns it while kube-scheduler cannot place it."""
    res = {"cpu": "96", "memory": "1000Gi", "nvidia.com/gpu": "8"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{JOB}-0-x7k2p",
            "namespace": "ml-training",
            "uid": _uid(JOB),
            "creationTimestamp": _iso(created),
            "labels": {"batch.kubernetes.io/job-name": JOB, "job-name": JOB},
            "annotations": {
                "gpu-autoscaler.io/topology": "required",
                "gpu-autoscaler.io/gpu-product": "H100",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": JOB,
                    "uid": _uid(f"job-{JOB}"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "train",
                    "image": "nvcr.io/nvidia/pytorch:24.10-py3",
                    "resources": {"limits": dict(res), "requests": dict(res)},
                }
            ],
            "restartPolicy": "Never",
            "priority": 0,
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "lastTransitionTime": _iso(created),
                    "message": "0/7 nodes are available: 7 node(s) didn't pass the extender's filter.",
                }
            ],
        },
    }


def _new_machine(run: DemoRun, now: float) -> dict[str, Any]:
    """The MachineSet controller's answer to replicas 2->3: one more Machine, not yet a node."""
    model = next(
        m for m in run.cluster.list("Machine", NS) if m["metadata"]["labels"][LABEL_DEPLOYMENT] == GROUP
    )
    m = copy.deepcopy(model)
    name = f"{model['metadata']['labels']['cluster.x-k8s.io/set-name']}-q4m8z"
    m["metadata"].update(name=name, uid=_uid(name), creationTimestamp=_iso(now), resourceVersion="1")
    m["spec"]["providerID"] = "aws:///us-east-1a/i-0d3e6c1b9a7f52e48"
    m["status"] = {"phase": "Provisioning", "bootstrapReady": True, "infrastructureReady": False}
    run.cluster.upsert(m)
    return m


def _join(run: DemoRun, machine: dict[str, Any], now: float) -> str:
    """The instance boots and its kubelet registers: a fresh copy of a DGX H100 node; Machine gets nodeRef."""
    node = copy.deepcopy(run.cluster.get("Node", "dgx-h100-1"))
    assert node is not None
    name = "dgx-h100-2"
    meta = node["metadata"]
    meta.update(name=name, uid=_uid(name), creationTimestamp=_iso(now), resourceVersion="1")
    meta["labels"]["kubernetes.io/hostname"] = name
    topo = json.loads(meta["annotations"]["gpu-autoscaler.io/topology"])
    for gpu in topo["gpus"]:
        gpu["allocated"] = False
        gpu["uuid"] = "GPU-" + _uid(f"{name}-{gpu['index']}")
    meta["annotations"]["gpu-autoscaler.io/topology"] = json.dumps(topo, separators=(",", ":"))
    node["spec"].pop("unschedulable", None)
    run.cluster.upsert(node)
    m = copy.deepcopy(machine)
    m["status"] = {
        "phase": "Running",
        "bootstrapReady": True,
        "infrastructureReady": True,
        "nodeRef": {"apiVersion": "v1", "kind": "Node", "name": name, "uid": meta["uid"]},
    }
    run.cluster.upsert(m)
    return name


def _print_plan(run: DemoRun, title: str, p: Plan) -> None:
    t = Table("kind", "what", "reason", title=title, title_justify="left")
    for s in p.scale:
        t.add_row(
            "[green]scale" if s.direction == "up" else "[yellow]scale",
            f"{s.group} {s.from_}->{s.to}",
            s.reason,
        )
    for d in p.drain:
        t.add_row("[yellow]drain", f"{d.node} (evict {len(d.pods)})", d.reason)
    for b in p.blocked:
        t.add_row("[magenta]blocked", b.node, b.reason)
    if not (p.scale or p.drain or p.blocked):
        t.add_row("-", "nothing to do", "")
    run.console.print(t)


def _replicas(run: DemoRun) -> int:
    md = run.cluster.get("MachineDeployment", GROUP, NS) or {}
    return int((md.get("spec") or {}).get("replicas") or 0)


def act(run: DemoRun) -> None:
    run.console.rule("[bold]Node autoscaling through Cluster API: a Pending 8x H100 job, then an idle node")
    comp: NodeScaleComponent | None = run.app.state.ctx.components.get("nodescale")
    if comp is None:
        run.console.print("nodescale component not running; skipped")
        return
    comp.background = False  # this act drives the cycles
    comp.mode = "apply"
    start = comp.clock()
    now = [start]
    comp.clock = lambda: now[0]

    title = "Node groups (MachineDeployments with the autoscaler annotations)"
    groups = Table(
        "group",
        "replicas",
        "min-max",
        "template",
        "GPUs/node",
        "$/GPU-h",
        "spot",
        title=title,
        title_justify="left",
    )
    for g in comp.run_cycle_threadsafe().groups:
        if "replicas" in g:
            price = "-" if g["usd_per_gpu_hour"] is None else f"{g['usd_per_gpu_hour']:.2f}"
            groups.add_row(
                g["group"],
                str(g["replicas"]),
                f"{g['min']}-{g['max']}",
                g["template"] or "-",
                f"{g['gpus_per_node']}x {g['product']}",
                price,
                "yes" if g["spot"] else "",
            )
    run.console.print(groups)

    # 1. a training job arrives; no node has 8 free NVLinked H100s
    pod = job_pod(now[0] - 180)
    run.cluster.upsert(copy.deepcopy(pod))
    names = [n["metadata"]["name"] for n in run.cluster.list("Node")]
    first = schedule(run.client, pod, names)
    reasons = {**first.filter.get("FailedNodes", {}), **first.filter.get("FailedAndUnresolvableNodes", {})}
    run.console.print(
        f"t+0: pod ml-training/{pod['metadata']['name']} (8x H100, topology required) Pending 3m; "
        f"extender /filter: {len(first.passed)} of {len(names)} nodes pass "
        f"(e.g. {reasons.get('dgx-h100-1', '?')})"
    )
    p = comp.run_cycle_threadsafe()
    _print_plan(run, "t+0: plan (apply mode)", p)
    run.console.print(f"MachineDeployment {NS}/{GROUP} spec.replicas = {_replicas(run)} (scale subresource)")

    # 2. Cluster API brings the machine up; the node joins; the extender places the pod there
    machine = _new_machine(run, now[0])
    now[0] += 240
    node = _join(run, machine, now[0])
    again = schedule(run.client, pod, [n["metadata"]["name"] for n in run.cluster.list("Node")])
    placed = run.client.get("/extender/placements", params={"pod": pod["metadata"]["uid"]}).json()
    gpus = (placed.get(pod["metadata"]["uid"]) or {}).get("gpus", [])
    run.console.print(
        f"t+4m: Machine {machine['metadata']['name']} -> Node {node}; extender /filter passes "
        f"{', '.join(again.passed) or 'none'}; pod bound to [green]{again.chosen}[/] GPUs {gpus}"
    )
    if again.chosen:
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = again.chosen
        bound["status"] = {"phase": "Running", "startTime": _iso(now[0])}
        run.cluster.upsert(bound)
    now[0] += 60
    _print_plan(run, "t+5m: plan", comp.run_cycle_threadsafe())

    # 3. the job ends; eleven minutes later its node is idle past the threshold
    now[0] += 40 * 60
    done = copy.deepcopy(run.cluster.get("Pod", pod["metadata"]["name"], "ml-training"))
    assert done is not None
    finished = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": _iso(now[0])}}
    done["status"] = {"phase": "Succeeded", "containerStatuses": [{"name": "train", "state": finished}]}
    run.cluster.upsert(done)
    now[0] += 11 * 60
    p = comp.run_cycle_threadsafe()
    _print_plan(run, "t+56m: plan (job done at t+45m)", p)
    marked = [
        m["metadata"]["name"]
        for m in run.cluster.list("Machine", NS)
        if ANN_DELETE_MACHINE in (m["metadata"].get("annotations") or {})
    ]
    cordoned = (run.cluster.get("Node", node) or {}).get("spec", {}).get("unschedulable")
    run.console.print(
        f"Node {node} cordoned: {bool(cordoned)}; Machines marked {ANN_DELETE_MACHINE}: {marked or 'none'}; "
        f"MachineDeployment {NS}/{GROUP} spec.replicas = {_replicas(run)}"
    )
    for name in marked:  # the MachineSet controller deletes the marked Machine first; its Node goes with it
        m = run.cluster.get("Machine", name, NS) or {}
        run.cluster.delete("Machine", name, NS)
        ref = ((m.get("status") or {}).get("nodeRef") or {}).get("name")
        if ref:
            run.cluster.delete("Node", ref)
    run.console.print(
        f"Cluster API removed {', '.join(marked) or 'nothing'}; nodes now: {len(run.cluster.list('Node'))}"
    )

    actions = run.client.get("/nodes/plan").json()["actions"]
    run.console.print(
        "GET /nodes/plan actions: "
        + "; ".join(f"{a['action']} {a.get('group') or a.get('node')}" for a in actions)
    )
    metrics = [
        line
        for line in run.client.get("/metrics").text.splitlines()
        if line.startswith("gpu_autoscaler_node_scale_decisions_total{")
    ]
    run.console.print("GET /metrics:")
    for line in metrics:
        run.console.print(f"  {line}")
    events = sorted(
        {
            e["reason"]
            for e in run.cluster.others.get("Event", {}).values()
            if e.get("source", {}).get("component") == "gpu-autoscaler"
            and e["involvedObject"]["kind"] in ("MachineDeployment", "Node", "Pod")
        }
    )
    run.console.print(f"Events recorded: {', '.join(events)}")
