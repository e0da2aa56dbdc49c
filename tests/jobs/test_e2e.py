"""One request, across processes: uvicorn -> Celery (real worker, real Redis) -> upstream.

The trace, the request id and the deadline that the client's request carries reach the
upstream the job calls, checked in the spans the three processes export to a real OTLP
receiver, in their JSON logs, and in what the upstream saw.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from buttress import names as n
from tests._services import RedisServer, free_port, stop_process, wait_for_port
from tests.telemetry._otlp import OTLPReceiver, attributes

from ._workers import ROOT, Worker, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUEST_ID = "e2e-request-1"


def _otel_env(receiver: OTLPReceiver, service: str, broker: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "JOBS_BROKER": broker,
    }


class _Server:
    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        import os

        self.port = free_port()
        self._log = log.open("wb")
        self.log = log
        argv = [
            sys.executable, "-m", "uvicorn", f"tests.jobs.e2e_services:{app}", "--host",
            "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, timeout=30)

    def lines(self, event: str) -> list[dict[str, Any]]:
        found = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{") and json.loads(raw).get("event") == event:
                found.append(json.loads(raw))
        return found

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


@pytest.fixture
def services(redis_binary: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with RedisServer(redis_binary) as broker, OTLPReceiver() as receiver:
        started: list[Any] = []
        try:
            upstream = _Server(
                "upstream_app", _otel_env(receiver, "upstream", broker.url), tmp_path / "up.log"
            )
            started.append(upstream)
            web = _Server("web_app", _otel_env(receiver, "web", broker.url), tmp_path / "web.log")
            started.append(web)
            worker = Worker(
                broker.url, tmp_path, "e2e", **_otel_env(receiver, "worker", broker.url)
            )
            started.append(worker)
            yield {
                "broker": broker,
                "receiver": receiver,
                "web": web,
                "upstream": upstream,
                "worker": worker,
            }
        finally:
            for service in reversed(started):
                service.stop()


def test_one_trace_request_id_and_deadline_span_request_job_and_upstream(
    services: dict[str, Any],
) -> None:
    import redis

    web, upstream, worker = services["web"], services["upstream"], services["worker"]
    receiver: OTLPReceiver = services["receiver"]
    headers = {
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
        "X-Request-ID": REQUEST_ID,
        "X-Buttress-Deadline": "30",
    }
    url = f"http://127.0.0.1:{upstream.port}/seen"
    response = httpx.post(
        f"http://127.0.0.1:{web.port}/enqueue", params={"url": url}, headers=headers
    )
    assert response.status_code == 200
    task_id = response.json()["task"]

    store = redis.Redis.from_url(services["broker"].url, decode_responses=True)
    [raw] = wait_until(lambda: store.lrange("e2e:seen", 0, -1), what="the upstream call")
    store.close()
    seen = json.loads(raw)
    assert seen["request_id"] == REQUEST_ID
    # The budget the client gave (30 s) is what the upstream got, less what was spent.
    assert 0 < float(seen["deadline_header"]) < 30
    assert 0 < seen["remaining"] <= float(seen["deadline_header"])

    def spans() -> dict[tuple[str, str], Any]:
        found: dict[tuple[str, str], Any] = {}
        for resource, span in receiver.spans():
            found[(resource["service.name"], span.name)] = span
        wanted = {
            ("web", "POST /enqueue"),
            ("web", "send jobs.call_upstream"),
            ("worker", "process jobs.call_upstream"),
            ("worker", "GET"),
            ("upstream", "GET /seen"),
        }
        return found if wanted <= found.keys() else {}

    found = wait_until(spans, what="the spans of all three services")
    chain = [
        found[("web", "POST /enqueue")],
        found[("web", "send jobs.call_upstream")],
        found[("worker", "process jobs.call_upstream")],
        found[("worker", "GET")],
        found[("upstream", "GET /seen")],
    ]
    assert {span.trace_id.hex() for span in chain} == {TRACE_ID}
    # Each span is the child of the one before: one unbroken trace across three processes.
    for parent, child in itertools.pairwise(chain):
        assert child.parent_span_id == parent.span_id
    consumer = attributes(chain[2].attributes)
    assert consumer[n.ATTR_MESSAGING_SYSTEM] == "celery"
    assert consumer[n.ATTR_MESSAGING_MESSAGE_ID] == task_id
    assert consumer[n.ATTR_REQUEST_ID] == REQUEST_ID
    for span in (chain[0], chain[4]):
        assert attributes(span.attributes)[n.ATTR_REQUEST_ID] == REQUEST_ID

    [job_line] = wait_until(lambda: worker.lines(n.EVENT_MESSAGE), what="the job's log line")
    assert job_line[n.LOG_KEY_REQUEST_ID] == REQUEST_ID
    assert job_line[n.LOG_KEY_TRACE_ID] == TRACE_ID
    assert job_line[n.LABEL_OUTCOME] == n.JOB_SUCCESS
    for service in (web, upstream):
        [access] = wait_until(
            lambda s=service: s.lines(n.EVENT_ACCESS),  # type: ignore[misc]
            what="access lines",
        )
        assert access[n.LOG_KEY_REQUEST_ID] == REQUEST_ID
        assert access[n.LOG_KEY_TRACE_ID] == TRACE_ID
