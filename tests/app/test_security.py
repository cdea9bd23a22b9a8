"""Security (issue 11, item 9): TLS 1.2+ with modern ciphers only, optional mutual TLS, a broken rotation
never replaces a working pair, and no pod spec, token or key in any log line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi.testclient import TestClient

from app.logging_setup import setup_logging
from app.main import create_app
from app.metrics import REGISTRY
from app.settings import Settings
from certs.generate import generate_ca, write_certs
from certs.reload import uvicorn_ssl_options
from tests.extender.conftest import make_pod
from tests.webhook.conftest import load_review
from tests.webhook.test_tls import _peer_serial, reloading_options, serving


def client_pair(
    tmp: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str
) -> tuple[Path, Path]:
    """A client-auth certificate (what the API server or kube-scheduler presents) signed by `ca`."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    crt, pem = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, pem


def handshake(port: int, cafile: Path, **ctx_opts: Any) -> str:
    """Negotiated version, or the error's name when the server refuses."""
    import socket

    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    for k, v in ctx_opts.items():
        if k == "ciphers":
            ctx.set_ciphers(v)
        else:
            setattr(ctx, k, v)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, ctx.wrap_socket(sock) as tls:
            return str(tls.version())
    except (ssl.SSLError, ConnectionResetError) as exc:
        return type(exc).__name__


