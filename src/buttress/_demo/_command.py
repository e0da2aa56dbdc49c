"""``buttress demo``'s command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 3600: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Declare the demo's options; returns the runner."""
    parser.add_argument(
        "--duration", type=_positive, default=60.0, help="seconds of traffic (default 60)"
    )
    parser.add_argument(
        "--rate", type=_positive, default=40.0, help="requests per second (default 40)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="the service's port on 127.0.0.1 (default: free)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="artifact folder (default ./buttress-demo-TIME)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain periodic lines instead of the live view"
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also start a local Prometheus scraping the service (when one is installed)",
    )
    return _run


def _run(args: argparse.Namespace) -> int:
    # Imported here: the demo needs the `demo` extra (uvicorn, starlette, httpx, rich).
    try:
        from ._run import DemoOptions, run
    except ImportError as error:
        print(f"buttress demo needs the demo extra: pip install 'buttress[demo]' ({error})")
        return 2
    run(
        DemoOptions(
            duration=args.duration,
            rate=args.rate,
            port=args.port,
            out=args.out,
            plain=args.plain,
            prometheus=args.prometheus,
        )
    )
    return 0
