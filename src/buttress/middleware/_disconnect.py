"""Noticing that an ASGI client went away, whether or not the app reads ``receive``.

A client that gives up shows only as an ``http.disconnect`` message, and only to whoever
calls ``receive()``. Most handlers never do once the body is read. So a request's watch
first looks at what the app's own ``receive()`` calls return; only once the request has
run for ``WATCH_AFTER`` seconds does it keep a ``receive()`` outstanding on the app's
behalf, handing every message on to the app in order. Most requests end before that: they
cost a set insertion and removal, not a task started and cancelled, nor a timer each. One
sweep per event loop, every ``WATCH_AFTER`` seconds while requests are in flight, starts
the watches of the requests that were already in flight at the previous sweep, so a
disconnect is noticed at most ``2 * WATCH_AFTER`` late (and recorded with the duration the
client waited until then).

The read-ahead reads one message ahead at most (a body chunk is read only when the app
took the previous one), so request bodies keep the server's flow control; once the body is
complete the only message left to wait for is the disconnect.

One watch per request, held in the shell's locals; it is stopped when the response ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = ["WATCH_AFTER", "ReceiveWatch", "Watches"]

Message = Any
Receive = Callable[[], Awaitable[Message]]

# Long past a fast handler's run (a hello-world route takes ~0.1 ms, its p99 under load a
# few ms), short beside the time anyone waits for a 499 to show.
WATCH_AFTER: Final = 0.02


class _Sweep:
    """The watches of one event loop's requests, two generations deep."""

    __slots__ = ("_handle", "loop", "old", "young")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.young: set[ReceiveWatch] = set()  # began since the last sweep
        self.old: set[ReceiveWatch] = set()  # in flight at the last sweep: due at the next
        self._handle: asyncio.TimerHandle | None = None

    def add(self, watch: ReceiveWatch) -> None:
        self.young.add(watch)
        if self._handle is None:
            self._handle = self.loop.call_later(WATCH_AFTER, self._sweep)

    def _sweep(self) -> None:
        due, self.old, self.young = self.old, self.young, set()
        for watch in due:
            watch._due()
        # Sleep while no request is in flight; the next one wakes the sweep.
        self._handle = self.loop.call_later(WATCH_AFTER, self._sweep) if self.old else None


class Watches:
    """Hands out the requests' watches; held by the middleware, one sweep per event loop.

    A middleware served by several event loops (one per thread) keeps the last one's
    sweep; a request on another loop makes that loop's. Each sweep lives on with its
    timer as long as its loop has requests in flight, so none is ever lost.
    """

    __slots__ = ("_sweep",)

    def __init__(self) -> None:
        self._sweep: _Sweep | None = None

    def watch(self, receive: Receive, on_disconnect: Callable[[], None]) -> ReceiveWatch:
        watch = ReceiveWatch(receive, on_disconnect)
        self.register(watch)
        return watch

    def register(self, watch: ReceiveWatch) -> None:
        """Put ``watch`` (made without a sweep) under this event loop's sweep."""
        loop = asyncio.get_running_loop()
        sweep = self._sweep
        if sweep is None or sweep.loop is not loop:
            sweep = self._sweep = _Sweep(loop)
        watch._sweep = sweep
        sweep.young.add(watch)  # _Sweep.add, inline: this is every request's path
        if sweep._handle is None:
            sweep._handle = loop.call_later(WATCH_AFTER, sweep._sweep)


class ReceiveWatch:
    """Watches ``receive`` for the app; calls ``on_disconnect`` when the client leaves.

    A subclass may override :meth:`disconnected` instead of passing ``on_disconnect`` (the
    ASGI shell's per-request object is its own watch: one object per request, no cycle
    through a bound method). ``request_size`` counts the body bytes handed to the app.
    """

    # Every request starts in this state; it is declared on the class, so that a request
    # stores only what changes (most requests end before any of it does).
    _task: asyncio.Task[None] | None = None
    _in_receive = False  # the app is inside the server's receive() itself
    _wanted = False  # the read-ahead is due, once the app's receive() returns
    _stopped = False
    _body_done = False
    _sweep: _Sweep | None = None  # without one (tests), the read-ahead starts only by _due()
    _on_disconnect: Callable[[], None] | None = None
    request_size: int | None = None  # body bytes the app was given, once it reads

    def __init__(
        self,
        receive: Receive,
        on_disconnect: Callable[[], None] | None = None,
        sweep: _Sweep | None = None,
    ) -> None:
        self._receive = receive
        if on_disconnect is not None:
            self._on_disconnect = on_disconnect
        if sweep is not None:
            self._sweep = sweep

    def disconnected(self) -> None:
        """The client left before the response ended."""
        if self._on_disconnect is not None:
            self._on_disconnect()

    def _due(self) -> None:
        self._sweep = None  # the sweep let go of it
        if self._in_receive:
            # The app waits on receive() itself and will see a disconnect there; reading
            # ahead alongside it would take its messages. Start when it has its message.
            self._wanted = True
        else:
            self._start()

    def _start(self) -> None:
        if self._stopped or self._task is not None:
            return
        self._buffer: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        receive = self._receive
        while True:
            try:
                message = await receive()
            except Exception:
                return  # the app's own receive() calls meet the server's error themselves
            self._buffer.append(message)
            self._arrived.set()
            kind = message.get("type")
            if kind == "http.disconnect":
                self.disconnected()
                return
            if kind != "http.request":
                return  # not a message this protocol has: leave the rest to the app
            if message.get("more_body", False):
                # More body to come: read on only once the app took this chunk.
                self._taken.clear()
                await self._taken.wait()
            elif self._body_done:
                # A second complete body: the server does not wait for the disconnect as
                # ASGI says it should; stop reading ahead rather than spin.
                return
            else:
                self._body_done = True

    async def receive(self) -> Message:
        """The next message for the app, in the order the server gave them."""
        if self._task is None:
            # Before the read-ahead starts (or once stopped), the app reads the server.
            # Inline rather than a helper coroutine: this is every request's path.
            self._in_receive = True
            try:
                message = await self._receive()
            finally:
                self._in_receive = False
            kind = message.get("type")
            if kind == "http.request":
                self.request_size = (self.request_size or 0) + len(message.get("body", b""))
                if not message.get("more_body", False):
                    self._body_done = True
            elif kind == "http.disconnect" and not self._stopped:
                self.disconnected()
            if self._wanted:
                self._wanted = False
                if kind != "http.disconnect":
                    self._start()
            return message
        buffer = self._buffer
        while not buffer:
            task = self._task
            if task is None or task.done():
                # Stopped (the response ended) or the client left: ask the server itself,
                # which repeats http.disconnect to every later call.
                message = await self._receive()
                if message.get("type") == "http.request":
                    self.request_size = (self.request_size or 0) + len(message.get("body", b""))
                return message
            self._arrived.clear()
            await self._arrived.wait()
        message = buffer.popleft()
        if not buffer:
            self._taken.set()
        if message.get("type") == "http.request":
            self.request_size = (self.request_size or 0) + len(message.get("body", b""))
        return message

    def stop(self) -> None:
        """Stop watching (the response ended); nothing read is lost."""
        if self._stopped:
            return
        self._stopped = True
        sweep = self._sweep
        if sweep is not None:
            self._sweep = None
            sweep.young.discard(self)
            sweep.old.discard(self)
        task = self._task
        if task is not None:
            if not task.done():
                task.cancel()
            self._arrived.set()  # wake readers, so they fall through to the server's receive
