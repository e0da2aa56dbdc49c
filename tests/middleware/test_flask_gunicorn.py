"""Flask behind WSGIMiddleware, served by a real gunicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from buttress.telemetry import _names as names

from ._support import gunicorn

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Server:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp

    def lines(self, name: str) -> list[dict[str, Any]]:
        path = self.tmp / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        # A scrape is also a barrier: the sync worker finished the previous request.
        text = httpx.get(f"{self.url}/metrics").text
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found


@pytest.fixture(scope="module")
def flask_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("flask")
    env = {
        **os.environ,
        "TEST_SPANS": str(tmp / "spans.jsonl"),
        "TEST_ACCESS_LOG": str(tmp / "access.jsonl"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with gunicorn("flask_app:app", env) as url:
        yield Server(url, tmp)


def _labels(route: str, status: str, error_type: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            {
                "http_request_method": "GET",
                "http_route": route,
                "http_response_status_code": status,
                "error_type": error_type,
            }.items()
        )
    )


def test_flask_request_is_traced_measured_logged_and_tagged(flask_server: Server) -> None:
    response = httpx.get(
        f"{flask_server.url}/users/5?password=hunter2&x=1",
        headers={"traceparent": TRACEPARENT, "X-Request-ID": "flask-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "flask-1"
    metrics = flask_server.metrics()
    key = (f"{names.HTTP_SERVER_DURATION}_count", _labels("/users/<int:user_id>", "200"))
    assert metrics[key] == 1
    size_key = (f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum", _labels("/users/<int:user_id>", "200"))
    assert metrics[size_key] == len(response.content)

    (span,) = [
        s for s in flask_server.lines("spans.jsonl") if s["attributes"]["url.path"] == "/users/5"
    ]
    assert span["name"] == "GET /users/<int:user_id>"
    assert span["trace_id"] == TRACE_ID
    attrs = span["attributes"]
    assert attrs["http.route"] == "/users/<int:user_id>"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.query"] == "password=REDACTED&x=1"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(flask_server.url.rsplit(":", 1)[1])
    assert attrs["buttress.request_id"] == "flask-1"
    assert attrs["network.protocol.version"] == "1.1"

    (line,) = [entry for entry in flask_server.lines("access.jsonl") if entry["path"] == "/users/5"]
    assert line["event"] == names.EVENT_ACCESS
    assert (line["method"], line["route"], line["status"]) == ("GET", "/users/<int:user_id>", 200)
    assert (line["request_id"], line["trace_id"]) == ("flask-1", TRACE_ID)
    assert line["service"] == "flask-test"
    assert "hunter2" not in json.dumps(line)


def test_flask_error_streaming_and_unmatched(flask_server: Server) -> None:
    boom = httpx.get(f"{flask_server.url}/boom")
    assert boom.status_code == 500
    assert len(boom.headers["x-request-id"]) == 32
    stream = httpx.get(f"{flask_server.url}/stream")
    assert stream.text == "".join(f"part {i}\n" for i in range(4))
    for i in range(10):
        assert httpx.get(f"{flask_server.url}/random/{i}").status_code == 404
    metrics = flask_server.metrics()
    assert (
        metrics[(f"{names.HTTP_SERVER_DURATION}_count", _labels("/boom", "500", "LookupError"))]
        == 1
    )
    stream_size = (f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum", _labels("/stream", "200"))
    assert metrics[stream_size] == len(stream.content)
    unmatched = (f"{names.HTTP_SERVER_DURATION}_count", _labels(names.ROUTE_UNMATCHED, "404"))
    assert metrics[unmatched] == 10
    assert not any("/random/" in dict(labels).get("http_route", "") for _, labels in metrics)
    (span,) = [s for s in flask_server.lines("spans.jsonl") if s["name"] == "GET /boom"]
    # Flask answered the exception with its own 500: the span still names it.
    assert span["status"] == "ERROR"
    assert span["attributes"]["error.type"] == "LookupError"
    assert span["events"] == ["exception"]
    (line,) = [x for x in flask_server.lines("access.jsonl") if x.get("route") == "/boom"]
    assert line["error_type"] == "LookupError"


def test_metrics_endpoint_merges_workers_in_multiprocess_mode(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("multiproc")
    metrics_dir = tmp / "prom"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "TEST_SPANS": str(tmp / "spans.jsonl"),
        "TEST_ACCESS_LOG": str(tmp / "access.jsonl"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with gunicorn("flask_app:app", env, workers=2) as url, httpx.Client(base_url=url) as client:
        for i in range(20):
            # A fresh connection each time, so both workers get some of the requests.
            assert httpx.get(f"{url}/users/{i}").status_code == 200
        text = client.get("/metrics").text
    counts = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{names.HTTP_SERVER_DURATION}_count"
    }
    assert counts[_labels("/users/<int:user_id>", "200")] == 20
    pids = {p.name for p in metrics_dir.iterdir() if p.name.startswith("histogram_")}
    assert len(pids) >= 1


def test_an_exception_after_the_first_chunk_is_an_error(flask_server: Server) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{flask_server.url}/half")
    metrics = flask_server.metrics()
    key = (f"{names.HTTP_SERVER_DURATION}_count", _labels("/half", "200", "flask_app.Broken"))
    assert metrics[key] == 1
    (span,) = [s for s in flask_server.lines("spans.jsonl") if s["name"] == "GET /half"]
    assert span["status"] == "ERROR"
    assert span["attributes"]["error.type"] == "flask_app.Broken"
    assert span["attributes"]["http.response.status_code"] == 200
    (line,) = [x for x in flask_server.lines("access.jsonl") if x.get("route") == "/half"]
    assert line["error_type"] == "flask_app.Broken"


def test_a_stream_cut_by_the_client_is_a_disconnect(flask_server: Server) -> None:
    host, port = flask_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /big HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        sock.recv(1024)  # then the client gives up
    metrics = flask_server.metrics()  # the sync worker is done with /big by now
    key = (
        f"{names.HTTP_SERVER_DURATION}_count",
        _labels("/big", "200", names.ERROR_CLIENT_DISCONNECT),
    )
    assert metrics[key] == 1
    (span,) = [s for s in flask_server.lines("spans.jsonl") if s["name"] == "GET /big"]
    assert span["attributes"]["error.type"] == names.ERROR_CLIENT_DISCONNECT
    (line,) = [x for x in flask_server.lines("access.jsonl") if x.get("route") == "/big"]
    assert line["disconnected"] is True
    assert line["response_size"] < 400 * 65536


def test_a_405_keeps_the_route_it_matched(flask_server: Server) -> None:
    assert httpx.delete(f"{flask_server.url}/users/5").status_code == 405
    metrics = flask_server.metrics()
    labels = dict(_labels("/users/<int:user_id>", "405"), http_request_method="DELETE")
    key = (f"{names.HTTP_SERVER_DURATION}_count", tuple(sorted(labels.items())))
    assert metrics[key] == 1
