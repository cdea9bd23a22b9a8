"""Soak: the real `serve` process under a bounded open-loop load over HTTPS, and the memory of a big view.

    python -m bench.soak load [--seconds 600] [--webhook-rps 200] [--extender-cps 100] [--nodes 1000]
    python -m bench.soak memory [--nodes 5000] [--pods 50000]   (both: [--json FILE])

`load` starts `gpu-autoscaler serve` on a synthetic snapshot (DGX-like nodes, 4 running pods each, 20 A100
nodes in MIG mixed mode) with a generated TLS pair and a stand-in Prometheus that answers the webhook's
history queries at once; then, together, it sends `/mutate` reviews at `--webhook-rps` (500 workloads, a new
pod each time) and extender cycles at `--extender-cps` (a `/filter` of every node by name, then a
`/prioritize` of the nodes it passed, as kube-scheduler does in nodeCacheCapable mode). Requests are fired
on a fixed schedule whether or not earlier ones finished (open loop), at most `--in-flight` at once: a
request that finds no slot is an error ("overload"), never silently skipped. Latency is timed on the wire
from send to reply; `lag` is how late the generator fired (client saturation, reported apart). The server's
RSS and CPU time are sampled every 5 s.

`memory` runs the whole service in this process against a live-cluster view fed by a paging API stand-in
(the real `ClientKubeApi.list` code path, page by page, objects as the API sends them: managedFields,
last-applied copies, env, probes, container statuses, node image lists), then reports RSS after startup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.inprocess import free_port
from bench.bench_extender import node as dgx_node
from webhook.demo import _review as admission_review

A100_MIG = {"1g.10gb": 14, "2g.20gb": 3, "3g.40gb": 2}
WORKLOADS = 500
KEEP_ALIVE_S = 3.0
ASSUME_TTL_S = 10


# -- the cluster -------------------------------------------------------------------------------------------
def mig_node(name: str) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/gpu.count": "4",
        "nvidia.com/mig.strategy": "mixed",
        **{f"nvidia.com/mig-{p}.count": str(n) for p, n in A100_MIG.items()},
    }
    alloc = {"cpu": "128", "memory": "1007Gi", "nvidia.com/gpu": "0", "pods": "110"}
    alloc |= {f"nvidia.com/mig-{p}": str(n) for p, n in A100_MIG.items()}
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1", "labels": labels},
        "spec": {},
        "status": {
            "allocatable": alloc,
            "capacity": dict(alloc),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def running_pod(i: int, node: str, gpus: int) -> dict[str, Any]:
    res = {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": str(gpus)}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": f"run-{i}",
            "namespace": "batch",
            "uid": f"uid-run-{i}",
            "labels": {"app": "batch"},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "x", "resources": {"limits": res}}],
        },
        "status": {"phase": "Running"},
    }


def snapshot(nodes: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    objs: list[dict[str, Any]] = [dgx_node(f"node-{i:05d}", rng) for i in range(nodes)]
    objs += [mig_node(f"a100-mig-{i:02d}") for i in range(20)]
    objs += [running_pod(i, f"node-{i % nodes:05d}", 1) for i in range(nodes * 4)]
    objs += [
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns, "labels": labels}}
        for ns, labels in (("inference", {"gpu-autoscaler.io/mig-rewrite": "enabled"}), ("batch", {}))
    ]
    return objs


def review(workload: int) -> bytes:
    name = f"embed-{workload:03d}"
    pod = {
        "metadata": {
            "generateName": f"{name}-7d9f8c6b5-",
            "namespace": "inference",
            "labels": {"app.kubernetes.io/name": name, "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{name}-7d9f8c6b5",
                    "uid": "u",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.8.5",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}},
                }
            ]
        },
    }
    return json.dumps(admission_review(pod)).encode()


def pending_pod(i: int, rng: random.Random) -> dict[str, Any]:
    gpus = rng.choice((1, 1, 1, 2, 4))
    res = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": str(gpus)}
    return {
        "metadata": {"name": f"soak-{i}", "namespace": "batch", "uid": f"uid-soak-{i}", "annotations": {}},
        "spec": {
            "containers": [{"name": "main", "image": "x", "resources": {"limits": res, "requests": res}}]
        },
        "status": {"phase": "Pending"},
    }


def history_answer(query: str) -> list[dict[str, Any]]:
    """A stand-in Prometheus for the webhook's four history queries: 6 GiB peak, 9 % compute on an A100."""
    labels = {"container": "vllm", "modelName": "NVIDIA A100-SXM4-80GB"}
    if "count_over_time" in query:
        value = 20160.0
    elif "quantile_over_time" in query:
        value = 0.09
    elif "last_over_time" in query:
        value = 81920.0
    elif "max_over_time" in query:
        value = 6144.0
    else:
        return [{"metric": {}, "value": [time.time(), "1"]}]
    return [{"metric": labels, "value": [time.time(), str(value)]}]


