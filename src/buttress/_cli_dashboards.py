"""``buttress dashboards``: list and export the bundled Grafana dashboards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["add_command"]


def add_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="print the bundled dashboards' names (their uids)")
    export = actions.add_parser("export", help="write the dashboards as JSON files into DIR")
    export.add_argument("directory", metavar="DIR", type=Path)
    export.add_argument(
        "--only", action="append", metavar="NAME", help="export only this dashboard (repeatable)"
    )
    return _run


def _run(args: argparse.Namespace) -> int:
    from . import dashboards

    if args.action == "list":
        for name in dashboards.names():
            print(name)
        return 0
    try:
        paths = dashboards.export(args.directory, only=args.only)
    except ConfigurationError as exc:
        print(f"buttress dashboards: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"buttress dashboards: cannot write to {args.directory}: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    return 0
