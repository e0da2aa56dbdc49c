"""Grafana dashboards generated from the metric names, shipped as package data.

``names()`` lists them, ``load(name)`` returns one as a dict, ``export(directory)``
writes them as JSON files that import into Grafana as-is or load through file
provisioning (the datasource is a template variable, not an import input).
"""

from __future__ import annotations

import json
import pathlib
from importlib import resources
from typing import Any

from .. import _errors

__all__ = ["export", "load", "names"]

_PACKAGE_DIR = "json"


def names() -> list[str]:
    """The bundled dashboards' names, which are also their Grafana uids."""
    folder = resources.files(__name__).joinpath(_PACKAGE_DIR)
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def _text(name: str) -> str:
    if name not in names():
        raise _errors.ConfigurationError(f"no bundled dashboard {name!r}; choose from {names()}")
    return resources.files(__name__).joinpath(_PACKAGE_DIR, f"{name}.json").read_text("utf-8")


def load(name: str) -> dict[str, Any]:
    """The dashboard ``name`` (see :func:`names`) as Grafana dashboard JSON."""
    dashboard: dict[str, Any] = json.loads(_text(name))
    return dashboard


def export(directory: str | pathlib.Path, *, only: list[str] | None = None) -> list[pathlib.Path]:
    """Write the dashboards (or ``only`` those named) into ``directory``; return the paths.

    The directory is created if needed; files of the same name are overwritten.
    """
    chosen = names() if only is None else list(only)
    texts = {name: _text(name) for name in chosen}  # every name checked before writing
    target = pathlib.Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = target / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
