"""A real Prometheus holding four hours of history, built the way a cluster would have filled it:

1. dcgm-exporter-shaped series for every GPU and MIG slice of the demo cluster (the labels the exporter
   writes: gpu, UUID, device, modelName, Hostname, GPU_I_PROFILE/GPU_I_ID on MIG, namespace/pod/container
   on held GPUs), backfilled with `promtool tsdb create-blocks-from openmetrics`;
2. the service's own series: the real waste and cost components run against that Prometheus (the waste
   collector's PromQL over DCGM, waste flags and Events, the cost attribution of the demo cluster plus a
   `batch` pod holding 2 A100s for the first three hours), the real app answers extender, webhook and budget
   calls; what `/metrics` renders is backfilled over the four hours (gauges as rendered, counters growing
   up to their rendered value);
3. the recording rules of manifests/monitoring/, backfilled with `promtool tsdb create-blocks-from rules`,
   one pass per dependency level (the backfiller only sees records already in the store);
4. the budget spend the cost component then reads back (month to date), and the records built on it.

The backfiller evaluates a rule group at the phase within the minute that the hash of its (file, name)
gives, as Prometheus does. OpenMetrics has no staleness markers, so the raw samples come every minute,
15 s before each evaluation of the 1 m group (as a scrape would), and the server looks back 59 s: each
evaluation sees exactly one raw sample (and not the record of its own group a minute before), and a
series that ends stops counting at the next step, as a stale marker would make it live.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.cost.component import CostComponent
from app.cost.prices import load_prices
from app.main import create_app
from app.metrics import render
from app.ops.inventory import cluster_facts
from app.settings import Settings
from app.waste.collector import WasteCollector
from app.waste.component import WasteComponent
from tests.monitoring.rules import prometheus_rules, records
from tests.prom_server import PROMTOOL, PrometheusServer

STEP = 60  # seconds between raw samples
PRE_ROLL = 300  # history starts this long before the window the tests read
HOURS = 4
BATCH_HOURS = 3
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: compute use of the held GPUs that are not busy (the rest run at ~70 %)
USE = {
    "llama-8b-h100-6c9d7f5b8d-9k2bh": 0.12,  # a whole H100 a 1g.20gb slice would do
    "nb-alice-0": 0.01,  # an idle notebook: GPUIdleOverAnHour
    "nb-bob-0": 0.15,
    "nb-carol-0": 0.04,  # its MIG slice, mostly unused
    "train-yesterday-0": 0.95,
}
BATCH_POD = "train-yesterday-0"
MIB = {"NVIDIA H100 80GB HBM3": 81559, "NVIDIA A100-SXM4-80GB": 81920, "NVIDIA L40S": 46068}


Series = tuple[str, dict[str, str], list[tuple[float, float]]]


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(series: Iterable[Series]) -> str:
    """OpenMetrics text of the series (one `unknown` family per metric name), samples in time order."""
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s[0], []).append(s)
    lines: list[str] = []
    for name, group in by_name.items():
        lines.append(f"# TYPE {name} unknown")
        for _, labels, samples in group:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if v != "")
            head = f"{name}{{{lab}}}" if lab else name
            lines.extend(f"{head} {v!r} {t:.3f}" for t, v in samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


#: seconds after each minute mark the raw samples are written at (set by Builder from the rule phase)
OFFSET = [0.0]


def _times(start: float, end: float) -> list[float]:
    """Sample times in [start, end): every STEP, OFFSET after the minute marks."""
    first = math.floor(start / STEP) * STEP + OFFSET[0]
    first += STEP if first < start else 0
    return [first + i * STEP for i in range(int((end - first) // STEP) + 1) if first + i * STEP < end]


def dcgm(cluster: SnapshotCluster, t0: float, t_end: float, batch_end: float) -> list[Series]:
    """DCGM series for every GPU (whole) and two MIG instances of the demo cluster; held GPUs carry their
    pod. The batch pod's GPUs lose their pod labels when it ends."""
    facts = cluster_facts(cluster.list("Node"), cluster.list("Pod"))
    out: list[Series] = []
    times = _times(t0, t_end)
    for n in facts.nodes:
        base = {"modelName": n.product, "Hostname": n.name, "DCGM_FI_DRIVER_VERSION": "550.54.15"}
        held: list[tuple[str, str, str]] = []  # (namespace, pod, container) per GPU index
        for p in facts.holding(n.name):
            held += [(p.namespace, p.name, "main")] * p.gpus
        devices: list[tuple[dict[str, str], tuple[str, str, str] | None, float]] = []
        for i in range(n.gpus):
            labels = {**base, "gpu": str(i), "UUID": f"GPU-{n.name}-{i:02d}", "device": f"nvidia{i}"}
            labels["pci_bus_id"] = f"00000000:{0x18 + i * 16:02X}:00.0"
            devices.append((labels, held[i] if i < len(held) else None, MIB.get(n.product, 81920)))
        if n.mig:  # MIG node: nb-carol's 1g.10gb and a free 3g.40gb
            carol = next((p for p in facts.holding(n.name) if p.mig), None)
            for gi, profile, mib, who in (
                ("7", "1g.10gb", 9856, (carol.namespace, carol.name, "nb") if carol else None),
                ("1", "3g.40gb", 40192, None),
            ):
                labels = {**base, "gpu": "0", "UUID": f"GPU-{n.name}-00", "device": "nvidia0"}
                labels |= {"GPU_I_ID": gi, "GPU_I_PROFILE": profile, "pci_bus_id": "00000000:18:00.0"}
                devices.append((labels, who, mib))
        for labels, who, mib in devices:
            if n.name == "hgx-a100-1" and labels["gpu"] in ("2", "3"):
                who = ("batch", BATCH_POD, "trainer")
            use0 = USE.get(who[1], 0.7) if who else 0.0
            mem0 = (0.15 if use0 < 0.3 else 0.85) if who else 0.0
            pod = dict(zip(("namespace", "pod", "container"), who, strict=True)) if who else {}
            ended = who is not None and who[1] == BATCH_POD
            spans = [(pod, [t for t in times if t < batch_end]), ({}, [t for t in times if t >= batch_end])]
            for extra, ts in spans if ended else [(pod, times)]:
                held = bool(extra)
                use = [
                    (t, (use0 if held else 0.0) * (1 + 0.1 * math.sin(t / 600 + len(labels["UUID"]))))
                    for t in ts
                ]
                mem = mem0 if held else 0.0
                full = {**labels, **extra}
                out.append(("DCGM_FI_PROF_GR_ENGINE_ACTIVE", full, [(t, round(u, 4)) for t, u in use]))
                if "GPU_I_ID" not in labels:  # GPU_UTIL is absent on MIG instances
                    out.append(("DCGM_FI_DEV_GPU_UTIL", full, [(t, round(100 * u, 2)) for t, u in use]))
                out.append(("DCGM_FI_DEV_FB_USED", full, [(t, float(round(mib * mem))) for t in ts]))
                out.append(("DCGM_FI_DEV_FB_FREE", full, [(t, float(round(mib * (1 - mem)))) for t in ts]))
    return out