# -- measuring ---------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stream:
    name: str
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, ms)
    errors: dict[str, int] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self, since: float = 0.0, window: float = 60.0) -> dict[str, Any]:
        ms = [v for t, v in self.latencies if t >= since]
        by_window: dict[int, list[float]] = {}
        for t, v in self.latencies:
            by_window.setdefault(int(t // window), []).append(v)
        return {
            "p99_ms_by_window": {
                f"{k * window:g}s": round(pct(v, 0.99), 1) for k, v in sorted(by_window.items())
            },
            "requests": len(ms),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "p50_ms": round(pct(ms, 0.50), 2),
            "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms), 2) if ms else None,
        }


@contextlib.contextmanager
def server(
    nodes: int, workdir: Path, prometheus_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    from certs.generate import write_certs

    snap = workdir / "cluster.json"
    snap.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": snapshot(nodes)}))
    tls = write_certs(workdir / "tls", "gpu-autoscaler", "gpu-autoscaler", ips=["127.0.0.1"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_AUTOSCALER_")}
    log = (workdir / "server.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--cluster",
        str(snap),
        "--port",
        str(port),
        "--tls-cert",
        str(tls.cert),
        "--tls-key",
        str(tls.key),
        "--prometheus-url",
        prometheus_url,
        # the soak's pods are never bound: an assumed placement is released when it expires, as if the pod
        # had run and ended; 10 s (not 30) keeps the 1,000-node cluster from filling up at 100 pods/s
        "--assume-ttl-seconds",
        str(ASSUME_TTL_S),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"https://127.0.0.1:{port}"
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/readyz", verify=ctx, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(workdir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc, base, tls.ca_cert
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


class HttpPool:
    """A lean HTTP/1.1 keep-alive client over TLS (asyncio streams): the generator must cost far less than
    the server it measures, and httpx costs ~10x more per request on this path (its pool scan, anyio)."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.host, self.port, self.ctx = host, port, ctx
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        now = time.monotonic()
        while self._idle and now - self._idle[-1][2] > KEEP_ALIVE_S:
            self._idle.pop()[1].close()  # uvicorn drops connections idle for 5 s: never race it
        if self._idle:
            reader, writer, _ = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ctx)
        try:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            writer.write(head + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            length, keep = 0, True
            for line in raw.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    keep = False
            data = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()
        return status, data

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


async def drive(
    base: str,
    ca: Path,
    pid: int,
    seconds: float,
    webhook_rps: float,
    extender_cps: float,
    nodes: list[str],
    in_flight: int,
    ramp: float = 15.0,
) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(ca))
    host, port = base.removeprefix("https://").rsplit(":", 1)
    pool = HttpPool(host, int(port), ctx)
    streams = {n: Stream(n) for n in ("mutate", "filter", "prioritize")}
    slots = asyncio.Semaphore(in_flight)
    rng = random.Random(11)
    rss: list[tuple[float, float]] = []
    cpu0 = proc_cpu_s(pid)
    t0 = time.perf_counter()
    names_json = json.dumps(nodes).encode()  # the same 1,000 names every cycle: encoded once

    async def timed(client: HttpPool, stream: Stream, path: str, body: bytes) -> Any:
        start = time.perf_counter()
        try:
            status, data = await asyncio.wait_for(client.post(path, body), timeout=10.0)
        except TimeoutError:
            stream.error("timeout")
            return None
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            stream.error(type(exc).__name__)
            return None
        stream.latencies.append((start - t0, (time.perf_counter() - start) * 1000))
        if status != 200:
            stream.error(f"http {status}")
            return None
        return json.loads(data)

    async def one_review(client: HttpPool, i: int) -> None:
        out = await timed(client, streams["mutate"], "/mutate", review(i % WORKLOADS))
        if out is not None and not out["response"].get("allowed"):
            streams["mutate"].error("denied")

    async def one_cycle(client: HttpPool, i: int) -> None:
        pod = pending_pod(i, rng)
        body = b'{"Pod": ' + json.dumps(pod).encode() + b', "NodeNames": ' + names_json + b"}"
        out = await timed(client, streams["filter"], "/filter", body)
        if out is None:
            return
        if out.get("Error"):
            streams["filter"].error("Error field")
            return
        passed = out.get("NodeNames") or []
        if not passed:
            return  # nothing fits: kube-scheduler would not call prioritize
        scores = await timed(
            client,
            streams["prioritize"],
            "/prioritize",
            json.dumps({"Pod": pod, "NodeNames": passed}).encode(),
        )
        if scores is not None and len(scores) != len(passed):
            streams["prioritize"].error("wrong length")

    async def fire(stream: Stream, rate: float, work: Any) -> None:
        if rate <= 0:
            return
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        due = t0
        while True:
            elapsed = due - t0
            if elapsed >= seconds:
                break
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            stream.lag_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
            if slots.locked():
                stream.error("overload")
            else:
                await slots.acquire()
                task = asyncio.create_task(work(pool, i))
                task.add_done_callback(lambda _t: slots.release())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
            # a linear ramp from 10 % to the full rate over the first `ramp` seconds: a cold service (TLS
            # handshakes, an empty history cache) is not hit by the full rate from its first second
            share = min(1.0, 0.1 + 0.9 * elapsed / ramp) if ramp > 0 else 1.0
            due += 1.0 / (rate * share)
        await asyncio.gather(*tasks)

    async def sample() -> None:
        while True:
            rss.append((time.perf_counter() - t0, proc_rss_mib(pid)))
            await asyncio.sleep(5)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(
            fire(streams["mutate"], webhook_rps, one_review),
            fire(streams["filter"], extender_cps, one_cycle),
        )
    finally:
        sampler.cancel()
        pool.close()
    elapsed = time.perf_counter() - t0
    rss.append((elapsed, proc_rss_mib(pid)))
    return {
        "seconds": round(elapsed, 1),
        "server_cpu_s": round(proc_cpu_s(pid) - cpu0, 1),
        "streams": streams,
        "rss": rss,
    }


@contextlib.contextmanager
def prometheus_stub() -> Iterator[str]:
    """The stand-in Prometheus in its own process: in this one it would share the generator's GIL."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.soak", "prometheus-stub", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/api/v1/query?query=vector(1)", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Prometheus stand-in did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_async(coro: Any) -> Any:
    """On uvloop when installed (uvicorn[standard] brings it): its TLS is C, asyncio's is Python."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def rss_at(rss: list[tuple[float, float]], t: float) -> float:
    return min(rss, key=lambda s: abs(s[0] - t))[1]


def run_load(
    seconds: float,
    webhook_rps: float,
    extender_cps: float,
    nodes: int,
    in_flight: int = 256,
    ramp: float = 15.0,
) -> dict[str, Any]:
    load0 = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        prometheus_stub() as prom_url,
        server(nodes, Path(tmp), prom_url) as (proc, base, ca),
    ):
        names = [f"node-{i:05d}" for i in range(nodes)]
        out = run_async(drive(base, ca, proc.pid, seconds, webhook_rps, extender_cps, names, in_flight, ramp))
    streams: dict[str, Stream] = out.pop("streams")
    rss = out["rss"]
    # growth is measured on the steady part: from 20 % of the run (minute 2 of 10) to its end
    start_t = seconds * 0.2
    grow_from, grow_to = rss_at(rss, start_t), rss[-1][1]
    lag = [v for s in streams.values() for v in s.lag_ms]
    return {
        "target": {
            "webhook_rps": webhook_rps,
            "extender_cycles_per_s": extender_cps,
            "nodes": nodes,
            "ramp_s": ramp,
        },
        **out,
        "rss": [(round(t, 1), round(v, 1)) for t, v in rss],
        "rss_mib_from": round(grow_from, 1),
        "rss_mib_to": round(grow_to, 1),
        "rss_growth_pct": round(100 * (grow_to - grow_from) / grow_from, 2),
        "generator_lag_ms_p99": round(pct(lag, 0.99), 1),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load0, "loadavg_after": os.getloadavg()},
        **{name: s.summary(window=max(10.0, seconds / 10)) for name, s in streams.items()},
        "errors": sum(sum(s.errors.values()) for s in streams.values()),
    }


# -- memory ------------------------------------------------------------------------------------------------
def bloated_pod(i: int, node: str, total: int = 0) -> dict[str, Any]:
    """A Pod as the API sends it: managedFields, last-applied copy, env, probes, statuses. Workloads of 4
    replicas; the first 30 % of the pods ask one GPU each (3 a node at 10 pods a node), the rest CPU only."""
    name = f"w{i // 4:05d}-6c9d7f5b8d-{i:05d}"
    gpu = {"nvidia.com/gpu": "1"} if i < total * 0.3 else {}
    container = {
        "name": "main",
        "image": "registry.example.com/team/inference-server:v1.42.0",
        "args": ["--model", "/models/m", "--port", "8000", "--max-model-len", "16384"],
        "env": [{"name": f"VAR_{k}", "value": f"value-{k}-{i}"} for k in range(8)],
        "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10},
        "resources": {"limits": {"memory": "8Gi", **gpu}, "requests": {"cpu": "2", "memory": "8Gi", **gpu}},
        "volumeMounts": [
            {"mountPath": "/models", "name": "models"},
            {"mountPath": "/dev/shm", "name": "shm"},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }
    spec = {
        "nodeName": node,
        "containers": [container],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    return {
        "metadata": {
            "name": name,
            "namespace": f"team-{i % 40:02d}",
            "uid": str(uuid.UUID(int=i)),
            "resourceVersion": str(1000 + i),
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": f"w{i // 4:05d}", "pod-template-hash": "6c9d7f5b8d"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"spec": spec})},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"w{i // 4:05d}-6c9d7f5b8d",
                    "uid": str(uuid.UUID(int=10**9 + i // 4)),
                    "controller": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {}}},
                }
            ],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-01T10:00:05Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "restartCount": 0,
                    "image": container["image"],
                    "imageID": "sha256:" + "0" * 64,
                    "containerID": f"containerd://{i:064d}",
                    "state": {"running": {"startedAt": "2026-11-01T10:00:04Z"}},
                }
            ],
            "hostIP": "10.0.0.1",
            "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "startTime": "2026-11-01T10:00:00Z",
            "qosClass": "Burstable",
        },
    }


def run_memory(nodes: int, pods: int) -> dict[str, Any]:
    import gc

    from app.cluster.compact import compact
    from app.cluster.kinds import WATCHED
    from app.cluster.kube import ClientKubeApi, KubeCluster
    from app.main import create_app
    from app.settings import Settings

    rng = random.Random(3)

    def node_obj(i: int) -> dict[str, Any]:
        n = dgx_node(f"node-{i:05d}", rng)
        n.pop("kind")
        n.pop("apiVersion")
        n["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:images": {}}}}]
        n["status"]["images"] = [
            {"names": [f"registry.example.com/img-{k}:v1"], "sizeBytes": 10**9} for k in range(40)
        ]
        return n

    makers = {
        "Node": (nodes, node_obj),
        "Pod": (pods, lambda i: bloated_pod(i, f"node-{i % nodes:05d}", pods)),
    }

    class PagingApi(ClientKubeApi):
        """The real `list` (pages of 500, compacted as they arrive) over generated API JSON."""

        host = "https://stand-in:6443"

        def __init__(self) -> None:
            self._transform = compact
            self._selectors = {}
            # every kind the view watches (the rest are empty lists), never the real client
            self._list_fns = {kind: self._pages(kind) for kind in WATCHED}

        def _pages(self, kind: str) -> Any:
            total, make = makers.get(kind, (0, None))

            def call(**kw: Any) -> Any:
                start = int(kw.get("_continue") or 0)
                end = min(total, start + self.PAGE)
                items = [make(i) for i in range(start, end)] if make else []
                meta: dict[str, Any] = {"resourceVersion": "1"}
                if end < total:
                    meta["continue"] = str(end)
                return type("Resp", (), {"data": json.dumps({"metadata": meta, "items": items}).encode()})()

            return call

        def watch(self, kind: str, resource_version: str, timeout_seconds: int) -> Any:
            import threading

            class Idle:
                def __init__(self) -> None:
                    self.done = threading.Event()

                def __iter__(self) -> Iterator[Any]:
                    self.done.wait(timeout_seconds)
                    return iter(())

                def close(self) -> None:
                    self.done.set()

            return Idle()

    logging.basicConfig(level=logging.WARNING)
    gc.collect()
    base = proc_rss_mib(os.getpid())
    started = time.perf_counter()
    cluster = KubeCluster(api=PagingApi(), initial_sync_timeout=600)
    settings = Settings(cluster="kube", autoscaler_interval=3600, waste_interval=3600, leader_election=False)
    app = create_app(settings, cluster=cluster)

    async def up() -> dict[str, Any]:
        async with app.router.lifespan_context(app):
            ready_s = time.perf_counter() - started
            gc.collect()
            extender = app.state.ctx.components["extender"]
            return {
                "ready_s": round(ready_s, 1),
                "view_pods": len(cluster.list("Pod")),
                "view_nodes": len(cluster.list("Node")),
                "extender_nodes": extender.adapter.state.n,
                "extender_pods": len(extender.adapter.bound),
                "rss_mib": round(proc_rss_mib(os.getpid()), 1),
                "peak_rss_mib": round(_peak_mib(), 1),
            }

    out = asyncio.run(up())
    return {"nodes": nodes, "pods": pods, "rss_mib_before": round(base, 1), **out}


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- CLI ---------------------------------------------------------------------------------------------------
def print_load(r: dict[str, Any]) -> None:
    t = r["target"]
    print(
        f"{r['seconds']} s at {t['webhook_rps']} reviews/s + {t['extender_cycles_per_s']} extender cycles/s, "
        f"{t['nodes']} nodes; server CPU {r['server_cpu_s']} s; machine {r['machine']}"
    )
    print(f"{'verb':<11} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for verb in ("mutate", "filter", "prioritize"):
        s = r[verb]
        cells = (s["requests"], s["errors"], s["p50_ms"], s["p99_ms"], s["max_ms"])
        kinds = f"  {s['error_kinds']}" if s["error_kinds"] else ""
        kinds += f"  p99 by window: {s['p99_ms_by_window']}"
        print(f"{verb:<11} " + " ".join(f"{'-' if c is None else c:>9}" for c in cells) + kinds)
    print(
        f"RSS {r['rss_mib_from']} -> {r['rss_mib_to']} MiB ({r['rss_growth_pct']:+} %); "
        f"generator lag p99 {r['generator_lag_ms_p99']} ms; errors {r['errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    load = sub.add_parser("load")
    load.add_argument("--seconds", type=float, default=600)
    load.add_argument("--webhook-rps", type=float, default=200)
    load.add_argument("--extender-cps", type=float, default=100)
    load.add_argument("--nodes", type=int, default=1000)
    load.add_argument("--in-flight", type=int, default=256)
    load.add_argument("--ramp", type=float, default=15.0, help="seconds from 10 %% to the full rate")
    load.add_argument("--json", type=Path)
    stub = sub.add_parser("prometheus-stub", help="(internal) the stand-in Prometheus, until killed")
    stub.add_argument("--port", type=int, required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--nodes", type=int, default=5000)
    mem.add_argument("--pods", type=int, default=50000)
    mem.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.mode == "prometheus-stub":
        from tests.misbehaving import SickPrometheus

        with SickPrometheus("ok", port=args.port) as prom:
            prom.answer_with(history_answer)
            signal.pause()
        return 0
    if args.mode == "load":
        result = run_load(
            args.seconds, args.webhook_rps, args.extender_cps, args.nodes, args.in_flight, args.ramp
        )
        print_load(result)
    else:
        result = run_memory(args.nodes, args.pods)
        print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
