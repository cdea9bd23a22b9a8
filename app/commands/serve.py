"""`gpu-autoscaler serve`: one process serving every endpoint."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli import CliError, add_server_flags, settings_overrides
from app.cluster.base import ClusterView
from app.cluster.snapshot import SnapshotCluster, SnapshotError
from app.settings import Settings, SettingsError, load_settings


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


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logging_setup import setup_logging
    from app.main import build_cluster, create_app

    settings = prepare(args)
    setup_logging(settings.log_level)
    cluster = build_cluster(settings)
    check_cluster(cluster)
    app = create_app(settings, cluster=cluster)
    ssl: dict[str, Any] = {}
    if settings.tls_cert and settings.tls_key:
        from certs.reload import uvicorn_ssl_options  # reloads the pair when the files change

        ssl = uvicorn_ssl_options(settings.tls_cert, settings.tls_key)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False, **ssl)
    return 0
