"""Print pip constraints that pin every ``>=`` bound in pyproject.toml to that lowest version.

``make compat-oldest`` installs the test extra under these constraints in a second venv, so
the compatibility matrix also runs on the oldest versions pyproject says it supports.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("httpx", "redis", "otlp", "django", "yaml", "demo", "test")
BOUND = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def main() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    declared = list(project["project"]["dependencies"])
    for extra in EXTRAS:
        declared += project["project"]["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in declared:
        match = BOUND.match(requirement)
        if match and match[1].lower() != "buttress":
            name = match[1].lower()
            # Two bounds for one package: the higher is the lowest version both allow.
            if name not in pins or _version(match[2]) > _version(pins[name]):
                pins[name] = match[2]
    sys.stdout.write("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))


def _version(text: str) -> tuple[int | str, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"[.]", text))


if __name__ == "__main__":
    main()
