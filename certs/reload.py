"""Serving-certificate hot reload: an SSLContext whose cert chain follows the files on disk.

cert-manager, a Secret volume update or `gpu-autoscaler certs` rewrites tls.crt/tls.key in place; the server
must pick them up without a restart. Each TLS ClientHello runs `sni_callback` (OpenSSL calls it with or
without SNI); it checks the files' stat at most once per `check_interval` and, when they changed and the new
pair loads, switches the handshake to a freshly built context. A pair that fails to load (half rotated) is
ignored and retried, so the old certificate keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from app.metrics import REGISTRY

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]

#: TLS 1.2 suites of Mozilla's "intermediate" profile: forward secrecy (ECDHE) and AEAD ciphers only (TLS 1.3
#: suites are all of that kind and are not affected by this list)
MODERN_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

RELOAD_ERRORS = Counter(
    "gpu_autoscaler_tls_reload_errors_total",
    "Serving-certificate files that changed but could not be loaded (the previous pair kept serving)",
    registry=REGISTRY,
)
RELOADS = Counter(
    "gpu_autoscaler_tls_reloads_total", "Serving-certificate pairs loaded after a change", registry=REGISTRY
)


class TlsConfigError(ValueError):
    """The TLS files cannot serve; the message is one line naming the file."""


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, modern ciphers, no compression or renegotiation, HTTP/1.1 ALPN.

    With `client_ca`, the handshake asks for a client certificate and verifies one that is presented against
    that CA (a bad one fails the handshake); whether an endpoint *requires* one is the HTTP layer's call
    (`app/limits.py`), so kubelet probes and Prometheus scrapes still reach /healthz and /metrics."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(MODERN_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(str(certfile), str(keyfile))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=str(client_ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def check_files(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
) -> None:
    """Load the pair (and CA) once, so a bad file is a one-line error naming it before the server starts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_pem, key_pem = _read(certfile, "--tls-cert"), _read(keyfile, "--tls-key")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise TlsConfigError(f"--tls-cert {certfile}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsConfigError(f"--tls-key {keyfile}: not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        raise TlsConfigError(f"--tls-key {keyfile}: does not belong to the certificate in {certfile}")
    try:
        server_context(certfile, keyfile, None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsConfigError(f"--tls-cert {certfile} / --tls-key {keyfile}: {_why(exc)}") from None
    if client_ca is not None:
        try:
            x509.load_pem_x509_certificates(_read(client_ca, "--tls-client-ca"))
            ssl.create_default_context(cafile=str(client_ca))
        except (ssl.SSLError, ValueError):
            raise TlsConfigError(f"--tls-client-ca {client_ca}: not a PEM CA certificate") from None


def _read(path: str | os.PathLike[str], flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{flag} {path}: {exc.strerror or exc}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class ReloadingSSLContext:
    """`.context` is the server-side SSLContext to hand to the server (uvicorn `ssl_context_factory`)."""

    def __init__(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str],
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        client_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.client_ca = Path(client_ca) if client_ca is not None else None
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._failed: Stamp | None = None
        self._checked = clock()
        self.context = self._build()
        self.context.sni_callback = self._on_client_hello
        self._current = self.context
        self.reloads = 0

    def _stat(self) -> Stamp:
        out = []
        for path in (self.certfile, self.keyfile, *([self.client_ca] if self.client_ca else [])):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        return server_context(self.certfile, self.keyfile, self.client_ca)

    @property
    def current(self) -> ssl.SSLContext:
        """The context new handshakes end up on."""
        return self._current

    def maybe_reload(self, force: bool = False) -> bool:
        """Reload when the files changed since the last load; True when a new pair was loaded."""
        now = self._clock()
        if not force and now - self._checked < self.check_interval:
            return False
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp and not force:
                return False
            try:
                fresh = self._build()
            except (ssl.SSLError, OSError, ValueError) as exc:
                if stamp != self._failed:  # once per change of the files, not once per handshake
                    self._failed = stamp
                    RELOAD_ERRORS.inc()
                    log.warning(
                        "serving certificate reload failed; keeping the old one",
                        extra={"cert": str(self.certfile), "error": _why(exc)},
                    )
                return False
            self._current = fresh
            self._stamp = stamp
            self.reloads += 1
            RELOADS.inc()
        log.info("serving certificate reloaded", extra={"cert": str(self.certfile), "reloads": self.reloads})
        return True

    def _on_client_hello(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        try:
            self.maybe_reload()
        except Exception:  # a reload problem must never break the handshake
            log.exception("serving certificate check failed")
        current = self._current
        if current is not ctx:
            sslobj.context = current


def uvicorn_ssl_options(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` serving HTTPS with a reloading pair. With
    `client_ca`, requests carry the verified client certificate's subject in the ASGI `tls` extension."""
    reloader = ReloadingSSLContext(certfile, keyfile, client_ca=client_ca)
    options: dict[str, Any] = {
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
        "ssl_context_factory": lambda _config, _default: reloader.context,
    }
    if client_ca is not None:
        options["http"] = client_cert_protocol()
    return options


def client_cert_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, telling the app which verified client certificate a connection presented.

    uvicorn does not fill the ASGI `tls` scope extension; the handshake is over when `connection_made` runs,
    so each connection wraps the app once with `scope["extensions"]["tls"]["client_cert_name"]` (the
    subject, RFC 4514) when the peer presented a certificate that our CA verified."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class ClientCertProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                return
            from cryptography import x509

            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
            inner: Any = getattr(self, "app")  # noqa: B009 - mypy cannot type uvicorn's attribute

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = {"client_cert_name": name}
                await inner(scope, receive, send)

            setattr(self, "app", app)  # noqa: B010

    return ClientCertProtocol
