"""A tiny HTTP/1.1 upstream on 127.0.0.1 whose outages and latency are FaultInjections.

The upstream answers ``GET`` requests with 200 ``ok``. Its faults are buttress's own
chaos strategy: ``outage`` answers 503 instead (switched on and off by a flapping task),
``slow`` delays a share of answers. It counts every request it receives.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from buttress import FaultInjection


class Upstream:
    def __init__(self, *, slow_rate: float, slow_latency: float, seed: int) -> None:
        self.requests = 0
        self.outage = FaultInjection("upstream-outage", rate=1.0, result=503)
        self.slow = FaultInjection(
            "upstream-slow",
            rate=slow_rate,
            latency=slow_latency,
            enabled=True,
            random=random.Random(seed).random,
        )
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _status(self) -> int:
        return 200

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer: Callable[[], Awaitable[int]] = self._status
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests += 1
                await self.slow.call(_nothing)
                status = await self.outage.call(answer)
                body = b"ok" if status == 200 else b"down"
                reason = b"OK" if status == 200 else b"Service Unavailable"
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
                    % (status, reason, len(body), body)
                )
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def flap(
        self, stop: asyncio.Event, *, seed: int, up: tuple[float, float], down: tuple[float, float]
    ) -> int:
        """Switch outages on and off at random intervals until ``stop``; returns outages."""
        draw = random.Random(seed)
        outages = 0
        while not stop.is_set():
            if await _wait(stop, draw.uniform(*up)):
                break
            self.outage.enable()
            outages += 1
            await _wait(stop, draw.uniform(*down))
            self.outage.disable()
        return outages


async def _nothing() -> None:
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; whether ``stop`` was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
