"""The ``buttress`` command (also ``python -m buttress``).

Each command lives in its own module, imported when the command line is parsed and
never by ``import buttress``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    help: str
    # "module:function" of a function taking the subparser and returning the runner.
    target: str


_Runner: TypeAlias = "Callable[[argparse.Namespace], int]"

_COMMANDS = (
    _Command(
        "demo",
        "run a live demo: a service, a flaky upstream, traffic and an outage",
        "._demo._command:add_arguments",
    ),
    _Command(
        "rules",
        "write Prometheus SLO recording rules and burn-rate alerts",
        "._cli_rules:add_command",
    ),
    _Command("dashboards", "export the bundled Grafana dashboards", "._cli_dashboards:add_command"),
    _Command(
        "workers",
        "empty PROMETHEUS_MULTIPROC_DIR, then run a multi-worker server (uvicorn --workers)",
        "._cli_workers:add_command",
    ),
)


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, _Runner]]:
    parser = argparse.ArgumentParser(
        prog="buttress",
        description="Resilient, observable Python back-end services.",
        epilog="Run 'buttress COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"buttress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    runners: dict[str, _Runner] = {}
    for command in _COMMANDS:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        module_name, _, function = command.target.partition(":")
        module = importlib.import_module(module_name, __package__)
        runners[command.name] = getattr(module, function)(sub_parser)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser, runners = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return runners[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
