"""Generate the bundled dashboards from code: ``python -m buttress.dashboards._generate``.

The JSON files under ``json/`` are this module's output, committed as package data; a
test fails when they differ from what the code generates, so run this after a change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from . import _jobs, _resilience, _service, _slo

if TYPE_CHECKING:
    from collections.abc import Callable

JSON_DIR: Final = Path(__file__).resolve().parent / "json"

BUILDERS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    _service.UID: _service.build,
    _slo.UID: _slo.build,
    _resilience.UID: _resilience.build,
    _jobs.UID: _jobs.build,
}


def render(dashboard: dict[str, Any]) -> str:
    """The JSON text shipped for ``dashboard``: stable key order, two-space indent."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {f"{uid}.json": render(build()) for uid, build in BUILDERS.items()}


def main(directory: Path = JSON_DIR) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (directory / name).write_text(text, encoding="utf-8")
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
