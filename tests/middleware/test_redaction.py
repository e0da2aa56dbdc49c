"""Query redaction by pattern, and bounded status labels, on a real uvicorn server.

Every secret spelling below reaches a real server and, through the transport, a real
upstream: its value is in no span attribute (server ``url.query``, client ``url.full``)
and no access log line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from buttress import ConfigurationError
from buttress._http import Redactor, redact_query, status_label
from buttress.httpx import AsyncResilientTransport
from buttress.middleware import ASGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi, serve_asgi
from ._upstream import Upstream

# One key per pattern of the defaults, and the spellings an exact list used to miss.
SECRET_KEYS = [
    "token", "secret", "password", "passwd", "pwd", "key", "auth", "session", "signature",
    "credential", "jwt", "bearer", "cookie", "auth_token", "private_token", "sessionid",
    "access-token", "token[]", "token%20", "%74oken", "%2574oken", "X-Amz-Signature",
    "API_KEY", "client_secret", "sig", "code", "my+password", "Refresh_Token",
]  # fmt: skip


def _query(separator: str = "&") -> str:
    pairs = [f"{key}=s3cr3t{i}" for i, key in enumerate(SECRET_KEYS)]
    return separator.join(["page=2", *pairs, "q=shoes"])


@pytest.mark.parametrize("separator", ["&", ";"])
def test_every_pattern_is_redacted(separator: str) -> None:
    redacted = redact_query(_query(separator))
    assert "s3cr3t" not in redacted
    assert redacted.startswith(f"page=2{separator}token=REDACTED")
    assert redacted.endswith(f"{separator}q=shoes")
    assert redacted.count("REDACTED") == len(SECRET_KEYS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a=1&b=2", "a=1&b=2"),
        ("flag&%74oken=t&q=a+b", "flag&%74oken=REDACTED&q=a+b"),  # the rest kept as sent
        ("token", "token"),  # no value, nothing to hide
        ("=x&token=", "=x&token=REDACTED"),
    ],
)
def test_redaction_keeps_the_rest_as_sent(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_redaction_is_configurable() -> None:
    custom = Redactor(["otp", "*pin*"])
    assert (
        custom("otp=1&OTP=2&pincode=3&token=4")
        == "otp=REDACTED&OTP=REDACTED&pincode=REDACTED&token=4"
    )
    assert Redactor([])("token=4") == "token=4"
    with pytest.raises(ConfigurationError, match="'token'"):
        Redactor("token")


@pytest.mark.parametrize(
    ("status", "label"),
    [(100, "100"), (200, "200"), (599, "599"), (600, "_OTHER"), (999, "_OTHER"), (99, "_OTHER"),
     (0, "_OTHER"), (-1, "_OTHER"), (10**9, "_OTHER")],
)  # fmt: skip
def test_status_labels_are_bounded(status: int, label: str) -> None:
    assert status_label(status) == label


async def test_an_app_answering_any_integer_grows_no_series(telemetry: Telemetry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = int(scope["path"].strip("/"))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = ASGIMiddleware(app, **telemetry.options())
    for status in range(100, 1000):
        await call_asgi(middleware, f"/{status}")
    statuses = {dict(labels)["http_response_status_code"] for labels in telemetry.series()}
    assert len(statuses) == 501
    assert names.STATUS_OTHER in statuses
    assert all(s == names.STATUS_OTHER or 100 <= int(s) <= 599 for s in statuses)


def test_secrets_are_in_no_span_and_no_log_line(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    with Upstream() as upstream:
        transport = AsyncResilientTransport(
            tracer_provider=telemetry.provider, metrics_registry=telemetry.registry
        )
        client = httpx.AsyncClient(transport=transport)

        async def search(request: Request) -> Response:
            query = request.url.query
            await client.get(f"{upstream.url}/ok?{query}")
            return PlainTextResponse("ok")

        app = ASGIMiddleware(Starlette(routes=[Route("/search", search)]), **telemetry.options())
        with serve_asgi(app) as url:
            for separator in ("&", ";"):
                response = httpx.get(f"{url}/search?{_query(separator)}")
                assert response.status_code == 200
        assert len(upstream.seen) == 2  # the upstream got the real query, as sent
    recorded = [
        json.dumps(dict(span.attributes or {}), default=str) for span in telemetry.spans()
    ] + [json.dumps(vars(r), default=str) for r in caplog.records if r.name == "buttress.access"]
    assert len(recorded) == 6  # two server spans, two client spans, two log lines
    for text in recorded:
        assert "s3cr3t" not in text
        assert "REDACTED" in text
    client_urls = [
        str((span.attributes or {}).get(names.ATTR_URL_FULL))
        for span in telemetry.spans()
        if names.ATTR_URL_FULL in (span.attributes or {})
    ]
    assert len(client_urls) == 2
    assert all("page=2" in u and "q=shoes" in u for u in client_urls)


def test_redaction_patterns_are_an_option_of_both_sides(telemetry: Telemetry) -> None:
    with Upstream() as upstream:
        transport = AsyncResilientTransport(
            tracer_provider=telemetry.provider,
            metrics_registry=telemetry.registry,
            redact_query_keys=["otp"],
        )
        client = httpx.AsyncClient(transport=transport)

        async def hop(request: Request) -> Response:
            await client.get(f"{upstream.url}/ok?otp=1&token=2")
            return PlainTextResponse("ok")

        app = ASGIMiddleware(
            Starlette(routes=[Route("/", hop)]),
            redact_query_keys=["otp"],
            **telemetry.options(),
        )
        with serve_asgi(app) as url:
            httpx.get(f"{url}/?otp=1&token=2")
    queries = sorted(
        str(attrs.get(names.ATTR_URL_QUERY) or attrs.get(names.ATTR_URL_FULL))
        for attrs in (dict(s.attributes or {}) for s in telemetry.spans())
    )
    assert queries[0].endswith("?otp=REDACTED&token=2")
    assert queries[1] == "otp=REDACTED&token=2"
