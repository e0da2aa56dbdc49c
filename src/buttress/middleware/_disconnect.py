"""Noticing that an ASGI client went away, whether or not the app reads ``receive``.

A client that gives up shows only as an ``http.disconnect`` message, and only to whoever
calls ``receive()``. Most handlers never do once the body is read, so one request's
watch keeps a ``receive()`` outstanding on the app's behalf and hands every message on to
the app in order. It reads one message ahead at most (a body chunk is read only when the
app took the previous one), so request bodies keep the server's flow control; once the body
is complete the only message left to wait for is the disconnect.

One watch per request, held in the shell's locals; it is stopped when the response ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ReceiveWatch"]

Message = Any
Receive = Callable[[], Awaitable[Message]]


class ReceiveWatch:
    """Reads ``receive`` ahead of the app; calls ``on_disconnect`` when the client leaves."""

    __slots__ = ("_arrived", "_buffer", "_on_disconnect", "_receive", "_taken", "_task")

    def __init__(self, receive: Receive, on_disconnect: Callable[[], None]) -> None:
        self._receive = receive
        self._on_disconnect = on_disconnect
        self._buffer: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        receive = self._receive
        body_done = False
        while True:
            try:
                message = await receive()
            except Exception:
                return  # the app's own receive() calls meet the server's error themselves
            self._buffer.append(message)
            self._arrived.set()
            kind = message.get("type")
            if kind == "http.disconnect":
                self._on_disconnect()
                return
            if kind != "http.request":
                return  # not a message this protocol has: leave the rest to the app
            if message.get("more_body", False):
                # More body to come: read on only once the app took this chunk.
                self._taken.clear()
                await self._taken.wait()
            elif body_done:
                # A second complete body: the server does not wait for the disconnect as
                # ASGI says it should; stop reading ahead rather than spin.
                return
            else:
                body_done = True

    async def receive(self) -> Message:
        """The next message for the app, in the order the server gave them."""
        buffer = self._buffer
        while not buffer:
            task = self._task
            if task is None or task.done():
                # Stopped (the response ended) or the client left: ask the server itself,
                # which repeats http.disconnect to every later call.
                return await self._receive()
            self._arrived.clear()
            await self._arrived.wait()
        message = buffer.popleft()
        if not buffer:
            self._taken.set()
        return message

    def stop(self) -> None:
        """Stop reading ahead (the response ended); nothing read is lost."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        self._arrived.set()  # wake readers, so they fall through to the server's receive
