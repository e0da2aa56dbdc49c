"""Typed call sites of the httpx transports: mypy --strict checks the options' types.

They also run, so the examples in docs/httpx.md stay true.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import assert_type

import httpx

import buttress
from buttress.httpx import RETRY_ON, AsyncResilientTransport, ResilientTransport


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def test_sync_transport_options() -> None:
    transport = ResilientTransport(
        httpx.MockTransport(_ok),
        retry=buttress.retry(on=RETRY_ON, attempts=4, deadline=timedelta(seconds=10)),
        retry_statuses={503},
        hedge=buttress.hedge(delay=timedelta(milliseconds=50)),
        throttle=lambda name: buttress.throttle(name=name, k=1.5),
        breaker=partial(buttress.CircuitBreaker, failure_rate=0.5, window=50),
        bulkhead=buttress.Bulkhead("outbound", max_concurrent=5),
    )
    with httpx.Client(transport=transport) as client:
        response = client.get("http://api.test/")
    assert_type(response, httpx.Response)
    assert response.status_code == 200


async def test_async_transport_options() -> None:
    transport = AsyncResilientTransport(
        httpx.MockTransport(_ok),
        breaker=buttress.CircuitBreaker("shared"),
        bulkhead=lambda name: buttress.Bulkhead(name, max_concurrent=2),
        request_id_header=None,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://api.test/")
    assert response.status_code == 200


def test_boundary_options() -> None:
    transport = ResilientTransport(
        httpx.MockTransport(_ok),
        internal_hosts=["*.svc.cluster.local", "10.0.0.0/8"],
        propagate_trace="all",
        redact_query_keys=["*token*", "otp"],
    )
    with httpx.Client(transport=transport) as client:
        assert client.get("http://pricing.svc.cluster.local/").status_code == 200