def replay(text: str, start: float, end: float, t0: float, t_end: float, only: str = "") -> list[Series]:
    """The series of one `/metrics` rendering over [start, end]: gauges as rendered, counters and histograms
    growing linearly from 0 at t0 to the rendered value at t_end."""
    out: list[Series] = []
    for family in text_string_to_metric_families(text):
        growing = family.type in ("counter", "histogram", "summary")
        for s in family.samples:
            if s.name.endswith("_created") or (only and s.name != only):
                continue
            value = float(s.value)
            grown = [(t, value * max(0.0, t - t0) / (t_end - t0)) for t in _times(start, end)]
            samples = grown if growing else [(t, value) for t in _times(start, end)]
            out.append((s.name, dict(s.labels), samples))
    return out


def batch_pod(t0: float) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": BATCH_POD,
            "namespace": "batch",
            "uid": "b1a7c4e0-0000-4000-8000-000000000001",
            "labels": {"gpu-cost-center": "research", "gpu-project": "yesterday"},
            "creationTimestamp": started,
        },
        "spec": {
            "nodeName": "hgx-a100-1",
            "containers": [
                {"name": "trainer", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
            ],
        },
        "status": {"phase": "Running", "startTime": started},
    }


def _traffic(settings: Settings) -> None:
    """Real calls to the real app: extender filter/prioritize, MIG webhook, budget admission; a scale-up
    and a model view as the autoscaler's exporter records them (no vLLM load here to cause one)."""
    from app.autoscaler.exporter import SCALING, Exporter

    with TestClient(create_app(settings, cluster=SnapshotCluster())) as client:
        for name in ("extender-filter-nodes", "extender-filter-nodenames"):
            body = json.loads((FIXTURES / "extender" / f"{name}.json").read_text())
            assert client.post("/filter", json=body).status_code == 200
        for name in ("extender-prioritize-nodes", "extender-prioritize-nodenames"):
            body = json.loads((FIXTURES / "extender" / f"{name}.json").read_text())
            assert client.post("/prioritize", json=body).status_code == 200
        review = json.loads((FIXTURES / "webhook" / "pod_create_deployment.json").read_text())
        assert client.post("/mutate", json=review).status_code == 200
        for _ in range(2):  # the first cost cycle may not have run yet
            assert client.post("/validate-budget", json=review).status_code == 200
        assert client.post("/filter", content=b"{not json").status_code == 400
    SCALING.labels("llama-8b-l40s", "inference", "up", "saturation").inc()
    Exporter().publish_view(
        [("llama-8b-l40s", "inference", "meta-llama/Llama-3.1-8B-Instruct", 180.0, 22.0, 0.7)]
    )


