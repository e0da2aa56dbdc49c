"""Every public name is documented somewhere in docs/."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import buttress
import buttress.dashboards
import buttress.events
import buttress.gunicorn
import buttress.integrations
import buttress.testing

from .test_public_api import PUBLIC_MODULES as ALL_PUBLIC

DOCS = Path(__file__).resolve().parents[1] / "docs"
# buttress.names is left out: its constants are checked against docs/metrics.md by
# tests/telemetry/test_names.py, value by value.
PUBLIC_MODULES: list[ModuleType] = [m for m in ALL_PUBLIC if m is not buttress.names]
# Pages for contributors may name private modules; pages for users may not.
CONTRIBUTOR_PAGES = {"development.md", "architecture.md"}


def _documented_names() -> set[str]:
    text = "\n".join(p.read_text() for p in DOCS.glob("**/*.md"))
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", text))


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_name_is_documented(module: ModuleType) -> None:
    documented = _documented_names()
    missing = sorted(n for n in module.__all__ if n not in documented and n != "__version__")
    assert missing == []


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    assert [p for p in pages if f"({p})" not in index] == []


def test_no_user_page_points_at_a_private_module() -> None:
    private = re.compile(r"buttress(?:\.[a-z]\w*)*\._[a-z]\w*|buttress/\w+/_\w+\.py")
    found = [
        f"{page.name}: {match}"
        for page in sorted(DOCS.glob("**/*.md"))
        if page.name not in CONTRIBUTOR_PAGES
        for match in private.findall(page.read_text())
    ]
    assert found == []
