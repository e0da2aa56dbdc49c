"""``import buttress`` stays cheap: no SDK, HTTP client, Redis client or web framework."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("opentelemetry.sdk", "httpx", "redis", "starlette", "fastapi", "flask", "django")


def _imported_modules(statement: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules


def test_import_buttress_imports_no_heavy_module() -> None:
    modules = _imported_modules("import buttress, buttress.events, buttress.testing")
    assert "buttress" in modules  # the parse works: otherwise this test could not fail
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_the_check_sees_heavy_modules() -> None:
    # The same measurement must notice a heavy import, or the test above proves nothing.
    assert "json.decoder" in _imported_modules("import json")
