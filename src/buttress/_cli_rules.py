"""``buttress rules SLOFILE``: Prometheus recording rules and burn-rate alerts for SLOs."""

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
    parser.add_argument("slo_file", metavar="SLOFILE", type=Path, help="YAML file of SLOs")
    parser.add_argument(
        "-o", "--output", type=Path, help="write the rules to this file (default: stdout)"
    )
    parser.add_argument(
        "--buckets",
        default="default",
        help="the histogram boundaries the service uses: 'default' (buttress's defaults), "
        "'with-thresholds' (defaults plus every latency threshold, as "
        "buckets_with_thresholds gives), or comma-separated seconds",
    )
    parser.add_argument(
        "--grafana-url", default="", help="Grafana base URL for the dashboard link in alerts"
    )
    return _run


def _buckets(value: str, thresholds: list[float]) -> tuple[float, ...]:
    from .telemetry._names import DURATION_BUCKETS

    if value == "default":
        return tuple(DURATION_BUCKETS)
    if value == "with-thresholds":
        return tuple(sorted({*DURATION_BUCKETS, *thresholds}))
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ConfigurationError(
            f"--buckets {value!r}: 'default', 'with-thresholds' or comma-separated seconds"
        ) from None


def _run(args: argparse.Namespace) -> int:
    from .telemetry._rules import render_rules, slo_rules
    from .telemetry._slo import load_slos

    try:
        slos = load_slos(args.slo_file)
        thresholds = [s.threshold for s in slos if s.threshold is not None]
        rules = slo_rules(
            slos, buckets=_buckets(args.buckets, thresholds), grafana_url=args.grafana_url
        )
    except ConfigurationError as exc:
        print(f"buttress rules: {exc}", file=sys.stderr)
        if "bucket boundary" in str(exc):
            print(
                "buttress rules: if the service builds its buckets with "
                "buckets_with_thresholds(slos), pass --buckets with-thresholds",
                file=sys.stderr,
            )
        return 2
    text = render_rules(rules)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"buttress rules: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {len(rules['groups'])} rule groups for {len(slos)} SLOs to {args.output}")
    return 0
