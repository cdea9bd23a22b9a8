"""The real `serve` process (issue 11): SIGTERM answers every request in flight and exits within its grace;
a body over the limit gets 413 before it is sent whole; the process runs as non-root from a read-only copy
of the code with a read-only HOME and writes nothing but its own temporary files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.app.test_serve_process import clean_env, free_port
from tests.extender.conftest import make_pod
from tests.misbehaving import SickPrometheus
from tests.webhook.test_prometheus_faults import review_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serving(
    args: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    cmd = [*(prefix or []), sys.executable, *args, "--port", str(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or clean_env(), cwd=cwd
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "exited")
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_sigterm_answers_requests_in_flight_and_exits_within_its_grace() -> None:
    grace = 8.0
    with SickPrometheus("slow") as prom:  # every first review waits out the 1 s history timeout
        args = [
            "-m",
            "app",
            "serve",
            "--cluster",
            "demo",
            "--prometheus-url",
            prom.url,
            "--shutdown-grace-seconds",
            str(grace),
        ]
        with serving(args) as (proc, base), ThreadPoolExecutor(8) as pool:
            reviews = [
                pool.submit(httpx.post, base + "/mutate", json=review_for(f"w{i}"), timeout=30)
                for i in range(6)
            ]
            while prom.requests < 6 * 4:  # every review is waiting on its 4 history queries now
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            answers = [f.result() for f in reviews]
            assert [a.status_code for a in answers] == [200] * 6
            assert all(a.json()["response"]["allowed"] for a in answers)
            _, err = proc.communicate(timeout=grace + 10)
            took = time.monotonic() - signalled
    assert proc.returncode in (0, -signal.SIGTERM), err[-2000:]
    print(f"sigterm: 6 in-flight reviews answered, process gone {took:.2f} s after the signal")
    assert took < grace, took
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "shutdown requested" for r in logs)
    assert any(r["msg"] == "service stopped" for r in logs)


def test_oversized_body_gets_413_before_it_is_sent_whole() -> None:
    args = ["-m", "app", "serve", "--cluster", "demo", "--max-body-bytes", str(1024 * 1024)]
    with serving(args) as (_, base):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = (
                "POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"Pod": {')  # 20 MiB announced, a few bytes sent
            raw = b""
            while chunk := sock.recv(65536):  # the server answers and closes without reading 20 MiB
                raw += chunk
            reply = raw.decode()
        assert reply.startswith("HTTP/1.1 413"), reply[:200]
        assert "--max-body-bytes" in reply


def _can_drop_root() -> list[str]:
    """A user namespace maps us to uid 65532 (as the container runs); [] when not root or not allowed."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    probe = ["unshare", "--user", "--map-user=65532", "--map-group=65532", "true"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return []
    return probe[:-1]


#: run the CLI with an audit hook that refuses (and reports) every write outside $TMPDIR, as a read-only root
#: filesystem with an emptyDir on /tmp would
_BOOT = """
import os, sys
allowed = (os.path.realpath(os.environ["TMPDIR"]), "/dev/")
def hook(event, args):
    path = None
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        mode = args[1] if isinstance(args[1], str) else ""
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        if flags & writing or any(c in mode for c in "wax+"):
            path = args[0]
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.chmod", "os.symlink"):
        path = args[0]
    if path is not None and not isinstance(path, int):
        real = os.path.realpath(os.fsdecode(path))
        if not real.startswith(allowed):
            sys.__stderr__.write("READONLY-VIOLATION " + real + "\\n")
            raise PermissionError(13, "read-only file system", real)
sys.addaudithook(hook)
import app
sys.__stderr__.write('{"msg": "boot", "uid": %d, "app": "%s"}\\n' % (os.geteuid(), app.__file__))
from app.cli import main
sys.argv = ["gpu-autoscaler", *sys.argv[1:]]
sys.exit(main())
"""


def test_runs_as_non_root_from_a_read_only_copy(tmp_path: Path) -> None:
    from certs.generate import write_certs

    code = tmp_path / "ro"
    for pkg in ("app", "extender", "webhook", "certs"):
        shutil.copytree(REPO / pkg, code / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    tls = write_certs(tmp_path / "tls", "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    for path in (code, home, tmp_path / "tls"):
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
    env = {**clean_env(), "HOME": str(home), "TMPDIR": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
    prefix = _can_drop_root()
    args = ["-c", _BOOT, "serve", "--cluster", "demo", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    try:
        port = free_port()
        cmd = [*prefix, sys.executable, *args, "--port", str(port)]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=code
        )
        base = f"https://127.0.0.1:{port}"
        verify = ssl.create_default_context(cafile=str(tls.ca_cert))
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["dgx-h100-0"]}
        assert httpx.post(base + "/filter", json=body, verify=verify).json()["NodeNames"] == ["dgx-h100-0"]
        review = httpx.post(base + "/mutate", json=review_for("ro"), verify=verify).json()
        assert review["response"]["allowed"] is True
        assert "gpu_autoscaler_build_info" in httpx.get(base + "/metrics", verify=verify).text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        for path in (code, home, tmp_path / "tls"):
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    assert "READONLY-VIOLATION" not in err, [line for line in err.splitlines() if "VIOLATION" in line]
    boot = json.loads(next(line for line in err.splitlines() if '"boot"' in line))
    assert boot["app"].startswith(str(code)), "the read-only copy is what ran"
    if prefix or os.geteuid() != 0:
        assert boot["uid"] != 0
    assert proc.returncode in (0, -signal.SIGTERM), err[-2000:]
