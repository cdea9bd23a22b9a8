"""Serving-certificate hot reload: an SSLContext whose cert chain follows the files on disk.

cert-manager, a Secret volume update or `gpu-autoscaler certs` rewrites tls.crt/tls.key in place; the server
must pick them up without a restart. Each TLS ClientHello runs `sni_callback` (OpenSSL calls it with or
without SNI); it checks the files' stat at most once per `check_interval` and, when they changed and the new
pair loads, switches the handshake to a freshly built context. A pair that fails to load (half rotated) is
ignored and retried, so the old certificate keeps serving.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


class ReloadingSSLContext:
    """`.context` is the server-side SSLContext to hand to the server (uvicorn `ssl_context_factory`)."""

    def __init__(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str],
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._checked = clock()
        self.context = self._build()
        self.context.sni_callback = self._on_client_hello
        self._current = self.context
        self.reloads = 0

    def _stat(self) -> Stamp:
        out = []
        for path in (self.certfile, self.keyfile):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

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
            except (ssl.SSLError, OSError) as exc:
                log.warning(
                    "serving certificate reload failed; keeping the old one", extra={"error": str(exc)}
                )
                return False
            self._current = fresh
            self._stamp = stamp
            self.reloads += 1
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


def uvicorn_ssl_options(certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str]) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` serving HTTPS with a reloading pair."""
    reloader = ReloadingSSLContext(certfile, keyfile)
    return {
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
        "ssl_context_factory": lambda _config, _default: reloader.context,
    }