def _levels(rules: dict[str, str], among: set[str]) -> list[set[str]]:
    """Record names in dependency order: level k reads only raw series and records of levels < k."""
    deps = {
        r: {o for o in rules if o != r and re.search(rf"(?<![\w:]){re.escape(o)}(?![\w:])", rules[r])}
        for r in among
    }
    levels: list[set[str]] = []
    done: set[str] = set(rules) - among
    while len(done) < len(rules):
        ready = {r for r in among - done if deps[r] <= done}
        assert ready, f"cyclic records: {among - done}"
        levels.append(ready)
        done |= ready
    return levels


@dataclass
class Stack:
    url: str
    t0: float
    t_end: float
    batch_end: float
    server: PrometheusServer
    cost: dict[str, Any]
    waste: dict[str, Any]
    tmp: Path

    def lookback(self, delta: str) -> None:
        """Restart the server with another lookback: 59 s reads the backfilled history exactly (no stale
        markers there); Grafana panels over 5 m records want Prometheus' default, 5 m."""
        if self.server.args != (f"--query.lookback-delta={delta}",):
            self.server.stop()
            self.server.args = (f"--query.lookback-delta={delta}",)
            self.server.start()

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        r = httpx.post(
            f"{self.url}/api/v1/query", data={"query": promql, "time": at or self.t_end}, timeout=30
        )
        body = r.json()
        assert body.get("status") == "success", (promql, body)
        return list(body["data"]["result"])

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        r = httpx.post(
            f"{self.url}/api/v1/query_range",
            data={"query": promql, "start": start, "end": end, "step": step},
            timeout=30,
        )
        body = r.json()
        assert body.get("status") == "success", (promql, body)
        return list(body["data"]["result"])


