"""Overload: a service of known capacity under 1x, 2x and 4x its capacity, with and without
admission control, side by side in one run.

The service is a real uvicorn on 127.0.0.1 behind ``ASGIMiddleware``; its one handler
takes a place in a pool of ``WORKERS`` (a connection pool, a worker pool) and holds it for
``SERVICE`` seconds, so its capacity is ``WORKERS / SERVICE`` requests per second and extra
requests queue for the pool, as they do in real services. The only difference between the
two servers is ``admission=Admission()`` with its defaults.

The load is open-loop: requests are sent at a constant rate whatever the answers, each
timed from when it was due (no coordinated omission), abandoned after ``TIMEOUT`` seconds.
Each phase gets a fresh server, so one phase's backlog never leaks into the next, and the
first ``WARMUP`` seconds of each phase (the adaptive limit finding the capacity) are left
out of the figures. The figures: goodput (200s answered within the timeout, per second,
as a share of capacity), the p50/p99 latency of admitted requests against the p99 of a
quarter-load phase, the latency of shed answers, and the timeouts.

Usage: ``python benchmarks/run.py overload [--quick]``, or this file with ``--serve`` to
run one server by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 8
SERVICE = 0.100  # seconds each request holds a worker
CAPACITY = WORKERS / SERVICE  # requests per second
TIMEOUT = 2.0
MAX_CONNECTIONS = 1500
SERVER_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.105, 0.11, 0.12, 0.13,
    0.14, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip


# --- the server -----------------------------------------------------------------------------


def build_app(admission: bool) -> Any:
    from prometheus_client import CollectorRegistry

    from buttress.middleware import Admission, ASGIMiddleware

    pool: asyncio.Semaphore | None = None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal pool
        if scope["type"] != "http":
            return
        if pool is None:
            pool = asyncio.Semaphore(WORKERS)
        async with pool:
            await asyncio.sleep(SERVICE)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return ASGIMiddleware(
        app,
        metrics_registry=CollectorRegistry(),
        metrics_path="/metrics",  # the server's own view of each phase, scraped at its end
        buckets=SERVER_BUCKETS,
        access_log=False,
        tracing=False,
        admission=Admission() if admission else None,
    )


def serve(port: int, admission: bool) -> None:
    import uvicorn

    uvicorn.run(
        build_app(admission),
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, admission: bool) -> None:
        self.port = _free_port()
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        argv = [sys.executable, __file__, "--serve", "--port", str(self.port)]
        if admission:
            argv.append("--admission")
        self.process = subprocess.Popen(argv, env=env)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the open-loop load generator ------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rate: float
    ok: list[float] = field(default_factory=list)  # latencies of 200s, seconds
    shed: list[float] = field(default_factory=list)  # 503s, from send to answer
    other: int = 0
    timeouts: int = 0
    errors: int = 0
    measured: float = 0.0  # seconds of the phase that count
    # As the server measured them (its duration histogram): status -> [(le, count)].
    server: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


class Pool:
    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if self.idle:
            return self.idle.pop()
        if self.open >= MAX_CONNECTIONS:
            return None
        self.open += 1
        try:
            return await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.open -= 1
            return None

    def put(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)

    def discard(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.open -= 1
        connection[1].close()


REQUEST = b"GET /work HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: list[float]
) -> int:
    sent.append(asyncio.get_running_loop().time())
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _one(pool: Pool, phase: Phase, due: float, counted: bool) -> None:
    loop = asyncio.get_running_loop()
    connection = await pool.get()
    if connection is None:
        if counted:
            phase.errors += 1
        return
    try:
        sent: list[float] = []
        # asyncio.timeout rather than wait_for: no second task per request, so the
        # generator itself stays on time at the highest rate.
        async with asyncio.timeout_at(due + TIMEOUT):
            status = await _exchange(*connection, sent)
    except TimeoutError:
        pool.discard(connection)
        if counted:
            phase.timeouts += 1
        return
    except (OSError, asyncio.IncompleteReadError, ValueError):
        pool.discard(connection)
        if counted:
            phase.errors += 1
        return
    end = loop.time()
    latency = end - due
    pool.put(connection)
    if not counted:
        return
    if status == 200:
        phase.ok.append(latency)
    elif status == 503:
        # A shed answer is timed from when it was sent: how fast the server says no.
        phase.shed.append(end - sent[0])
    else:
        phase.other += 1


async def drive(port: int, phase: Phase, duration: float, warmup: float) -> None:
    loop = asyncio.get_running_loop()
    pool = Pool(port)
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time()
    total = int(phase.rate * duration)
    warm: asyncio.Task[dict[str, list[tuple[float, float]]]] | None = None
    for i in range(total):
        if warm is None and i / phase.rate >= warmup:
            warm = asyncio.create_task(_scrape(port))  # the server's counts so far
        due = start + i / phase.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(pool, phase, due, due - start >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=TIMEOUT + 1)
    phase.measured = duration - warmup
    for reader_writer in pool.idle:
        reader_writer[1].close()
    final = await _scrape(port)
    before = await warm if warm is not None else {}
    # What the server saw of the measured part only: the counts since the warm-up.
    phase.server = {
        status: [(le, count - dict(before.get(status, [])).get(le, 0.0)) for le, count in buckets]
        for status, buckets in final.items()
    }


async def _scrape(port: int) -> dict[str, list[tuple[float, float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    text = raw.split(b"\r\n\r\n", 1)[1].decode()
    found: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "http_server_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                status = sample.labels["http_response_status_code"]
                found.setdefault(status, []).append((float(sample.labels["le"]), sample.value))
    return found


def _server_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` (the server's histogram)."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    for le, count in sorted(buckets):
        if count >= q * total:
            return le
    return float("inf")


def _share_under(buckets: list[tuple[float, float]], bound: float) -> float:
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    under = max((c for le, c in buckets if le <= bound), default=0.0)
    return under / buckets[-1][1]


def run_phase(admission: bool, name: str, load: float, duration: float, warmup: float) -> Phase:
    phase = Phase(name, CAPACITY * load)
    server = Server(admission)
    try:
        asyncio.run(drive(server.port, phase, duration, warmup))
    finally:
        server.stop()
    return phase


# --- the report ----------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _percent(value: float) -> str:
    return "-" if value != value else f"{value:.1%}"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.1f}"


def main(quick: bool = False) -> str:
    duration, warmup = (1.5, 0.5) if quick else (8.0, 3.0)
    loads = (1.0, 2.0, 4.0)
    phases: dict[tuple[bool, str], Phase] = {}
    for admission in (False, True):
        phases[(admission, "0.25x")] = run_phase(admission, "0.25x", 0.25, duration, warmup)
        for load in loads:
            name = f"{load:g}x"
            phases[(admission, name)] = run_phase(admission, name, load, duration, warmup)
    lines = [
        f"## Overload: capacity {CAPACITY:.0f} req/s ({WORKERS} workers x "
        f"{SERVICE * 1000:.0f} ms), open-loop, timeout {TIMEOUT:g} s{' (quick)' if quick else ''}",
        "",
        "| admission | load | offered/s | goodput/s | goodput/capacity | p50 ms | p99 ms "
        "| server p99 ms | shed/s | shed p50 ms | shed < 1 ms (server) | timeouts/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (admission, name), phase in phases.items():
        seconds = phase.measured
        goodput = len(phase.ok) / seconds
        lines.append(
            f"| {'on' if admission else 'off'} | {name} | {phase.rate:.0f} | {goodput:.0f} "
            f"| {goodput / CAPACITY:.2f} | {_ms(_quantile(phase.ok, 0.5))} "
            f"| {_ms(_quantile(phase.ok, 0.99))} "
            f"| {_ms(_server_quantile(phase.server.get('200', []), 0.99))} "
            f"| {len(phase.shed) / seconds:.0f} | {_ms(_quantile(phase.shed, 0.5))} "
            f"| {_percent(_share_under(phase.server.get('503', []), 0.001))} "
            f"| {(phase.timeouts + phase.errors) / seconds:.0f} |"
        )
    on4, off4 = phases[(True, "4x")], phases[(False, "4x")]
    # The unloaded p99: both servers at a quarter of capacity (admission control changes
    # nothing there), pooled, so one stall of the host weighs half as much.
    unloaded = _quantile(phases[(True, "0.25x")].ok + phases[(False, "0.25x")].ok, 0.99)
    goodput_on = len(on4.ok) / on4.measured / CAPACITY
    goodput_off = len(off4.ok) / off4.measured / CAPACITY
    p99_ratio = _quantile(on4.ok, 0.99) / unloaded
    shed_p50 = _quantile(on4.shed, 0.5) * 1000
    shed_fast = _share_under(on4.server.get("503", []), 0.001)
    quarter = [phases[(a, "0.25x")].server.get("200", []) for a in (True, False)]
    pooled = (
        [(le, count + other) for (le, count), (_, other) in zip(*quarter, strict=True)]
        if all(quarter)
        else quarter[0] or quarter[1]
    )
    server_unloaded = _server_quantile(pooled, 0.99)
    server_ratio = _server_quantile(on4.server.get("200", []), 0.99) / server_unloaded
    # Every offered request of the unprotected 4x phase, a timed-out one counted at the
    # timeout: the p99 a caller saw (the answered ones alone may be none at all).
    unanswered = off4.timeouts + off4.errors + len(off4.shed)
    off_p99 = _quantile(off4.ok + [TIMEOUT] * unanswered, 0.99) * 1000
    off_timeouts = (off4.timeouts + off4.errors) / (off4.rate * off4.measured)
    lines += [
        "",
        f"At 4x with admission control: goodput {goodput_on:.2f} of capacity, admitted p99 "
        f"{p99_ratio:.2f}x the unloaded p99 ({server_ratio:.2f}x as the server measured, to its "
        "histogram's bucket bounds), "
        f"shed answers in {shed_p50:.2f} ms (client median; {shed_fast:.1%} took under 1 ms in "
        "the server). "
        f"Without: goodput {goodput_off:.2f}, {off_timeouts:.0%} of requests timed out, p99 "
        f"{off_p99:.0f} ms (a timed-out request counted at the {TIMEOUT:g} s timeout).",
        "",
        f"RESULT overload goodput_4x_on={goodput_on:.3f} goodput_4x_off={goodput_off:.3f} "
        f"p99_ratio_4x_on={p99_ratio:.2f} server_p99_ratio_4x_on={server_ratio:.2f} "
        f"shed_p50_ms={shed_p50:.3f} shed_under_1ms_server={shed_fast:.3f} "
        f"off_p99_4x_ms={off_p99:.1f} off_timeout_share_4x={off_timeouts:.3f}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="run one benchmark server")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--admission", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.admission)
    else:
        sys.path.insert(0, str(ROOT))
        print(main(quick=args.quick))
