"""The test services themselves: a real redis-server starts, answers, stops and restarts."""

from __future__ import annotations

import socket

import pytest

from ._services import RedisServer


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


@pytest.mark.redis
def test_redis_server_starts_stops_and_restarts(redis_server: RedisServer) -> None:
    assert _ping(redis_server.port) == b"+PONG\r\n"
    redis_server.stop()
    assert not redis_server.running
    with pytest.raises(OSError):
        _ping(redis_server.port)
    redis_server.start()
    assert _ping(redis_server.port) == b"+PONG\r\n"
