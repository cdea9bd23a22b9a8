"""Drive the service with a real kube-scheduler: the FGD study's simulator `simon` (kube-scheduler v1.20's
scheduling framework against an in-memory API server, `../shared/tools/kube-scheduler-sim/`).

simon calls our extender over HTTP exactly as a cluster's kube-scheduler does (ExtenderArgs to /filter and
/prioritize, our scores combined with its own plugins at the configured weight), then binds. It renames every
node `NNNN-<name>` with a seeded permutation before scheduling; in `nodeCacheCapable` mode the service's own
cluster view must hold those names, so a run first asks simon for them (a throwaway extender records the
`NodeNames` of the first call).

Used by tests/integration/test_kube_scheduler_sim.py and bench/bench_kube_scheduler.py.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
SIMON_XZ = ROOT.parent / "shared" / "tools" / "kube-scheduler-sim" / "simon.xz"
SCHEDULER = "simon-scheduler"
_PLACED = re.compile(r"pod\((?P<pod>[^)]+)\) is scheduled to node\((?P<node>[^)]+)\)")
_FAILED = re.compile(r"failed to schedule pod\((?P<pod>[^)]+)\)")
#: the study's own scoring plugins: off, so only kube-scheduler's defaults and the extender score
_STUDY_SCORES = ("RandomScore", "DotProductScore", "GpuClusteringScore", "GpuPackingScore", "BestFitScore")


def simon_binary() -> Path | None:
    """The unpacked simulator (cached next to the temp dir), or None when `simon.xz` is not here.

    `GPU_AUTOSCALER_SIMON` may name another `simon.xz` or an unpacked binary."""
    given = os.environ.get("GPU_AUTOSCALER_SIMON")
    src = Path(given) if given else SIMON_XZ
    if not src.is_file():
        return None
    if src.suffix != ".xz":
        return src
    stat = src.stat()
    dest = Path(tempfile.gettempdir()) / f"gpu-autoscaler-simon-{stat.st_size}-{int(stat.st_mtime)}"
    if not dest.is_file():
        part = dest.with_suffix(".part")
        with lzma.open(src) as fin, open(part, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        part.chmod(0o755)
        part.replace(dest)
    return dest


@dataclass
class SimResult:
    #: "namespace/name" -> node name as the service knows it (simon's `NNNN-` prefix removed), or None
    placements: dict[str, str | None]
    seconds: float  # wall time of the scheduling run (simon's start-up excluded as far as possible)
    log: str = ""

    @property
    def placed(self) -> int:
        return sum(1 for n in self.placements.values() if n)


def gpu_pod(
    name: str,
    gpus: int,
    namespace: str = "default",
    cpu: str = "4",
    memory: str = "16Gi",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pending Pod asking `gpus` whole GPUs, as a Deployment's pod looks to the scheduler."""
    res = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "labels": labels or {"app": name.rsplit("-", 1)[0]},
            "annotations": annotations or {},
        },
        "spec": {
            "schedulerName": SCHEDULER,
            "containers": [
                {
                    "name": "main",
                    "image": "vllm/vllm-openai:v0.6.3",
                    "resources": {"limits": dict(res), "requests": dict(res)},
                }
            ],
        },
        "status": {"phase": "Pending"},
    }


def _strip(node: str) -> str:
    return node.split("-", 1)[1] if re.match(r"^\d{4}-", node) else node


def scheduler_config(url: str | None, node_cache_capable: bool, weight: int = 5) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1beta1",
        "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": 100,
        "profiles": [
            {
                "schedulerName": SCHEDULER,
                "plugins": {
                    "score": {"disabled": [{"name": n} for n in (*_STUDY_SCORES, "FGDScore")]},
                    "bind": {"disabled": [{"name": "DefaultBinder"}], "enabled": [{"name": "Simon"}]},
                },
            }
        ],
    }
    if url:
        cfg["extenders"] = [
            {
                "urlPrefix": url,
                "filterVerb": "filter",
                "prioritizeVerb": "prioritize",
                "weight": weight,
                "nodeCacheCapable": node_cache_capable,
                "ignorable": False,
                "httpTimeout": "5s",
                "managedResources": [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}],
            }
        ]
    return cfg


def _write_cluster(folder: Path, nodes: Sequence[dict[str, Any]], pods: Sequence[dict[str, Any]]) -> None:
    (folder / "node").mkdir(parents=True)
    (folder / "pod").mkdir(parents=True)
    for node in nodes:
        (folder / "node" / f"{node['metadata']['name']}.yaml").write_text(yaml.safe_dump(node))
    for i, pod in enumerate(pods):  # simon schedules in pod-name order when shufflePod is false (measured)
        (folder / "pod" / f"{i:05d}-{pod['metadata']['name']}.yaml").write_text(yaml.safe_dump(pod))


