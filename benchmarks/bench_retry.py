"""Retry, success path: what decorating a call costs when its first attempt succeeds.

buttress against tenacity, stamina and backoff, each configured alike (retry on one
exception type, bounded attempts, exponential backoff with jitter), sync and async,
side by side in one process. The report is ratios of overhead over a bare call. A third
table times the attempt loops (``for attempt in ...: with attempt:``) of buttress,
tenacity and stamina around the same call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import backoff
import stamina
import tenacity

import buttress
from benchmarks._harness import Result, compare_async, compare_sync, report
from buttress.events import Registry, default_registry

PEERS = ("tenacity", "stamina", "backoff")
AGAINST = {"baseline": "bare", "against": "tenacity"}


def bare(x: int) -> int:
    return x


async def abare(x: int) -> int:
    return x


def _contenders(fn: Callable[[int], object]) -> dict[str, Callable[[int], object]]:
    return {
        # As shipped: the default listeners count every call in Prometheus (span events
        # and logs are checked and skipped for a first-attempt success).
        "buttress": buttress.retry(on=ConnectionError, name="bench")(fn),
        # With observability turned off: a registry nobody listens to.
        "buttress, no listeners": buttress.retry(
            on=ConnectionError, name="bench", events=Registry()
        )(fn),
        # For scale: a three-strategy policy (fallback, retry, timeout) around the same call.
        "buttress policy": buttress.Policy(
            buttress.fallback(None, on=buttress.Rejected),
            buttress.retry(on=ConnectionError),
            buttress.timeout(5.0),
            name="bench",
        )(fn),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(10),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=5),
            reraise=True,
        )(fn),
        "stamina": stamina.retry(on=ConnectionError)(fn),
        "backoff": backoff.on_exception(backoff.expo, ConnectionError, max_tries=10)(fn),
    }


def _loops() -> dict[str, Callable[[], object]]:
    policy = buttress.retry(on=ConnectionError, name="bench")
    tenacity_loop = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(ConnectionError),
        stop=tenacity.stop_after_attempt(10),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5),
        reraise=True,
    )

    def ours() -> None:
        for attempt in buttress.retrying(policy):
            with attempt:
                bare(1)

    def theirs() -> None:
        for attempt in tenacity_loop:
            with attempt:
                bare(1)

    def stamina_loop() -> None:
        for attempt in stamina.retry_context(on=ConnectionError):
            with attempt:
                bare(1)

    return {"bare": lambda: bare(1), "buttress": ours, "tenacity": theirs, "stamina": stamina_loop}


def _ratios(title: str, results: list[Result]) -> str:
    by_name = {r.name: r.best for r in results}
    lines = []
    for ours_name in ("buttress", "buttress, no listeners"):
        ours = by_name[ours_name] - by_name["bare"]
        cells = [
            f"{peer}: {ours / (by_name[peer] - by_name['bare']):.3f}"
            for peer in PEERS
            if by_name[peer] > by_name["bare"]
        ]
        lines.append(f"{title}: {ours_name} overhead / peer overhead = " + ", ".join(cells))
    return "\n".join(lines) + "\n"


def main(quick: bool = False) -> str:
    number, rounds = (1_000, 3) if quick else (20_000, 7)
    default_registry.reset()
    assert default_registry.listeners  # the default telemetry listeners, loaded now
    sync_wrapped = _contenders(bare)
    sync: dict[str, Callable[[], object]] = {"bare": lambda: bare(1)}
    for name, fn in sync_wrapped.items():
        sync[name] = lambda fn=fn: fn(1)  # type: ignore[misc]
    sync_results = compare_sync(sync, number=number, rounds=rounds)

    async_wrapped = _contenders(abare)
    asyn: dict[str, Callable[[], Awaitable[object]]] = {"bare": lambda: abare(1)}
    for name, afn in async_wrapped.items():
        asyn[name] = lambda afn=afn: afn(1)  # type: ignore[misc]
    async_results = compare_async(asyn, number=number, rounds=rounds)
    loop_results = compare_sync(_loops(), number=number, rounds=rounds)
    return "\n".join(
        [
            report("retry loop, success path, sync", loop_results, **AGAINST),
            report("retry, success path, sync", sync_results, **AGAINST),
            _ratios("sync", sync_results),
            report("retry, success path, async", async_results, **AGAINST),
            _ratios("async", async_results),
        ]
    )


if __name__ == "__main__":
    print(main())
