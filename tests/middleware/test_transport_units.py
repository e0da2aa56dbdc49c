"""The transport's pieces without a network: header format, URL redaction, options, names."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import buttress
import buttress.httpx
from buttress._deadline_header import MAX_DEADLINE, format_deadline, parse_deadline
from buttress.httpx import AsyncResilientTransport, ResilientTransport
from buttress.httpx._outbound import MAX_HOSTS, Outbound, full_url
from buttress.telemetry import _names as names
from buttress.telemetry._metrics import set_target_registry, target_registry
from buttress.testing import capture_events

# --- the deadline header -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", 1.5),
        (b"2.250", 2.25),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("0.000", 0.0),
        ("99999999", MAX_DEADLINE),
    ],
)
def test_parse_deadline_reads_plain_decimals(value: str | bytes, expected: float) -> None:
    assert parse_deadline(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "-1",
        "+1",
        "1e3",
        "inf",
        "nan",
        "1.",
        ".5",
        "1,5",
        "\uff11",
        "1.5s",
        "0x10",
        "1" * 13,
    ],
)
def test_parse_deadline_refuses_anything_else(value: str | None) -> None:
    assert parse_deadline(value) is None


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (2.5, "2.500"),
        (0.0004, "0.000"),
        (-3.0, "0.000"),
        (float("nan"), "0.000"),
        (1e9, "86400.000"),
    ],
)
def test_format_deadline(remaining: float, expected: str) -> None:
    assert format_deadline(remaining) == expected


@given(st.floats(min_value=0, max_value=MAX_DEADLINE))
def test_format_then_parse_loses_at_most_a_millisecond(remaining: float) -> None:
    parsed = parse_deadline(format_deadline(remaining))
    assert parsed is not None
    assert abs(parsed - remaining) <= 0.0005 + 1e-9


def test_the_header_name_is_the_documented_one() -> None:
    assert names.DEADLINE_HEADER == "X-Buttress-Deadline"


# --- url.full ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.test/v1/users?page=2", "https://api.test/v1/users?page=2"),
        ("http://u:p@api.test:8080/x", "http://api.test:8080/x"),
        ("https://api.test/x#frag", "https://api.test/x"),
        (
            "https://s3.test/o?X-Amz-Signature=abc&X-Amz-Credential=k&v=1",
            "https://s3.test/o?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&v=1",
        ),
        (
            "https://api.test/?token=t&token=u&flag",
            "https://api.test/?token=REDACTED&token=REDACTED&flag",
        ),
        ("https://api.test/?%74oken=t", "https://api.test/?%74oken=REDACTED"),
        ("http://[::1]:8000/a%20b", "http://[::1]:8000/a%20b"),
    ],
)
def test_full_url_is_redacted(url: str, expected: str) -> None:
    assert full_url(httpx.URL(url)) == expected


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retry_statuses": (503, 700)}, "700"),
        ({"retry_statuses": ("503",)}, "'503'"),
        ({"retry": 3}, "retry"),
        ({"hedge": "fast"}, "hedge"),
        ({"throttle": 0.5}, "throttle"),
        ({"retry": buttress.hedge()}, "retry"),
        ({"name": ""}, "''"),
        ({"request_id_header": "Ünicode"}, "Ünicode"),
    ],
)
@pytest.mark.parametrize("transport", [ResilientTransport, AsyncResilientTransport])
def test_bad_options_are_refused_by_name(
    transport: type[ResilientTransport], options: dict[str, object], named: str
) -> None:
    with pytest.raises(buttress.ConfigurationError, match=named):
        transport(**options)  # type: ignore[arg-type]


def test_one_attempt_means_no_retry_and_no_warning() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503)

    transport = ResilientTransport(httpx.MockTransport(handler), retry=None)
    with httpx.Client(transport=transport) as http, capture_events() as events:
        assert http.get("http://a.test/").status_code == 503
    assert len(sent) == 1
    assert [e for e in events if "Retry" in type(e).__name__] == []


def test_retryable_requests() -> None:
    def request(method: str, **kwargs: object) -> httpx.Request:
        return httpx.Request(method, "http://a.test/", **kwargs)  # type: ignore[arg-type]

    assert Outbound.retryable(request("GET"))
    assert Outbound.retryable(request("DELETE"))
    assert not Outbound.retryable(request("POST", content=b"x"))
    assert Outbound.retryable(request("POST", content=b"x", headers={"Idempotency-Key": "1"}))
    assert not Outbound.retryable(
        request("PUT", content=iter([b"x"]), headers={"Idempotency-Key": "1"})
    )


def test_hosts_beyond_the_cap_share_one_policy() -> None:
    transport = ResilientTransport(
        httpx.MockTransport(lambda r: httpx.Response(503)),
        retry=buttress.retry(on=buttress.httpx.RETRY_ON, attempts=2, sleep=lambda s: None),
    )
    core = transport._core
    for i in range(MAX_HOSTS):
        core.host(httpx.Request("GET", f"http://h{i}.test/"))
    with httpx.Client(transport=transport) as http, capture_events() as events:
        http.get("http://one-more.test/")
        http.get("http://and-another.test/")
    assert {e.name for e in events} == {"httpx:_OTHER"}
    assert len(core._hosts) == MAX_HOSTS + 1


# --- public names -------------------------------------------------------------------------------


def test_httpx_exports() -> None:
    assert buttress.httpx.__all__ == ["AsyncResilientTransport", "RETRY_ON", "ResilientTransport"]
    for name in buttress.httpx.__all__:
        assert hasattr(buttress.httpx, name)
    with pytest.raises(AttributeError):
        buttress.httpx.NoSuchThing  # noqa: B018


def test_import_buttress_middleware_does_not_import_httpx() -> None:
    code = "import sys, buttress.middleware, buttress.httpx; print('httpx' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    code = "import sys, buttress.httpx as m; m.ResilientTransport; print('httpx' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"  # the check above can see an import


def test_metrics_follow_the_configured_registry() -> None:
    transport = ResilientTransport(httpx.MockTransport(lambda r: httpx.Response(204)))
    previous = target_registry()
    first, second = CollectorRegistry(), CollectorRegistry()
    labels = {
        "http_request_method": "GET",
        "server_address": "a.test",
        "http_response_status_code": "204",
    }
    count = "http_client_request_duration_seconds_count"
    try:
        with httpx.Client(transport=transport) as http:
            set_target_registry(first)
            http.get("http://a.test/")
            set_target_registry(second)  # as configure() does, after the client was built
            http.get("http://a.test/")
    finally:
        set_target_registry(previous)
    assert first.get_sample_value(count, labels) == 1
    assert second.get_sample_value(count, labels) == 1