def run_simon(
    nodes: Sequence[dict[str, Any]],
    pods: Sequence[dict[str, Any]],
    extender_url: str | None,
    node_cache_capable: bool = True,
    weight: int = 5,
    timeout: float = 600.0,
) -> SimResult:
    """Schedule `pods` in order on `nodes` with simon (and our extender at `extender_url` if given)."""
    binary = simon_binary()
    if binary is None:
        raise FileNotFoundError(f"{SIMON_XZ} not found")
    with tempfile.TemporaryDirectory(prefix="simon-") as tmp:
        work = Path(tmp)
        _write_cluster(work / "cluster", nodes, pods)
        cc = {
            "apiVersion": "simon/v1alpha1",
            "kind": "Config",
            "metadata": {"name": "gpu-autoscaler-test"},
            "spec": {
                "cluster": {"customConfig": str(work / "cluster")},
                "customConfig": {"shufflePod": False},
            },
        }
        (work / "cc.yaml").write_text(yaml.safe_dump(cc))
        sc = scheduler_config(extender_url, node_cache_capable, weight)
        (work / "sc.yaml").write_text(yaml.safe_dump(sc))
        start = time.perf_counter()
        proc = subprocess.run(
            [str(binary), "apply", "-f", "cc.yaml", "--default-scheduler-config", "sc.yaml"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    placements: dict[str, str | None] = {}
    for m in _PLACED.finditer(log):
        placements[m["pod"]] = _strip(m["node"])
    for m in _FAILED.finditer(log):
        placements.setdefault(m["pod"], None)
    for pod in pods:
        key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
        placements.setdefault(key, None)
    return SimResult(placements, seconds, log)


class _NameRecorder(BaseHTTPRequestHandler):
    names: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not _NameRecorder.names:
            _NameRecorder.names = list(body.get("NodeNames") or body.get("nodenames") or [])
        reply = (
            {"NodeNames": [], "FailedNodes": dict.fromkeys(_NameRecorder.names, "discovery")}
            if self.path.endswith("filter")
            else []
        )
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def simon_node_names(nodes: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Original node name -> the `NNNN-<name>` simon will use (its permutation is seeded: stable)."""
    _NameRecorder.names = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NameRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        probe = [gpu_pod("name-probe", 1)]
        run_simon(nodes, probe, f"http://127.0.0.1:{server.server_address[1]}", node_cache_capable=True)
    finally:
        server.shutdown()
        server.server_close()
    return {_strip(n): n for n in _NameRecorder.names}


def renamed(nodes: Sequence[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        copy = json.loads(json.dumps(node))
        copy["metadata"]["name"] = names[node["metadata"]["name"]]
        out.append(copy)
    return out


@dataclass
class Service:
    """`gpu-autoscaler serve` in its own process (as in a cluster), on a snapshot folder."""

    url: str
    proc: subprocess.Popen[bytes]
    folder: Path
    stderr: list[bytes] = field(default_factory=list)

    def stats(self) -> dict[str, float]:
        """Request count and seconds per extender verb, and how assumptions ended, from /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r'gpu_autoscaler_extender_duration_seconds_(sum|count)\{verb="(\w+)"\} (\S+)', line)
            if m:
                out[f"{m[2]}_{m[1]}"] = float(m[3])
            m = re.match(r'gpu_autoscaler_extender_assumptions_total\{outcome="(\w+)"\} (\S+)', line)
            if m:
                out[f"assumptions_{m[1]}"] = float(m[2])
        return out


@contextlib.contextmanager
def serve(objects: Sequence[dict[str, Any]], *flags: str) -> Iterator[Service]:
    """Start the service on a snapshot of `objects` (nodes and pods its cluster view should hold)."""
    from app.inprocess import free_port

    with tempfile.TemporaryDirectory(prefix="gpu-autoscaler-snapshot-") as tmp:
        folder = Path(tmp)
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
        docs = [ns, *objects]
        (folder / "cluster.yaml").write_text(yaml.safe_dump_all(docs))
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key in [k for k in env if k.startswith("GPU_AUTOSCALER_")]:
            del env[key]
        cmd = [sys.executable, "-m", "app", "serve", "--cluster", str(folder), "--port", str(port),
               "--log-level", "WARNING", *flags]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"service exited {proc.returncode}: {err[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("service did not become ready in 60 s")
                time.sleep(0.1)
            yield Service(url, proc, folder)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
