from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest
from hypothesis import settings

from buttress._events import default_registry
from buttress.testing import set_testing

from ._services import IN_CI, RedisCluster, RedisServer, require_binary

# Property tests draw the same examples on every run in CI and under `make mutate`, so a
# failure (or a mutant's kill) is reproducible; locally they explore new examples.
settings.register_profile("derandomized", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "derandomized" if IN_CI else "default"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skipped test is a failure: a green run must mean every test ran."""
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
    return report


@pytest.fixture(autouse=True)
def _isolated_events() -> Iterator[None]:
    """Every test starts with no listeners and normal (non-test) mode, and leaves it so."""
    default_registry.clear()
    with set_testing(False):
        yield
    default_registry.reset()


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return require_binary("redis-server")


@pytest.fixture
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A fresh redis-server on 127.0.0.1 for one test, which may stop and restart it."""
    with RedisServer(redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(redis_binary: str) -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster on 127.0.0.1, shared by the session's tests."""
    with RedisCluster(redis_binary, require_binary("redis-cli")) as cluster:
        yield cluster
