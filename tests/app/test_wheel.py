"""What the image ships, without Docker: the wheel builds from the package sources alone, installs into a
fresh virtualenv with no repository around it, and `serve`, `demo`, `certs` and `simulate` run from it.

The image's Dockerfile does the same steps (pip wheel, pip install into a venv); the base image, non-root user
and read-only root filesystem are checked on the Dockerfile text. To stay fast and offline, the fresh venv
gets the dependencies from this test's own environment (a .pth line after its own site-packages) and only the
wheel is installed into it (`--no-deps`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from app import __version__
from tests.waiting import until_http_ok

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "extender", "webhook", "certs")

pytestmark = pytest.mark.integration


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_AUTOSCALER_", "PYTHON"))}
    env["KUBECONFIG"] = str(cwd / "no-kubeconfig")  # `auto` must pick the demo cluster
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding only the wheel (built from a copy of the package sources)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        cwd=tmp,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("gpu_autoscaler-*.whl")
    assert wheel.name.startswith(f"gpu_autoscaler-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for data in (
        "certs/mutatingwebhookconfiguration.yaml",
        "app/cluster/demo/nodes.yaml",
        "app/gpu/mig_profiles.json",
        "app/gpu/mig-parted-default.yaml",
    ):
        assert data in names, f"{data} is not in the wheel (pyproject package-data)"
    assert not any(n.startswith(("tests/", "manifests/", "bench/")) for n in names)

    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    site = Path(
        run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp
        ).stdout.strip()
    )
    # dependencies from this environment, after the venv's own site-packages (so the wheel's packages win)
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", str(wheel)], cwd=tmp
    )
    assert inst.returncode == 0, inst.stdout + inst.stderr
    where = run([str(py), "-c", "import app, certs; print(app.__file__); print(certs.__file__)"], cwd=tmp)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv), f"imported from outside the venv: {line}"
    return venv / "bin"


def test_version_and_certs_run_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    cli = str(installed / "gpu-autoscaler")
    assert run([cli, "--version"], cwd=tmp_path).stdout.strip() == f"gpu-autoscaler {__version__}"
    out = run(
        [cli, "certs", "--service", "gpu-autoscaler", "--namespace", "gpu-autoscaler", "--out", "c"], tmp_path
    )
    assert out.returncode == 0, out.stderr
    rendered = (tmp_path / "c" / "mutatingwebhookconfiguration.yaml").read_text()
    assert "caBundle:" in rendered and "${" not in rendered


def test_demo_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    out = run([str(installed / "gpu-autoscaler"), "demo"], cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "demo finished" in out.stdout


def test_simulate_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "nodes.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "n0,64000,262144,8,V100M32\nn1,64000,262144,8,V100M32\nn2,96000,393216,2,T4\n"
    )
    pods = [
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
    ]
    shapes = [(1, 1000), (1, 500), (2, 1000), (4, 1000), (0, 0), (1, 250)]
    for i in range(24):
        gpus, milli = shapes[i % len(shapes)]
        pods.append(f"p{i:03d},4000,16384,{gpus},{milli},,LS,Running,{i * 10},{i * 10 + 1000},{i * 10}")
    (tmp_path / "pods.csv").write_text("\n".join(pods) + "\n")
    cmd = [str(installed / "gpu-autoscaler"), "simulate", "--nodes", "nodes.csv", "--pods", "pods.csv"]
    out = run([*cmd, "--policy", "extender,fgd", "--seeds", "42", "--output", "json"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["nodes"] == 3 and report["gpus"] == 18
    assert {r["policy"] for r in report["runs"]} == {"extender", "fgd"}
    assert all(r["arrived_pods"] > 0 for r in report["runs"])


def test_serve_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_AUTOSCALER_", "PYTHON"))}
    cmd = [str(installed / "gpu-autoscaler"), "serve", "--cluster", "demo", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        until_http_ok(f"http://127.0.0.1:{port}/readyz", proc, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/leaderz").json()["leader"] is True
        assert "gpu_autoscaler_build_info" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    base = next(ln.split("=", 1)[1] for ln in lines if ln.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2 and all("${PYTHON_IMAGE}" in f for f in froms)
    final = lines[lines.index(froms[-1]) :]
    user = next(ln for ln in final if ln.startswith("USER "))
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (runAsNonRoot needs a number)"
    assert any("COPY --from=build" in ln for ln in final) and not any(ln.startswith("RUN ") for ln in final)
    assert "compileall" in text and "PYTHONDONTWRITEBYTECODE=1" in text  # nothing written at run time
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
