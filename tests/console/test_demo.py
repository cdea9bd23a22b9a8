"""`gpu-autoscaler demo --keep-serving`: the demo's server stays up for the console until Ctrl-C."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from app import demo
from app.cli import build_parser


def test_keep_serving_prints_the_console_and_stops_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupted)
    out = io.StringIO()
    demo.keep_serving(Console(file=out, width=120), "http://127.0.0.1:8080")
    text = out.getvalue()
    assert "console: http://127.0.0.1:8080/ui" in text and "Ctrl-C" in text and "stopping" in text


def test_the_flag_and_the_act() -> None:
    args = build_parser().parse_args(["demo", "--keep-serving", "--port", "0"])
    assert args.keep_serving is True
    assert not build_parser().parse_args(["demo"]).keep_serving
    assert demo.DEMO_ACTS[-1] == "app.console.demo:act"
