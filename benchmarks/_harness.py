"""Side-by-side timing: every contender runs in the same process, interleaved, and the
report is ratios, because absolute times on a shared machine drift by half."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds per call, one per round

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def _time_sync(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


async def _time_async(fn: Callable[[], Awaitable[object]], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        await fn()
    return (time.perf_counter() - start) / number


def compare_sync(
    contenders: dict[str, Callable[[], object]], *, number: int = 20_000, rounds: int = 7
) -> list[Result]:
    """Time each contender ``rounds`` times, interleaved so drift hits all alike."""
    results = {name: Result(name) for name in contenders}
    for fn in contenders.values():
        _time_sync(fn, max(number // 10, 1))  # warm up
    gc.collect()
    for _ in range(rounds):
        for name, fn in contenders.items():
            results[name].samples.append(_time_sync(fn, number))
    return list(results.values())


def compare_async(
    contenders: dict[str, Callable[[], Awaitable[object]]], *, number: int = 20_000, rounds: int = 7
) -> list[Result]:
    """The asyncio twin of :func:`compare_sync`; all rounds run in one event loop."""

    async def main() -> list[Result]:
        results = {name: Result(name) for name in contenders}
        for fn in contenders.values():
            await _time_async(fn, max(number // 10, 1))
        gc.collect()
        for _ in range(rounds):
            for name, fn in contenders.items():
                results[name].samples.append(await _time_async(fn, number))
        return list(results.values())

    return asyncio.run(main())


def report(title: str, results: list[Result], *, baseline: str, against: str | None = None) -> str:
    """A table of per-call time, overhead over ``baseline`` and overhead ratios.

    ``against`` names the contender whose overhead the others are divided by (typically
    the peer library), so the last column reads "our overhead is N of theirs".
    """
    base = next(r for r in results if r.name == baseline).best
    ref = next((r for r in results if r.name == against), None)
    ref_overhead = (ref.best - base) if ref is not None else None
    lines = [f"## {title}", ""]
    header = "| contender | per call (us) | overhead (us) | x baseline |"
    if ref_overhead:
        header += f" overhead / {against} |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        overhead = r.best - base
        row = f"| {r.name} | {r.best * 1e6:.3f} | {overhead * 1e6:.3f} | {r.best / base:.2f} |"
        if ref_overhead:
            row += f" {overhead / ref_overhead:.3f} |"
        lines.append(row)
    return "\n".join(lines) + "\n"