class Builder:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.data.mkdir()
        cfg = tmp / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.server = PrometheusServer(cfg, self.data, "--query.lookback-delta=59s")
        self.passes = 0

    def _promtool(self, *args: str) -> str:
        out = subprocess.run(
            [PROMTOOL, "tsdb", *args], capture_output=True, text=True, timeout=300, cwd=self.tmp
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        return out.stdout

    def _rules(self, spec: dict[str, Any], start: float, end: float, out: Path) -> None:
        """`create-blocks-from rules` over [start, end] from `rules.yml` (always that name: the group
        phases depend on it)."""
        (self.tmp / "rules.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
        self._promtool(
            "create-blocks-from",
            "rules",
            f"--start={int(start) - 60}",
            f"--end={int(end)}",
            f"--url={self.server.url}",
            f"--output-dir={out}",
            "--quiet",
            "rules.yml",
        )

    def phase(self, group: str = "gpu-autoscaler-cost") -> float:
        """Seconds after the minute mark at which the backfiller evaluates `group` (interval 1m)."""
        probe = {
            "groups": [
                {"name": group, "interval": "1m", "rules": [{"record": "phase_probe", "expr": "vector(1)"}]}
            ]
        }
        t = math.floor(time.time() / 60) * 60 - 600
        self._rules(probe, t, t + 180, self.tmp / "probe")
        (self.tmp / "probe" / "wal").mkdir()  # `tsdb dump` opens a whole TSDB folder
        stamps = [
            int(line.rsplit(" ", 1)[1])
            for line in self._promtool("dump", "probe").splitlines()
            if "phase_probe" in line
        ]
        assert stamps, "the phase probe wrote nothing"
        return (stamps[0] % 60000) / 1000

    def backfill(self, series: list[Series]) -> None:
        self.passes += 1
        path = self.tmp / f"raw{self.passes}.om"
        path.write_text(openmetrics(series))
        out = self.tmp / f"raw{self.passes}"
        self._promtool("create-blocks-from", "openmetrics", str(path), str(out))
        self._move(out)

    def backfill_rules(self, names: set[str], start: float, end: float) -> None:
        """One pass per dependency level of `names`, each rule in a group of its manifest's name and
        interval: a record sees the records its group computed at the same instant, as live."""
        group_of = {
            r["record"]: (g["name"], g.get("interval", "1m"))
            for doc in prometheus_rules().values()
            for g in doc["spec"]["groups"]
            for r in g["rules"]
            if "record" in r
        }
        rules = records()
        for level in _levels(rules, names):
            self.passes += 1
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for name in sorted(level):
                groups.setdefault(group_of[name], []).append({"record": name, "expr": rules[name]})
            spec = {"groups": [{"name": n, "interval": iv, "rules": rs} for (n, iv), rs in groups.items()]}
            out = self.tmp / f"rules{self.passes}"
            self._rules(spec, start, end, out)
            self._move(out)

    def _move(self, out: Path) -> None:
        """New blocks into the data folder; Prometheus reads them on start."""
        self.server.stop()
        for block in out.iterdir():
            if block.is_dir():
                shutil.move(str(block), self.data / block.name)
        self.server.start()


def _forget_other_tests_series() -> None:
    """The metrics registry is the process's: series earlier tests' components left behind (a component
    never stopped) would be rendered and backfilled as this cluster's."""
    from app.cost import component as cost_metrics
    from app.waste import component as waste_metrics

    for module in (cost_metrics, waste_metrics):
        for value in vars(module).values():
            if isinstance(value, Gauge):
                value.clear()


async def _fill(b: Builder, cluster: SnapshotCluster, t0: float, t_end: float, batch_end: float) -> Stack:
    _forget_other_tests_series()
    b.backfill(dcgm(cluster, t0 - PRE_ROLL, t_end + STEP, batch_end))
    _traffic(Settings(cluster="demo"))
    settings = Settings(cluster="demo", prometheus_url=b.server.url)
    ctx = AppContext(settings=settings, cluster=cluster)
    waste = WasteComponent(settings, source=WasteCollector(b.server.url, "10m", flag_for="5m"))
    waste.prices = load_prices()
    cost = CostComponent(settings, prices=load_prices(), client=httpx.AsyncClient(timeout=30))
    ctx.components = {"waste": waste, "cost": cost}
    waste._ctx = cost._ctx = ctx
    try:
        await waste.cycle()
        await cost.cycle()
        with_batch = render().decode()
        cluster.delete("Pod", BATCH_POD, "batch")
        await cost.cycle()
        without = render().decode()
        b.backfill(  # the batch pod holds its GPUs over [t0, batch_end)
            replay(without, t0 - PRE_ROLL, t0, t0, t_end)
            + replay(with_batch, t0, batch_end, t0, t_end)
            + replay(without, batch_end, t_end + STEP, t0, t_end)
        )
        b.backfill_rules(set(records()), t0 - PRE_ROLL, t_end)
        cost._month_at = 0.0  # read the month to date now that the records exist
        await cost.cycle()
        spent = replay(
            render().decode(), t_end - 600, t_end, t0, t_end, only="gpu_autoscaler_budget_spent_usd"
        )
        b.backfill(spent)
        b.backfill_rules(
            {
                "budget:gpu_autoscaler_budget_spent_usd:max",
                "budget:gpu_autoscaler_budget_used:ratio",
                "budget:gpu_autoscaler_cost_usd:projected_month_end",
            },
            t_end - 600,
            t_end,
        )
        return Stack(b.server.url, t0, t_end, batch_end, b.server, cost.describe(), waste.describe(), b.tmp)
    finally:
        await cost.stop()
        await waste.stop()


def build(tmp: Path) -> Iterator[Stack]:
    now = time.time()
    t_end = math.floor(now / 60) * 60 - 60
    t0 = t_end - HOURS * 3600
    b = Builder(tmp)
    cluster = SnapshotCluster()
    asyncio.run(cluster.start())
    cluster.upsert(batch_pod(t0))
    b.server.start()
    try:
        OFFSET[0] = (b.phase() - 15) % STEP
        yield asyncio.run(_fill(b, cluster, t0, t_end, t0 + BATCH_HOURS * 3600))
    finally:
        b.server.stop()
