"""`gpu-autoscaler` command line. Each subcommand lives with the capability it drives.

Bad flags and bad settings exit 2 with one line on stderr: `gpu-autoscaler: error: <reason>`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app import __version__

#: modules that add subcommands: each has `register(subparsers) -> None`, setting `func` on its parser
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "app.commands.serve",
    "app.demo",
    "certs.cli",
    "extender.replay.cli",
    "app.agent.command",
    "app.commands.ops",
)


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"gpu-autoscaler: error: {message}\n")
        raise SystemExit(2)


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by `serve` and `demo` (names match the settings; None means 'not given')."""
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--cluster", default=None, help="demo | kube | PATH (snapshot file or folder)")
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--prometheus-url", default=None)
    p.add_argument("--config", default=None, help="YAML file of settings")
    p.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--namespace", default=None)
    p.add_argument("--autoscaler-interval", type=float, default=None)
    p.add_argument("--scale-up-stabilization", type=float, default=None)
    p.add_argument("--scale-down-stabilization", type=float, default=None)
    p.add_argument("--resource-policy", default=None)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = [
        *("host", "port", "cluster", "tls_cert", "tls_key", "prometheus_url", "config", "log_level"),
        *("namespace", "autoscaler_interval", "scale_up_stabilization", "scale_down_stabilization"),
        "resource_policy",
    ]
    return {n: getattr(args, n, None) for n in names}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpu-autoscaler", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"gpu-autoscaler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for mod in SUBCOMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        sys.stderr.write(f"gpu-autoscaler: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
