"""Jinja2 templates and static assets of the console (package data: templates/, static/).

The page and the live updates render the same section templates, so what the first paint shows and what a
refresh swaps in cannot drift apart.
"""

from __future__ import annotations

import hashlib
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.templating import Jinja2Templates

from app.console.view import num

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
#: sections a refresh may swap, in page order
SECTIONS = ("summary", "map", "decisions", "plans", "money")


def _bar(value: Any) -> int:
    """0..100 (clamped, rounded) for the width of a bar."""
    try:
        return max(0, min(100, round(float(value))))
    except (TypeError, ValueError):
        return 0


def _usd(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # templates are package data: no stat() per render
    )
    env.filters["bar"] = _bar
    env.filters["usd"] = _usd
    env.filters["num"] = num
    env.globals["asset"] = asset_url
    return Jinja2Templates(env=env)


@cache
def asset_version(name: str) -> str:
    return hashlib.blake2b((STATIC / name).read_bytes(), digest_size=6).hexdigest()


def asset_url(base: str, name: str) -> str:
    """Versioned URL of a static file: browsers may keep it an hour, a new release changes the URL."""
    return f"{base}/static/{name}?v={asset_version(name)}"


def static_files() -> dict[str, Path]:
    return {p.name: p for p in STATIC.iterdir() if p.is_file()}


def render_section(name: str, vm: dict[str, Any]) -> str:
    return templates().get_template(f"sections/{name}.html").render(vm=vm)


def render_fragment(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)


def digest(html: str) -> str:
    return hashlib.blake2b(html.encode(), digest_size=8).hexdigest()
