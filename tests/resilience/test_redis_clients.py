"""``RedisStore(client=...)``: the user's own redis-py clients, sync and asyncio, standalone
and cluster, against real servers; and a batched store carried into a forked child."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import time
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster

from buttress import CircuitBreaker, CircuitOpen, ConfigurationError, RedisStore

from .._services import RedisCluster, RedisSentinel, RedisServer

pytestmark = pytest.mark.redis

LOADED = 5.0
_names = itertools.count()


class Boom(Exception):
    pass


async def aboom() -> None:
    raise Boom


async def anone() -> None:
    return None


def boom() -> None:
    raise Boom


def breaker(store: RedisStore, name: str) -> CircuitBreaker:
    return CircuitBreaker(name, consecutive_failures=2, reset_timeout=60, store=store)


async def test_an_asyncio_client_serves_async_calls_and_shares_state(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=LOADED)
    mine = breaker(RedisStore(client=client, service="clients"), "dep")
    theirs = breaker(RedisStore(redis_server.url, service="clients", socket_timeout=LOADED), "dep")
    for _ in range(2):
        with pytest.raises(Boom):
            await mine.call(aboom)
    with pytest.raises(CircuitOpen):
        theirs.call(lambda: None)  # a sync replica on a URL sees the same breaker
    await client.aclose()


async def test_a_sync_call_through_an_asyncio_client_is_a_configuration_error(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    shared = breaker(RedisStore(client=client, service="clients"), "sync-on-async")
    with pytest.raises(ConfigurationError, match="asyncio client"):
        shared.call(lambda: None)
    await client.aclose()


async def test_a_sync_client_serves_async_calls_off_the_loop(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=LOADED)
    store = RedisStore(client=client, service="clients")
    shared = breaker(store, "async-on-sync")
    for _ in range(2):
        with pytest.raises(Boom):
            await shared.call(aboom)
    with pytest.raises(CircuitOpen):
        await shared.call(anone)
    store.close()
    assert client.ping()  # the caller's client is left open


async def test_an_asyncio_cluster_client_runs_the_scripts(redis_cluster: RedisCluster) -> None:
    host, port = redis_cluster.startup_nodes[0]
    client = redis.asyncio.RedisCluster(host=host, port=port, socket_timeout=LOADED)
    shared = breaker(RedisStore(client=client, service=f"clients{next(_names)}"), "on-cluster")
    for _ in range(2):
        with pytest.raises(Boom):
            await shared.call(aboom)
    with pytest.raises(CircuitOpen):
        await shared.call(anone)
    await client.aclose()


def _child(url: str, service: str, done: Any) -> None:
    # Runs in the forked child: the store and breaker came from the parent.
    shared = _inherited["breaker"]
    for _ in range(2):
        with contextlib.suppress(Boom):
            shared.call(boom)
    # The child's own thread (the parent's did not survive the fork) sends the trip.
    client = redis.Redis.from_url(url)
    key = f"{_inherited['store'].key('breaker', 'forked')}:fleet"
    for _ in range(500):
        if client.hget(key, "st") == b"1":
            done.value = 1
            break
        multiprocessing.Event().wait(0.01)
    client.close()


_inherited: dict[str, Any] = {}


def test_a_batched_store_keeps_exchanging_in_a_forked_child(redis_server: RedisServer) -> None:
    service = f"forked{next(_names)}"
    store = RedisStore(
        redis_server.url, service=service, mode="batched", sync_interval=0.1, socket_timeout=LOADED
    )
    _inherited["store"] = store
    _inherited["breaker"] = breaker(store, "forked")
    context = multiprocessing.get_context("fork")
    done = context.Value("i", 0)
    child = context.Process(target=_child, args=(redis_server.url, service, done))
    child.start()
    child.join(timeout=30)
    store.close()
    _inherited.clear()
    assert done.value == 1


@pytest.mark.parametrize("mode", ["per_call", "batched"])
def test_sentinel_comes_through_the_client_it_hands_out(
    redis_server: RedisServer, redis_binary: str, mode: str
) -> None:
    from redis.sentinel import Sentinel

    with RedisSentinel(redis_binary, redis_server) as sentinel:
        # redis-py leaves Sentinel untyped
        watcher = Sentinel([("127.0.0.1", sentinel.port)], socket_timeout=LOADED)  # type: ignore[no-untyped-call]
        client = watcher.master_for(sentinel.name, socket_timeout=LOADED)  # type: ignore[no-untyped-call]
        store = RedisStore(client=client, service=f"sentinel{next(_names)}", mode=mode)  # type: ignore[arg-type]
        shared = breaker(store, "via-sentinel")
        for _ in range(2):
            with pytest.raises(Boom):
                shared.call(boom)
        key = store.key("breaker", "via-sentinel") + (":fleet" if mode == "batched" else "")
        direct = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 10
        while direct.hget(key, "st") != b"1":  # open, in the master Sentinel named
            assert time.monotonic() < deadline, "the breaker never opened in Redis"
            time.sleep(0.01)
        direct.close()
        store.close()
        client.close()
