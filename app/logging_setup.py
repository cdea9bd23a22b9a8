"""Structured logging: one JSON object per line, extra fields kept as keys.

Decisions log one line each with their inputs and reasons in `extra=`, so `jq` can explain any of them.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

#: keys uvicorn adds for its coloured console output; noise in JSON
_DROP = ("color_message",)


class _Formatter(JsonFormatter):
    """ISO-8601 UTC timestamps (`ts`), short key names, no console-only fields."""

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        fields = {k: v for k, v in log_record.items() if k not in _DROP}
        log_record.clear()
        log_record["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_record.update(fields)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger (ours, uvicorn's, the kubernetes client's) to one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        _Formatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
            reserved_attrs=[*RESERVED_ATTRS, *_DROP],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
