"""The jobs dashboard: messages processed, failures, latency, redeliveries, consumer groups.

A worker has no HTTP requests, so this is a dashboard of its own, with its own job,
instance and destination variables read from the jobs histogram.
"""

from __future__ import annotations

from typing import Any, Final

from ..telemetry import _names as n
from ._grafana import (
    RATE,
    Panel,
    alert_annotation,
    dashboard,
    datasource_variable,
    query_variable,
    selector,
)
from ._grafana import variable_matcher as var

UID: Final = "buttress-jobs"

COUNT: Final = n.MESSAGING_PROCESS_DURATION + "_count"
BUCKET: Final = n.MESSAGING_PROCESS_DURATION + "_bucket"
# Outcomes that end a message (a "retry" delivery comes back, a "duplicate" did nothing).
ENDED: Final = (n.LABEL_OUTCOME, "=~", f"{n.JOB_SUCCESS}|{n.JOB_DEAD_LETTER}|{n.JOB_EXPIRED}")
FAILED: Final = (n.LABEL_OUTCOME, "=~", f"{n.JOB_DEAD_LETTER}|{n.JOB_EXPIRED}")
WORKED: Final = (n.LABEL_OUTCOME, "!=", n.JOB_DUPLICATE)
DEST: Final = n.LABEL_MESSAGING_DESTINATION


def _series(metric: str, *extra: tuple[str, str, str]) -> str:
    return metric + selector(
        var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance"), var(DEST, "destination"), *extra
    )


def _rate(series: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series}[{RATE}]))"


def _failure_ratio(by: str = "") -> str:
    ended = _rate(_series(COUNT, ENDED), by)
    # "or 0 * ended": a destination that never failed shows 0, not a gap.
    return f"({_rate(_series(COUNT, FAILED), by)}\nor\n0 * {ended})\n/\n{ended}"


def _quantile(q: float, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({_series(BUCKET, WORKED)}[{RATE}])))"


def build() -> dict[str, Any]:
    le = n.LABEL_LE
    dest_legend = f"{{{{{DEST}}}}}"
    group = n.LABEL_CONSUMER_GROUP
    group_legend = f"{{{{{DEST}}}}} / {{{{{group}}}}}"
    latency_thresholds = [("green", None), ("orange", 1.0), ("red", 5.0)]
    failure_thresholds = [("green", None), ("orange", 0.001), ("red", 0.01)]
    overview = [
        Panel(
            "stat",
            "Messages processed",
            "Deliveries processed per second, every outcome.",
            [(_rate(_series(COUNT)), "messages")],
            "ops",
            width=6,
            height=5,
        ),
        Panel(
            "stat",
            "Failure ratio",
            "Share of messages that ended dead-lettered or expired, among those that ended "
            "(retried deliveries and duplicates are neither good nor bad).",
            [(_failure_ratio(), "failed")],
            "percentunit",
            width=6,
            height=5,
            thresholds=failure_thresholds,
        ),
        Panel(
            "stat",
            "p95 processing time",
            "95th percentile of processing time, duplicates left out.",
            [(_quantile(0.95, le), "p95")],
            "s",
            width=6,
            height=5,
            thresholds=latency_thresholds,
        ),
        Panel(
            "stat",
            "Dead letters",
            "Messages given up on per second.",
            [(_rate(_series(n.MESSAGES_DEAD_LETTERED)), "dead letters")],
            "ops",
            width=6,
            height=5,
            thresholds=[("green", None), ("red", 0.001)],
        ),
    ]
    by_destination = [
        Panel(
            "timeseries",
            "Deliveries by outcome",
            "Deliveries per second by outcome: success, retry, dead_letter, duplicate, expired.",
            [(_rate(_series(COUNT), n.LABEL_OUTCOME), f"{{{{{n.LABEL_OUTCOME}}}}}")],
            "ops",
            stack=True,
        ),
        Panel(
            "timeseries",
            "Failure ratio by destination",
            "Share of messages that ended dead-lettered or expired, by queue, stream or task.",
            [(_failure_ratio(DEST), dest_legend)],
            "percentunit",
            thresholds=failure_thresholds,
        ),
        Panel(
            "timeseries",
            "Processing time p95 by destination",
            "95th percentile of processing time by destination, duplicates left out.",
            [(_quantile(0.95, f"{le}, {DEST}"), dest_legend)],
            "s",
            thresholds=latency_thresholds,
        ),
        Panel(
            "timeseries",
            "Redeliveries by destination",
            "Deliveries after the first per second: retries, broker redeliveries, claims. "
            "A rise means handlers fail or workers die.",
            [(_rate(_series(n.MESSAGE_REDELIVERIES), DEST), dest_legend)],
            "ops",
        ),
        Panel(
            "timeseries",
            "Dead letters by reason",
            "Messages given up on per second: max_deliveries, non_retryable, expired.",
            [
                (
                    _rate(_series(n.MESSAGES_DEAD_LETTERED), f"{DEST}, {n.LABEL_REASON}"),
                    f"{{{{{DEST}}}}} {{{{{n.LABEL_REASON}}}}}",
                )
            ],
            "ops",
            stack=True,
        ),
        Panel(
            "timeseries",
            "Idempotency checks by outcome",
            "Run-once claims per second: first, duplicate, in_progress, taken_over (a "
            "crashed run's lease ran out).",
            [
                (
                    _rate(_series(n.IDEMPOTENCY_CHECKS), n.LABEL_OUTCOME),
                    f"{{{{{n.LABEL_OUTCOME}}}}}",
                )
            ],
            "ops",
            stack=True,
        ),
    ]
    groups = [
        Panel(
            "timeseries",
            "Consumer lag",
            "Messages in the stream not yet delivered to the consumer group.",
            [(f"max by ({DEST}, {group}) ({_series(n.CONSUMER_LAG)})", group_legend)],
            "short",
            width=8,
        ),
        Panel(
            "timeseries",
            "Pending messages",
            "Messages delivered to the group and not yet acknowledged.",
            [(f"max by ({DEST}, {group}) ({_series(n.CONSUMER_PENDING)})", group_legend)],
            "short",
            width=8,
        ),
        Panel(
            "timeseries",
            "Claimed stuck messages",
            "Messages per second taken over from a consumer that left them pending too long.",
            [(_rate(_series(n.MESSAGES_CLAIMED), f"{DEST}, {group}"), group_legend)],
            "ops",
            width=8,
        ),
    ]
    instance_series = COUNT + selector(var(n.LABEL_JOB, "job"))
    destination_series = COUNT + selector(
        var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance")
    )
    return dashboard(
        uid=UID,
        title="buttress / Jobs",
        description="Background jobs and message consumers observed by buttress.jobs: "
        "messages processed, failures, processing time, redeliveries, dead letters, "
        "run-once claims and consumer groups.",
        variables=[
            datasource_variable(),
            query_variable("job", n.LABEL_JOB, COUNT, title="Job"),
            query_variable("instance", n.LABEL_INSTANCE, instance_series, title="Instance"),
            query_variable("destination", DEST, destination_series, title="Destination"),
        ],
        rows=[
            ("Overview", overview),
            ("Destinations", by_destination),
            ("Consumer groups", groups),
        ],
        annotations=[alert_annotation(var(n.LABEL_SLO_SERVICE, "job"))],
    )
