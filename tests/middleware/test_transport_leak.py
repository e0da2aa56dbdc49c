"""No connection leaks: 10,000 requests against a failing upstream keep the pool flat.

The breaker is off here, so that every request reaches the upstream (an open breaker
would answer most of them without a connection); its own paths are tested apart.
Small pool limits make a leak visible at once: a retried response left open would hold
its connection, the pool would fill up and the next request would wait for a slot until
its pool timeout (a ``PoolTimeout`` here, after at most 5 s). Everything runs against
127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import buttress
from buttress.httpx import RETRY_ON, AsyncResilientTransport, ResilientTransport

from ._upstream import SpawnedUpstream, Upstream

REQUESTS = 10_000
# The async client costs about twice as much CPU per request on a shared 2-core machine:
# fewer requests, but many in flight at once for 4 connections, which a leak would starve.
ASYNC_REQUESTS = 2_004
IN_FLIGHT = 12  # for 4 connections
MAX_CONNECTIONS = 4
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=2)
TIMEOUT = httpx.Timeout(5.0)
# A failing upstream in every way the transport handles: retried statuses, statuses it
# does not retry, dropped connections, and now and then a success.
PATHS = ("/status/503", "/drop", "/status/500", "/status/429", "/ok")


def _pool(transport: ResilientTransport | AsyncResilientTransport) -> Any:
    return transport._inner._pool  # type: ignore[union-attr]


# Three attempts, with no waiting between them.
RETRY = buttress.retry(on=RETRY_ON, attempts=3, sleep=lambda s: None)


def _busy(pool: Any) -> int:
    return sum(1 for c in pool.connections if not c.is_idle() and not c.is_closed())


@pytest.mark.slow
def test_sync_pool_stays_flat_under_failures() -> None:
    with SpawnedUpstream() as upstream:
        inner = httpx.HTTPTransport(limits=LIMITS)
        transport = ResilientTransport(inner, retry=RETRY, breaker=None)
        most = 0
        outcomes: dict[str, int] = {}
        with httpx.Client(transport=transport, timeout=TIMEOUT) as http:
            for i in range(REQUESTS):
                path = PATHS[i % len(PATHS)]
                try:
                    key = str(http.get(f"{upstream.url}{path}").status_code)
                except httpx.TransportError as exc:
                    key = type(exc).__name__
                outcomes[key] = outcomes.get(key, 0) + 1
                most = max(most, len(_pool(transport).connections))
            pool = _pool(transport)
            assert most <= MAX_CONNECTIONS
            assert _busy(pool) == 0
            assert pool._requests == []
        assert sum(outcomes.values()) == REQUESTS
        assert set(outcomes) == {"200", "429", "500", "503", "RemoteProtocolError"}
        assert upstream.count() > REQUESTS  # some requests were retried


@pytest.mark.slow
async def test_async_pool_stays_flat_under_concurrent_failures() -> None:
    with SpawnedUpstream() as upstream:
        inner = httpx.AsyncHTTPTransport(limits=LIMITS)
        transport = AsyncResilientTransport(inner, retry=RETRY, breaker=None)
        most = 0

        async def one(http: httpx.AsyncClient, i: int) -> str:
            nonlocal most
            path = PATHS[i % len(PATHS)]
            try:
                response = await http.get(f"{upstream.url}{path}")
            except httpx.TransportError as exc:
                return type(exc).__name__
            finally:
                most = max(most, len(_pool(transport).connections))
            return str(response.status_code)

        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as http:
            outcomes: list[str] = []
            for start in range(0, ASYNC_REQUESTS, IN_FLIGHT):
                batch = [one(http, i) for i in range(start, start + IN_FLIGHT)]
                outcomes += await asyncio.gather(*batch)
            pool = _pool(transport)
            assert most <= MAX_CONNECTIONS
            assert _busy(pool) == 0
            assert pool._requests == []
        assert len(outcomes) == ASYNC_REQUESTS
        assert "PoolTimeout" not in outcomes
        assert set(outcomes) == {"200", "429", "500", "503", "RemoteProtocolError"}


def test_the_check_sees_a_leak() -> None:
    # Responses left open hold their connections: the pool runs dry and the next request
    # waits for a slot. The tests above would notice the same through PoolTimeout.
    with Upstream(keep=False) as upstream:
        inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=2))
        timeout = httpx.Timeout(5.0, pool=0.05)
        with httpx.Client(transport=inner, timeout=timeout) as http:
            held = [http.send(http.build_request("GET", f"{upstream.url}/ok"), stream=True)]
            held.append(http.send(http.build_request("GET", f"{upstream.url}/ok"), stream=True))
            assert _busy(inner._pool) == 2
            with pytest.raises(httpx.PoolTimeout):
                http.get(f"{upstream.url}/ok")
            for response in held:
                response.close()
            assert _busy(inner._pool) == 0
