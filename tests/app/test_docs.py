"""The README links every page under docs/, and relative links between the docs resolve."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def test_readme_links_every_doc_page() -> None:
    readme = REPO / "README.md"
    linked = {(readme.parent / m).resolve() for m in LINK.findall(readme.read_text())}
    missing = [p.name for p in sorted((REPO / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"link these from README.md's Docs list: {missing}"


def test_relative_doc_links_resolve() -> None:
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" not in target and not (page.parent / target).is_file():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken
