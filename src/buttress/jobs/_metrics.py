"""The job and consumer instruments, one set per Prometheus registry.

prometheus_client's own instruments, so that worker processes (Celery's prefork pool,
several consumers on one host) merge under ``PROMETHEUS_MULTIPROC_DIR``. Children are
cached by their label tuple: recording is a dict look-up and one ``observe``/``inc``.
Every label value comes from configuration (consumer and task names, outcomes, error
class names), never from a message, so the number of series stays bounded.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..telemetry import _names as n
from ..telemetry._metrics import PerRegistry, target_registry

__all__ = ["JobMetrics", "job_metrics"]

_S, _D = n.LABEL_MESSAGING_SYSTEM, n.LABEL_MESSAGING_DESTINATION


class _Children:
    __slots__ = ("_children", "_lock", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def child(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            with self._lock:
                child = self._children[labels] = self._metric.labels(*labels)
        return child


class JobMetrics:
    """Every jobs instrument on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.duration = _Children(
            Histogram(
                n.MESSAGING_PROCESS_DURATION,
                "Duration of processing one delivered message, by outcome.",
                (_S, _D, n.LABEL_OUTCOME, n.LABEL_ERROR_TYPE),
                buckets=n.DURATION_BUCKETS,
                registry=r,
            )
        )
        self.redeliveries = _Children(
            Counter(
                n.MESSAGE_REDELIVERIES,
                "Messages delivered again (a retry, or a redelivery by the broker).",
                (_S, _D),
                registry=r,
            )
        )
        self.dead_lettered = _Children(
            Counter(
                n.MESSAGES_DEAD_LETTERED,
                "Messages given up on and sent to the dead-letter path.",
                (_S, _D, n.LABEL_REASON),
                registry=r,
            )
        )
        self.idempotency = _Children(
            Counter(
                n.IDEMPOTENCY_CHECKS,
                "Idempotency checks of delivered messages, by outcome.",
                (_D, n.LABEL_OUTCOME),
                registry=r,
            )
        )
        self.lag = _Children(
            Gauge(
                n.CONSUMER_LAG,
                "Messages in the stream not yet delivered to the consumer group.",
                (_S, _D, n.LABEL_CONSUMER_GROUP),
                registry=r,
                multiprocess_mode="livemax",
            )
        )
        self.pending = _Children(
            Gauge(
                n.CONSUMER_PENDING,
                "Messages delivered to the consumer group and not yet acknowledged.",
                (_S, _D, n.LABEL_CONSUMER_GROUP),
                registry=r,
                multiprocess_mode="livemax",
            )
        )
        self.claimed = _Children(
            Counter(
                n.MESSAGES_CLAIMED,
                "Stuck messages claimed from another consumer of the group.",
                (_S, _D, n.LABEL_CONSUMER_GROUP),
                registry=r,
            )
        )


_jobs = PerRegistry(JobMetrics)


def job_metrics(registry: CollectorRegistry | None = None) -> JobMetrics:
    """The instruments on ``registry`` (the configured target registry when ``None``)."""
    return _jobs.get(registry if registry is not None else target_registry())
