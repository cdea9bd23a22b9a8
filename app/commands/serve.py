"""`gpu-autoscaler serve`: one process serving every endpoint."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from types import FrameType
from typing import Any

from app.cli import CliError, add_server_flags, settings_overrides
from app.cluster.base import ClusterView
from app.cluster.snapshot import SnapshotCluster, SnapshotError
from app.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve /filter /prioritize /mutate /metrics /healthz /readyz")
    add_server_flags(p)
    p.set_defaults(func=run)


def prepare(args: argparse.Namespace) -> Settings:
    """Settings and an early check of the cluster source, so bad input fails before binding a port."""
    try:
        return load_settings(settings_overrides(args))
    except SettingsError as exc:
        raise CliError(str(exc)) from exc


def check_cluster(cluster: ClusterView) -> None:
    """Read the snapshot / kube config now, so a bad source exits 2 with one line instead of a traceback."""
    from app.cluster.kube import KubeCluster, KubeConfigError

    try:
        if isinstance(cluster, SnapshotCluster):
            cluster.load()
        elif isinstance(cluster, KubeCluster):
            cluster.connect()
    except SnapshotError as exc:
        raise CliError(f"cluster snapshot: {exc}") from exc
    except KubeConfigError as exc:
        raise CliError(f"cluster kube: {exc}") from exc


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments, the files loaded once now: a bad pair is one line, exit 2, no traceback."""
    if not (settings.tls_cert and settings.tls_key):
        return {}
    from certs.reload import TlsConfigError, check_files, uvicorn_ssl_options

    try:
        check_files(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    except TlsConfigError as exc:
        raise CliError(str(exc)) from None
    return uvicorn_ssl_options(settings.tls_cert, settings.tls_key, settings.tls_client_ca)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any work starts: a busy port is one line and exit 2, not a log line
    and exit 3 after the cluster view has loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"--host {host}: cannot resolve: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CliError(f"--port {port} on {host}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logging_setup import setup_logging
    from app.main import build_cluster, create_app

    settings = prepare(args)
    ssl = tls_options(settings)
    sock = bind(settings.host, settings.port)
    try:
        setup_logging(settings.log_level)
        cluster = build_cluster(settings)
        check_cluster(cluster)
        app = create_app(settings, cluster=cluster)
    except BaseException:
        sock.close()
        raise
    grace = settings.shutdown_grace_seconds
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # requests in flight get most of the grace; the lifespan shutdown (watches, loops) the rest
        timeout_graceful_shutdown=max(1, int(grace * 0.75)),
        **ssl,
    )
    graceful_server(config, grace).run(sockets=[sock])
    return 0


def graceful_server(config: Any, grace: float) -> Any:
    """uvicorn's server, plus a promise: once SIGTERM/SIGINT arrives, the process is gone within `grace`
    seconds even if a request or a shutdown hook hangs (Kubernetes would SIGKILL it a little later)."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        _watchdog: threading.Timer | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self._watchdog is None:
                log.info("shutdown requested", extra={"signal": sig, "grace_s": grace})
                self._watchdog = threading.Timer(grace, _exit_now, args=(grace,))
                self._watchdog.daemon = True
                self._watchdog.start()
            super().handle_exit(sig, frame)

    return GracefulServer(config)


def _exit_now(grace: float) -> None:
    log.error("shutdown grace exceeded; exiting now", extra={"grace_s": grace})
    logging.shutdown()
    os._exit(1)