@pytest.mark.integration
def test_tls_12_and_up_with_modern_ciphers_only(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path, "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    app = create_app(Settings(cluster="demo"), components=[])
    with serving(app, uvicorn_ssl_options(bundle.cert, bundle.key)) as port:
        assert handshake(port, bundle.ca_cert) == "TLSv1.3"
        tls12 = {"maximum_version": ssl.TLSVersion.TLSv1_2}
        assert handshake(port, bundle.ca_cert, **tls12) == "TLSv1.2"
        assert handshake(port, bundle.ca_cert, **tls12, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384") == "TLSv1.2"
        # TLS 1.1 and CBC / non-forward-secret suites are refused
        old = {"minimum_version": ssl.TLSVersion.TLSv1, "maximum_version": ssl.TLSVersion.TLSv1_1}
        with pytest.warns(DeprecationWarning):
            assert handshake(port, bundle.ca_cert, **old).endswith("Error")
        for weak in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"):
            assert handshake(port, bundle.ca_cert, **tls12, ciphers=weak).endswith("Error"), weak


@pytest.mark.integration
def test_mutual_tls_requires_a_client_certificate_signed_by_the_configured_ca(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path, "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    clients_ca = generate_ca("api-server-clients")
    ca_file = tmp_path / "clients-ca.crt"
    ca_file.write_bytes(clients_ca[1].public_bytes(serialization.Encoding.PEM))
    good = client_pair(tmp_path, clients_ca, "kube-apiserver")
    stranger = client_pair(tmp_path, generate_ca("someone-else"), "mallory")
    settings = Settings(cluster="demo", tls_cert=bundle.cert, tls_key=bundle.key, tls_client_ca=ca_file)
    app = create_app(settings)
    review = load_review("pod_create_notebook.json")
    with serving(app, uvicorn_ssl_options(bundle.cert, bundle.key, ca_file)) as port:
        base = f"https://127.0.0.1:{port}"
        verify = ssl.create_default_context(cafile=str(bundle.ca_cert))
        with httpx.Client(base_url=base, verify=verify) as anonymous:
            assert anonymous.get("/healthz").status_code == 200  # probes and scrapes need no certificate
            assert anonymous.get("/metrics").status_code == 200
            refused = anonymous.post("/mutate", json=review)
            assert refused.status_code == 403 and "client certificate" in refused.json()["error"]
        with_cert = ssl.create_default_context(cafile=str(bundle.ca_cert))
        with_cert.load_cert_chain(*good)
        with httpx.Client(base_url=base, verify=with_cert) as apiserver:
            assert apiserver.post("/mutate", json=review).status_code == 200
            body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["dgx-h100-1"]}
            assert apiserver.post("/filter", json=body).json()["NodeNames"] == ["dgx-h100-1"]
        other = ssl.create_default_context(cafile=str(bundle.ca_cert))
        other.load_cert_chain(*stranger)
        with pytest.raises(httpx.TransportError), httpx.Client(base_url=base, verify=other) as mallory:
            mallory.post("/mutate", json=review)


@pytest.mark.integration
def test_rotation_to_a_mismatched_pair_keeps_the_old_pair_serving(tmp_path: Path) -> None:
    bundle = write_certs(tmp_path / "a", "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    other = write_certs(tmp_path / "b", "gpu-autoscaler", "gpu-system", ips=["127.0.0.1"])
    app = create_app(Settings(cluster="demo"), components=[])
    reloader, options = reloading_options(bundle)
    errors = REGISTRY.get_sample_value("gpu_autoscaler_tls_reload_errors_total") or 0.0
    with serving(app, options) as port:
        serial = _peer_serial(port, bundle.ca_cert)
        bundle.key.write_bytes(other.key.read_bytes())  # a key from another rotation: cert and key disagree
        for _ in range(3):
            assert _peer_serial(port, bundle.ca_cert) == serial
        assert reloader.reloads == 0
        assert REGISTRY.get_sample_value("gpu_autoscaler_tls_reload_errors_total") == errors + 1  # once
        bundle.cert.write_bytes(b"not a certificate")
        assert _peer_serial(port, bundle.ca_cert) == serial


# -- logs ---------------------------------------------------------------------------------------------------
SECRET = "s3cr3t-V4LUE-0f-the-pod"
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRva2VuLW1hcmtlciJ9"


def secret_pod(gpus: int = 1) -> dict[str, Any]:
    pod = make_pod("leaky", gpus=gpus)
    main = pod["spec"]["containers"][0]
    main["env"] = [{"name": "HF_TOKEN", "value": SECRET}]
    main["args"] = ["--api-key", SECRET]
    pod["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
        {"spec": {"containers": [{"env": [{"name": "HF_TOKEN", "value": SECRET}]}]}}
    )
    return pod


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_no_pod_spec_token_or_key_in_any_log_line(tmp_path: Path, log_stream: io.StringIO) -> None:
    bundle = write_certs(tmp_path, "gpu-autoscaler", "gpu-system")
    key_pem = bundle.key.read_text().splitlines()[1]
    settings = Settings(cluster="demo", tls_cert=bundle.cert, tls_key=bundle.key, log_level="DEBUG")
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        nodes = [n["metadata"]["name"] for n in app.state.ctx.cluster.list("Node")]
        for pod in (secret_pod(1), secret_pod(0)):
            for verb in ("/filter", "/prioritize"):
                client.post(verb, json={"Pod": pod, "NodeNames": nodes}, headers=headers)
        # malformed: the error must name the field, not echo the spec
        broken = secret_pod()
        broken["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
        assert client.post("/filter", json={"Pod": broken, "NodeNames": nodes}).status_code == 400
        review = load_review("pod_create_notebook.json")
        review["request"]["object"]["spec"]["containers"][0]["env"] = [{"name": "T", "value": SECRET}]
        review["request"]["userInfo"] = {"username": "system:serviceaccount:x:y", "extra": {"token": [TOKEN]}}
        client.post("/mutate", json=review, headers=headers)
        client.post("/mutate", content=json.dumps(review)[:-5], headers=headers)  # truncated: 400
        client.get("/metrics", headers=headers)
        client.get("/extender/placements")
    text = log_stream.getvalue()
    assert text.count("\n") > 10, "the requests were logged"
    for needle in (SECRET, TOKEN, key_pem, "HF_TOKEN", "Bearer"):
        assert needle not in text, needle
    for line in text.splitlines():
        assert "spec" not in json.loads(line), line[:200]  # no record carries a pod spec
