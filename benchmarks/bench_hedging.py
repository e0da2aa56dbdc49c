"""Hedged requests against a slow replica: tail latency and extra load, side by side.

A real upstream on 127.0.0.1 (an HTTP/1.1 server in a child process, so it shares no GIL
with the client) answers each request after 5 ms, except a random 5 % that take 300 ms:
one slow replica behind a load balancer, as in "The Tail at Scale". The same async
client load (a few concurrent callers, GETs) runs through three transports, interleaved
in rounds so the machine's drift hits all alike:

- ``no hedge``: ``AsyncResilientTransport()`` with its defaults;
- ``hedge 25 ms``: the same with ``hedge=buttress.hedge(delay=0.025, max_hedged=2)``;
- ``hedge p90``: ``hedge=buttress.hedge(percentile=90, max_hedged=2)``, the delay being
  the observed 90th percentile of first attempts.

A sync pair (``ResilientTransport`` with and without ``hedge(percentile=90,
max_hedged=2)``) runs the same way after them: there the losers are abandoned on the
hedge's bounded threads, their responses closed when they come.

Reported: p50/p99 latency per transport, the p99 ratio against ``no hedge``, and the
extra upstream calls (requests the upstream counted beyond one per client call).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from tests._services import free_port, wait_for_port

import buttress
from buttress.httpx import AsyncResilientTransport, ResilientTransport

ROOT = Path(__file__).resolve().parent.parent
SLOW_SHARE = 0.05
SLOW = 0.300
FAST = 0.005
CONCURRENCY = 1  # sequential callers: what is measured is the upstream, not the loop


# --- the upstream (child process) ------------------------------------------------------------


async def _serve(port: int) -> None:
    chance = random.Random(21)
    counts: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                target = head.split(b" ", 2)[1].decode()
                parts = target.strip("/").split("/")
                if parts[0] == "count":
                    body = str(counts[parts[1]]).encode()
                else:
                    counts[parts[-1]] += 1
                    await asyncio.sleep(SLOW if chance.random() < SLOW_SHARE else FAST)
                    body = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except asyncio.CancelledError:  # a hedge's loser was cancelled by its client
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


# --- the client --------------------------------------------------------------------------------


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def _batch(client: httpx.AsyncClient, url: str, calls: int, into: list[float]) -> None:
    queue = iter(range(calls))

    async def caller() -> None:
        for _ in queue:
            start = time.perf_counter()
            response = await client.get(url)
            into.append(time.perf_counter() - start)
            assert response.status_code == 200

    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))


async def _run(base: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    transports = {
        "no hedge": AsyncResilientTransport(httpx.AsyncHTTPTransport(limits=limits)),
        "hedge 25 ms": AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits), hedge=buttress.hedge(delay=0.025, max_hedged=2)
        ),
        "hedge p90": AsyncResilientTransport(
            httpx.AsyncHTTPTransport(limits=limits),
            hedge=buttress.hedge(percentile=90, max_hedged=2),
        ),
    }
    clients = {name: httpx.AsyncClient(transport=t, timeout=10.0) for name, t in transports.items()}
    latencies: dict[str, list[float]] = {name: [] for name in clients}
    tags = {name: name.replace(" ", "-") for name in clients}
    try:
        for name, client in clients.items():  # warm up: connections, the p90 estimate
            await _batch(client, f"{base}/warm/{tags[name]}-warm", 40, [])
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, client in clients.items():
                await _batch(client, f"{base}/work/{tags[name]}", per_round, latencies[name])
        async with httpx.AsyncClient() as plain:
            sent = {
                name: int((await plain.get(f"{base}/count/{tags[name]}")).text) for name in clients
            }
    finally:
        for client in clients.values():
            await client.aclose()
    figures = {}
    for name, samples in latencies.items():
        figures[name] = {
            "calls": float(len(samples)),
            "p50": statistics.median(samples),
            "p99": _percentile(samples, 99),
            "extra": sent[name] / len(samples) - 1.0,
        }
    return figures


def _run_sync(base: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    hedged = buttress.hedge(percentile=90, max_hedged=2)
    clients = {
        "no hedge (sync)": httpx.Client(
            transport=ResilientTransport(httpx.HTTPTransport(limits=limits)), timeout=10.0
        ),
        "hedge p90 (sync)": httpx.Client(
            transport=ResilientTransport(httpx.HTTPTransport(limits=limits), hedge=hedged),
            timeout=10.0,
        ),
    }
    tags = {name: name.replace(" ", "-").strip("()").replace("(", "") for name in clients}
    latencies: dict[str, list[float]] = {name: [] for name in clients}

    def batch(client: httpx.Client, url: str, count: int, into: list[float]) -> None:
        for _ in range(count):
            start = time.perf_counter()
            response = client.get(url)
            into.append(time.perf_counter() - start)
            assert response.status_code == 200

    try:
        for name, client in clients.items():
            batch(client, f"{base}/warm/{tags[name]}-warm", 40, [])
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, client in clients.items():
                batch(client, f"{base}/work/{tags[name]}", per_round, latencies[name])
        with httpx.Client() as plain:
            sent = {name: int(plain.get(f"{base}/count/{tags[name]}").text) for name in clients}
    finally:
        for client in clients.values():
            client.close()
    return {
        name: {
            "calls": float(len(samples)),
            "p50": statistics.median(samples),
            "p99": _percentile(samples, 99),
            "extra": sent[name] / len(samples) - 1.0,
        }
        for name, samples in latencies.items()
    }


def main(quick: bool = False) -> str:
    calls, rounds = (200, 2) if quick else (1000, 5)
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_hedging", "--serve", str(port)], cwd=ROOT
    )
    try:
        wait_for_port(port)
        figures = asyncio.run(_run(f"http://127.0.0.1:{port}", calls, rounds))
        figures.update(_run_sync(f"http://127.0.0.1:{port}", calls, rounds))
    finally:
        child.terminate()
        child.wait(10)
    base = figures["no hedge"]
    out = [
        "## Hedging: 5 % of calls take 300 ms, the rest 5 ms (real upstream on 127.0.0.1)",
        "",
        f"{int(base['calls'])} calls per transport, {CONCURRENCY} concurrent callers, "
        f"{rounds} interleaved rounds.",
        "",
        "| transport | p50 ms | p99 ms | p99 vs no hedge (its twin) | extra upstream calls |",
        "|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        against = figures["no hedge (sync)"] if "sync" in name else base
        out.append(
            f"| {name} | {f['p50'] * 1000:.1f} | {f['p99'] * 1000:.1f} | "
            f"{against['p99'] / f['p99']:.1f}x lower | {f['extra']:.1%} |"
        )
    fixed, observed = figures["hedge 25 ms"], figures["hedge p90"]
    sync_base, sync_hedged = figures["no hedge (sync)"], figures["hedge p90 (sync)"]
    result = {
        "calls": int(base["calls"]),
        "p99_ms": f"{base['p99'] * 1000:.1f}",
        "p99_hedged_ms": f"{fixed['p99'] * 1000:.1f}",
        "p99_ratio": f"{base['p99'] / fixed['p99']:.2f}",
        "extra_calls": f"{fixed['extra']:.4f}",
        "p99_p90_ms": f"{observed['p99'] * 1000:.1f}",
        "p99_ratio_p90": f"{base['p99'] / observed['p99']:.2f}",
        "extra_calls_p90": f"{observed['extra']:.4f}",
        "p99_ratio_sync": f"{sync_base['p99'] / sync_hedged['p99']:.2f}",
        "extra_calls_sync": f"{sync_hedged['extra']:.4f}",
    }
    out.append("")
    out.append("RESULT hedging " + " ".join(f"{k}={v}" for k, v in result.items()))
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(_serve(int(sys.argv[2])))
    else:
        print(main(quick="--quick" in sys.argv))
