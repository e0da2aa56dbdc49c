"""FaultInjection left in the code: what it costs per call while off, and while on with
no fault drawn, over a bare call and over the bare strategy shell."""

from __future__ import annotations

from benchmarks._harness import compare_async, compare_sync, report
from benchmarks.bench_shell import PassThrough, abare, bare
from buttress import FaultInjection


def main(quick: bool = False) -> str:
    number = 2_000 if quick else 50_000
    off = FaultInjection("bench", rate=0.5, exception=ConnectionError)
    on = FaultInjection("bench", rate=0.0, exception=ConnectionError, enabled=True)
    shell, off_fn, on_fn = PassThrough()(bare), off(bare), on(bare)
    sync = compare_sync(
        {
            "bare": lambda: bare(1),
            "shell": lambda: shell(1),
            "faults off": lambda: off_fn(1),
            "faults on, none drawn": lambda: on_fn(1),
        },
        number=number,
    )
    ashell, aoff, aon = PassThrough()(abare), off(abare), on(abare)

    async def call_bare() -> int:
        return await abare(1)

    async def call_shell() -> int:
        return await ashell(1)

    async def call_off() -> int:
        return await aoff(1)

    async def call_on() -> int:
        return await aon(1)

    asyn = compare_async(
        {
            "bare": call_bare,
            "shell": call_shell,
            "faults off": call_off,
            "faults on, none drawn": call_on,
        },
        number=number,
    )
    return (
        report("FaultInjection, sync", sync, baseline="bare", against="shell")
        + "\n"
        + report("FaultInjection, async", asyn, baseline="bare", against="shell")
    )
