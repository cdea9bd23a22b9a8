"""Real HTTPS: certificates from `gpu-autoscaler certs`, uvicorn serving them, clients verifying against the
CA, and the serving pair reloaded without a restart."""

from __future__ import annotations

import base64
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from cryptography import x509

from app.cli import main
from app.main import create_app
from app.settings import Settings
from certs.generate import service_dns_names, write_certs
from certs.reload import ReloadingSSLContext, uvicorn_ssl_options
from tests.webhook.conftest import TEXT_EMBED, load_review, usage
from webhook.component import WebhookComponent
from webhook.history import RecordedHistory

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reloading_options(bundle: Any) -> tuple[ReloadingSSLContext, dict[str, Any]]:
    """uvicorn SSL options whose context re-reads the pair on every handshake (check_interval 0)."""
    reloader = ReloadingSSLContext(bundle.cert, bundle.key, check_interval=0.0)
    options = {
        "ssl_certfile": str(bundle.cert),
        "ssl_keyfile": str(bundle.key),
        "ssl_context_factory": lambda _c, _d: reloader.context,
    }
    return reloader, options


@contextmanager
def serving(app: Any, ssl_options: dict[str, Any]) -> Iterator[int]:
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, **ssl_options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _peer_serial(port: int, cafile: Path, server_name: str | None = None) -> int:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = server_name is not None
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_certs_command_writes_pair_and_renders_webhook_config(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "--service", "gpu-autoscaler", "--namespace", "gpu-system", "--out", str(out)]) == 0
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert "gpu-autoscaler.gpu-system.svc" in sans and "gpu-autoscaler.gpu-system.svc.cluster.local" in sans
    assert sans == service_dns_names("gpu-autoscaler", "gpu-system")
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    config = yaml.safe_load((out / "mutatingwebhookconfiguration.yaml").read_text())
    hook = config["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == (out / "ca.crt").read_bytes()
    assert hook["clientConfig"]["service"] == {
        "name": "gpu-autoscaler",
        "namespace": "gpu-system",
        "path": "/mutate",
        "port": 443,
    }
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded" and hook["admissionReviewVersions"] == ["v1"]
    assert 1 <= hook["timeoutSeconds"] <= 30
    assert hook["namespaceSelector"] == {"matchLabels": {"gpu-autoscaler.io/mig-rewrite": "enabled"}}
    assert "nvidia.com/gpu" in hook["matchConditions"][0]["expression"]
    ca_before = (out / "ca.crt").read_bytes()
    assert main(["certs", "--service", "gpu-autoscaler", "--namespace", "gpu-system", "--out", str(out)]) == 0
    assert (out / "ca.crt").read_bytes() == ca_before  # the CA is reused, the caBundle stays valid


def test_certs_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--service", "s", "--namespace", "n", "--out", str(tmp_path), "--ip", "nope"]) == 2
    assert "--ip" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mutate_over_https_verified_against_the_generated_ca(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path, "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    component = WebhookComponent(Settings(cluster="demo"))
    app = create_app(Settings(cluster="demo"), components=[lambda _s: component])
    with serving(app, uvicorn_ssl_options(bundle.cert, bundle.key)) as port:
        component.set_history_source(RecordedHistory({TEXT_EMBED: {"vllm": usage(6.0, 0.09)}}))
        verify = ssl.create_default_context(cafile=str(bundle.ca_cert))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=verify) as client:
            raw = load_review("pod_create_deployment.json")
            r = client.post("/mutate", json=raw)
            assert r.status_code == 200 and r.json()["response"]["uid"] == raw["request"]["uid"]
            assert r.json()["response"]["patchType"] == "JSONPatch"
        # the in-cluster name the API server uses also verifies
        assert _peer_serial(port, bundle.ca_cert, "gpu-autoscaler.gpu-system.svc") > 0
        # a client that does not trust our CA is refused
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=ssl.create_default_context()) as other:
            other.get(f"https://127.0.0.1:{port}/healthz")


def test_serving_certificate_reloads_without_restart(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path, "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    app = create_app(Settings(cluster="demo"), components=[])
    reloader, options = reloading_options(bundle)
    with serving(app, options) as port:
        first = _peer_serial(port, bundle.ca_cert)
        assert first == _peer_serial(port, bundle.ca_cert)
        write_certs(tmp_path, "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])  # rotate, same CA
        expected = x509.load_pem_x509_certificate(bundle.cert.read_bytes()).serial_number
        second = _peer_serial(port, bundle.ca_cert)
        assert second == expected != first and reloader.reloads == 1
        # the SNI name path takes the new pair too
        assert _peer_serial(port, bundle.ca_cert, "gpu-autoscaler.gpu-system.svc") == expected
        # a half-written rotation (cert without its key) is ignored: the last good pair keeps serving
        bundle.cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        assert _peer_serial(port, bundle.ca_cert) == expected and reloader.reloads == 1
        with httpx.Client(verify=ssl.create_default_context(cafile=str(bundle.ca_cert))) as client:
            assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200


def test_reload_is_throttled(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path, "s", "n")
    now = [0.0]
    reloader = ReloadingSSLContext(bundle.cert, bundle.key, check_interval=5.0, clock=lambda: now[0])
    write_certs(tmp_path, "s", "n")
    assert reloader.maybe_reload() is False  # checked less than 5 s ago
    now[0] = 6.0
    assert reloader.maybe_reload() is True and reloader.current is not reloader.context
    now[0] = 12.0
    assert reloader.maybe_reload() is False  # unchanged files
