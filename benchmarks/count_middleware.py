"""Machine instructions per request of each middleware stack, counted by valgrind.

Wall-clock and even CPU time move with the load of a shared machine by more than a
change to the hot path does; an instruction count does not. This runs bench_middleware's
in-process ASGI driver (1 route, Starlette, spans through a batch processor to an exporter
that drops them) under ``valgrind --tool=callgrind`` twice per stack, for ``SMALL`` and
``LARGE`` requests, and reports the difference divided by ``LARGE - SMALL``: start-up,
imports and warm-up cancel out. Sampling is ``ParentBased(TraceIdRatioBased(r))`` with
r = 0 ("not sampled", which every root request at a low rate is) and r = 1.

``python benchmarks/count_middleware.py`` (about 10 minutes; valgrind from Debian's
package). ``COUNT_STACKS=bare,buttress`` picks stacks; ``COUNT_BASELINE=path/to/src``
counts buttress from another source tree as well, to compare two versions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 300, 1300
STACKS = ("bare", "floor", "buttress", "peers")


def _serve(stack: str, sampling: float, requests: int) -> None:
    """The counted process: build one stack, warm it, run ``requests`` requests."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_client import CollectorRegistry

    from benchmarks.bench_middleware import _asgi_driver, _floor_asgi, _provider, _starlette

    logging.getLogger("buttress.access").setLevel(logging.WARNING)
    provider = _provider(ParentBased(TraceIdRatioBased(sampling)))
    app = _starlette(1)
    if stack == "floor":
        app = _floor_asgi(app, provider)
    elif stack in ("buttress", "baseline"):
        from buttress.middleware import ASGIMiddleware, _disconnect

        # Under valgrind a request takes long enough to meet the disconnect sweep, which
        # a request on a real server never does: keep it out of the count.
        vars(_disconnect)["WATCH_AFTER"] = 3600.0
        app.add_middleware(
            ASGIMiddleware, tracer_provider=provider, metrics_registry=CollectorRegistry()
        )
    elif stack == "peers":
        from asgi_correlation_id import CorrelationIdMiddleware
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from starlette_exporter import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware, group_paths=True)
        app.add_middleware(
            OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
        app.add_middleware(CorrelationIdMiddleware)
    one = _asgi_driver(app, "/r0/items/42")

    async def run() -> None:
        for _ in range(50):  # warm: the middleware stack is built on the first request
            await one()
        for _ in range(requests):
            await one()

    asyncio.run(run())
    provider.shutdown()


def _count(stack: str, sampling: float, requests: int) -> int:
    baseline = os.environ.get("COUNT_BASELINE") if stack == "baseline" else None
    path = os.pathsep.join(p for p in (baseline, str(ROOT)) if p)
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--serve",
            stack,
            str(sampling),
            str(requests),
        ]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
        found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no summary line in callgrind's output for {stack}")
        return int(found.group(1))


def main() -> str:
    if shutil.which("valgrind") is None:
        return "count_middleware: valgrind is not installed (apt-get install valgrind)\n"
    stacks = [s for s in os.environ.get("COUNT_STACKS", ",".join(STACKS)).split(",") if s]
    if os.environ.get("COUNT_BASELINE"):
        stacks.append("baseline")
    lines = ["## instructions per request (callgrind; in-process ASGI driver, 1 route)", ""]
    lines += [
        "| stack | not sampled | over bare | 100% sampled | over bare |",
        "|---|---|---|---|---|",
    ]
    counts: dict[tuple[str, float], float] = {}
    for stack in stacks:
        for sampling in (0.0, 1.0):
            small, large = (_count(stack, sampling, n) for n in (SMALL, LARGE))
            counts[stack, sampling] = (large - small) / (LARGE - SMALL)
    bare = {s: counts.get(("bare", s)) for s in (0.0, 1.0)}
    for stack in stacks:
        cells = []
        for sampling in (0.0, 1.0):
            value = counts[stack, sampling]
            base = bare[sampling]
            extra = f"+{value - base:,.0f}" if base is not None and stack != "bare" else "-"
            cells += [f"{value:,.0f}", extra]
        lines.append(f"| {stack} | {' | '.join(cells)} |")
    result = ["RESULT count_middleware"]
    for stack in stacks:
        if stack != "bare" and bare[0.0] is not None and bare[1.0] is not None:
            result.append(f"{stack}_unsampled={counts[stack, 0.0] - bare[0.0]:.0f}")
            result.append(f"{stack}_sampled={counts[stack, 1.0] - bare[1.0]:.0f}")
    return "\n".join(lines) + "\n\n" + " ".join(result) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        print(main())
