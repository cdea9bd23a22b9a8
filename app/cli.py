"""`gpu-autoscaler` command line. Each subcommand lives with the capability it drives.

Bad flags and bad settings exit 2 with one line on stderr: `gpu-autoscaler: error: <reason>`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

from app import __version__

#: modules that add subcommands: each has `register(subparsers) -> None`, setting `func` on its parser
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "app.commands.serve",
    "app.demo",
    "certs.cli",
    "extender.replay.cli",
    "app.agent.command",
    "app.commands.ops",
    "app.nodescale.cli",
    "app.mig.cli",
)


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"gpu-autoscaler: error: {message}\n")
        raise SystemExit(2)


def _flag_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """(argparse type, choices) for a settings field: `X | None` -> X; Literal -> its values."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return str, [str(a) for a in get_args(annotation)]
    if annotation in (int, float):
        return annotation, None
    return str, None


def writable_folder(path: Path, flag: str) -> None:
    """Create `path` and prove a file can be written there, so an output problem is a one-line error before
    any work, not a traceback after it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise CliError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """One flag per setting (`--name-with-dashes`), shared by `serve` and `demo`: a setting added to
    app/settings.py is a flag, an env variable and a config-file key at once. None means 'not given'."""
    from app.settings import Settings

    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "").replace("%", "%%") or None
        if field.annotation in (bool, bool | None):
            p.add_argument(
                flag, dest=name, default=None, action=argparse.BooleanOptionalAction, help=help_text
            )
            continue
        kind, choices = _flag_type(field.annotation)
        p.add_argument(flag, dest=name, default=None, type=kind, choices=choices, help=help_text)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from app.settings import Settings

    return {n: getattr(args, n, None) for n in Settings.model_fields}


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
