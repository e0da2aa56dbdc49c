"""``buttress workers -- COMMAND``: empty the metrics directory, then become the server.

``uvicorn --workers N`` has no hook that runs when its supervisor starts, so this runs
first, in the same process: it empties ``PROMETHEUS_MULTIPROC_DIR`` safely (creating it
when missing) and then replaces itself with the command, which keeps the pid, the
signals and the exit status of a server started directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["add_command"]


def add_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="the metrics directory (default: $PROMETHEUS_MULTIPROC_DIR); exported to COMMAND",
    )
    parser.add_argument(
        "server", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the server to run"
    )
    return _run


def _run(args: argparse.Namespace) -> int:
    from .telemetry._multiprocess import clear_multiprocess_dir

    command = list(args.server)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("buttress workers: give the server command after --", file=sys.stderr)
        return 2
    directory = args.dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        print("buttress workers: set PROMETHEUS_MULTIPROC_DIR or give --dir", file=sys.stderr)
        return 2
    try:
        os.makedirs(directory, exist_ok=True)
        clear_multiprocess_dir(directory)
    except (ConfigurationError, OSError) as exc:
        print(f"buttress workers: {exc}", file=sys.stderr)
        return 2
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"buttress workers: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
