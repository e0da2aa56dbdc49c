"""End to end: throughput and latency of a hello-world route under a real server.

uvicorn (h11, one worker) serves a Starlette app and gunicorn (one sync worker) a Flask
app, each bare, with buttress's middleware and with the peer stacks of bench_middleware
(asgi-correlation-id + opentelemetry-instrumentation-asgi + starlette-exporter or
prometheus-fastapi-instrumentator; opentelemetry-instrumentation-wsgi for WSGI). Every
stack runs with 100% and 1% of root requests sampled, with 1 and 100 routes (the request
hits the last one). The server is pinned to one core and the load generator to the other
(taskset, where the machine has two cores), all on 127.0.0.1.

Every stack of one case is served at once, each by its own server process, and the rounds
interleave them (in a rotating order), so drift on a shared machine hits all alike. The
losses, overheads and ratios come from the server's CPU time per request (user + system,
read from /proc), which other processes on a shared machine disturb far less than
wall-clock throughput does: a loss is what the stack costs a server on a core of its own.
Each figure is the stack's best round, with the range over rounds beside it (losses and
ratios per round pair the stacks measured in that round). req/s, p50 and p99 are as the
load generator saw them.

The load generator is wrk (Debian's package); without it, an asyncio client in this
process stands in, and the report says so: it is slower than the servers it measures, so
its ratios understate every overhead.

"floor" is a middleware that only starts an SDK server span, sets ten attributes and ends
it (as in bench_middleware): what no traced middleware can go below. For a narrower run,
``E2E_SERVERS`` (``uvicorn,gunicorn``), ``E2E_SAMPLINGS`` (``1,0.01``) and
``E2E_ROUTE_COUNTS`` (``1,100``) pick the cases; ``E2E_BASELINE=path/to/src`` adds a
"baseline" stack, buttress imported from that source tree, to compare two versions of
the code in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASGI_STACKS = {
    "bare": "bare",
    "floor": "floor (SDK span, 10 attributes)",
    "buttress": "buttress",
    "peers": "asgi-correlation-id + otel-asgi + starlette-exporter",
    "pfi": "asgi-correlation-id + otel-asgi + instrumentator",
}
WSGI_STACKS = {
    "bare": "bare",
    "floor": "floor (SDK span, 10 attributes)",
    "buttress": "buttress",
    "peers": "otel-wsgi",
}
BASELINE = "baseline"
_STARTUP_TIMEOUT = 30.0


@dataclass
class Sample:
    rps: float
    p50: float  # seconds
    p99: float
    requests: int
    cpu: float = 0.0  # the server's CPU seconds (user + system) per request


@dataclass
class Case:
    server: str  # "uvicorn" or "gunicorn"
    sampling: float
    routes: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.server}, {self.sampling:.0%} sampled, {self.routes} route(s)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cores() -> tuple[list[str], list[str]]:
    """taskset prefixes for the server and the load generator (empty without taskset)."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return [], []
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"]


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} not listening after {_STARTUP_TIMEOUT} s")


@contextlib.contextmanager
def _serve(server: str, stack: str, sampling: float, routes: int) -> Iterator[tuple[int, int]]:
    port = _free_port()
    pin, _ = _cores()
    # The baseline stack is buttress imported from another source tree, ahead of ours.
    baseline = os.environ.get("E2E_BASELINE") if stack == BASELINE else None
    path = [baseline, str(ROOT), os.environ.get("PYTHONPATH")]
    env = {
        **os.environ,
        "E2E_STACK": "buttress" if stack == BASELINE else stack,
        "E2E_SAMPLING": str(sampling),
        "E2E_ROUTES": str(routes),
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
    }
    if server == "uvicorn":
        command = [
            *pin,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks._e2e_app:asgi_app",
            "--http",
            "h11",
            "--loop",
            "asyncio",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        command = [
            *pin,
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "benchmarks._e2e_app:wsgi_app()",
        ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(port, process)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- load generators ------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _wrk(port: int, path: str, seconds: float, connections: int) -> Sample:
    _, pin = _cores()
    out = subprocess.run(
        [
            *pin,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    if rps is None or count is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's report:\n{out}")

    def seconds_of(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(number) * _UNITS[unit]

    return Sample(
        float(rps.group(1)),
        seconds_of(percentiles["50"]),
        seconds_of(percentiles["99"]),
        int(count.group(1)),
    )


async def _python_load(port: int, path: str, seconds: float, connections: int) -> Sample:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                length = re.search(rb"content-length:\s*(\d+)", lower)
                await reader.readexactly(int(length.group(1)) if length else 0)
                latencies.append(time.perf_counter() - started)
                if b"connection: close" in lower:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return Sample(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        len(latencies),
    )


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its children (gunicorn's worker), from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        this = int(stat.parent.name)
        if this == pid or int(fields[1]) == pid:  # fields[1] is the parent's pid
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _load(
    server: tuple[int, int], path: str, seconds: float, connections: int, use_wrk: bool
) -> Sample:
    port, pid = server
    before = _cpu_seconds(pid)
    if use_wrk:
        sample = _wrk(port, path, seconds, connections)
    else:
        sample = asyncio.run(_python_load(port, path, seconds, connections))
    sample.cpu = (_cpu_seconds(pid) - before) / max(sample.requests, 1)
    return sample


# --- the run --------------------------------------------------------------------------------


def _run_case(case: Case, stacks: dict[str, str], rounds: int, seconds: float, wrk: bool) -> None:
    path = f"/r{case.routes - 1}/items/42"
    # gunicorn's sync worker answers one connection at a time (and closes it): one
    # connection keeps it busy without measuring its backlog.
    connections = 10 if case.server == "uvicorn" else 1
    with contextlib.ExitStack() as servers:
        ports = {
            stack: servers.enter_context(_serve(case.server, stack, case.sampling, case.routes))
            for stack in stacks
        }
        for served in ports.values():  # warm up: imports, first-request caches, JIT-free Python
            _load(served, path, min(seconds, 1.0), connections, wrk)
        case.samples = {stack: [] for stack in stacks}
        for round_ in range(rounds):
            # Rotate the order each round, so no stack always follows another.
            order = list(stacks)
            order = order[round_ % len(order) :] + order[: round_ % len(order)]
            for stack in order:
                case.samples[stack].append(_load(ports[stack], path, seconds, connections, wrk))


def _best(case: Case, stack: str) -> float:
    """The stack's CPU seconds per request in its best round (the stable figure here)."""
    return min(r.cpu for r in case.samples[stack])


def _loss(case: Case, stack: str) -> tuple[float, list[float]]:
    """Throughput lost against bare on a core of its own (from CPU per request)."""
    s = case.samples
    rounds = [1 - s["bare"][i].cpu / s[stack][i].cpu for i in range(len(s["bare"]))]
    return 1 - _best(case, "bare") / _best(case, stack), rounds


def _overhead(case: Case, stack: str) -> tuple[float, list[float]]:
    """The server's CPU seconds per request over bare's."""
    s = case.samples
    rounds = [s[stack][i].cpu - s["bare"][i].cpu for i in range(len(s["bare"]))]
    return _best(case, stack) - _best(case, "bare"), rounds


def _ratio(case: Case, ours: str, theirs: str) -> tuple[float, list[float]]:
    """Our overhead over the peer's: from the best rounds, and per round."""
    (mine, my_rounds), (peer, peer_rounds) = _overhead(case, ours), _overhead(case, theirs)
    rounds = [m / p for m, p in zip(my_rounds, peer_rounds, strict=True) if p > 0]
    return (mine / peer if peer > 0 else float("nan")), rounds


def _spread(figure: tuple[float, list[float]], fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    best, rounds = figure
    text = fmt.format(best * scale)
    if len(rounds) > 1:
        text += f" ({fmt.format(min(rounds) * scale)} to {fmt.format(max(rounds) * scale)})"
    return text


def _table(case: Case, stacks: dict[str, str]) -> list[str]:
    lines = [f"### {case.label}", ""]
    lines += ["| stack | CPU us/req | req/s | p50 ms | p99 ms | loss vs bare | overhead us/req |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for stack, name in stacks.items():
        rows = case.samples[stack]
        cpu = _spread((_best(case, stack), [r.cpu for r in rows]), "{:.0f}", 1e6)
        rps = _spread((max(r.rps for r in rows), [r.rps for r in rows]), "{:,.0f}")
        p50 = _spread((min(r.p50 for r in rows), [r.p50 for r in rows]), "{:.2f}", 1e3)
        p99 = _spread((min(r.p99 for r in rows), [r.p99 for r in rows]), "{:.2f}", 1e3)
        if stack == "bare":
            lines.append(f"| {name} | {cpu} | {rps} | {p50} | {p99} | - | - |")
            continue
        loss = _spread(_loss(case, stack), "{:.0f}%", 100)
        over = _spread(_overhead(case, stack), "{:.0f}", 1e6)
        lines.append(f"| {name} | {cpu} | {rps} | {p50} | {p99} | {loss} | {over} |")
    return [*lines, ""]


def _available(stacks: dict[str, str]) -> dict[str, str]:
    """The stacks whose packages are installed (the bench extra has them all)."""
    needs = {
        "peers": ("asgi_correlation_id", "starlette_exporter"),
        "pfi": ("asgi_correlation_id",),
    }
    needs["pfi"] += ("prometheus_fastapi_instrumentator",)
    found = {}
    for stack, name in stacks.items():
        try:
            for module in needs.get(stack, ()):
                importlib.import_module(module)
        except ImportError:
            continue
        found[stack] = name
    return found


def _choice(variable: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(variable, default).split(",") if item.strip()]


def main(quick: bool = False) -> str:
    use_wrk = shutil.which("wrk") is not None and os.environ.get("E2E_LOADGEN") != "python"
    rounds, seconds = (1, 1.0) if quick else (int(os.environ.get("E2E_ROUNDS", "5")), 2.0)
    samplings = (1.0,) if quick else tuple(float(s) for s in _choice("E2E_SAMPLINGS", "1,0.01"))
    route_counts = (1,) if quick else tuple(int(r) for r in _choice("E2E_ROUTE_COUNTS", "1,100"))
    servers = _choice("E2E_SERVERS", "uvicorn,gunicorn")
    cases: list[Case] = []
    asgi = _available(ASGI_STACKS)
    wsgi = dict(WSGI_STACKS)
    if quick:  # a smoke run: one peer stack is enough to show the ratios are computed
        asgi.pop("pfi", None)
    if os.environ.get("E2E_BASELINE"):
        for stacks in (asgi, wsgi):
            stacks[BASELINE] = f"buttress from {os.environ['E2E_BASELINE']}"
    for server, stacks in (("uvicorn", asgi), ("gunicorn", wsgi)):
        if server not in servers:
            continue
        for sampling in samplings:
            for routes in route_counts:
                case = Case(server, sampling, routes)
                _run_case(case, stacks, rounds, seconds, use_wrk)
                cases.append(case)

    generator = "wrk" if use_wrk else "python fallback (asyncio client, understates overheads)"
    pinned = "server on core 0, load on core 1" if _cores()[0] else "not pinned (no taskset)"
    out = [f"## e2e: real servers, load from {generator}, {pinned}", ""]
    out.append(
        f"{rounds} interleaved round(s) of {seconds:.0f} s each. Loss, overhead and ratios"
        " come from the server's CPU time per request (user + system, from /proc), which"
        " other processes on a shared machine disturb far less than wall-clock throughput;"
        " each stack's best round, with the range over rounds in parentheses (losses and"
        " ratios per round pair the stacks of one round). req/s and latency are wall-clock."
    )
    out.append("")
    for case in cases:
        out += _table(case, asgi if case.server == "uvicorn" else wsgi)

    def find(server: str, sampling: float, routes: int) -> Case | None:
        for c in cases:
            if (c.server, c.sampling, c.routes) == (server, sampling, routes):
                return c
        return None

    out += ["### ratios (buttress overhead / peer stack overhead, per round)", ""]
    out += ["| case | vs starlette-exporter / otel-wsgi | vs instrumentator | floor / peers |"]
    out += ["|---|---|---|---|"]
    for case in cases:
        main_ = _spread(_ratio(case, "buttress", "peers")) if "peers" in case.samples else "-"
        alt = _spread(_ratio(case, "buttress", "pfi")) if "pfi" in case.samples else "-"
        floor = _spread(_ratio(case, "floor", "peers")) if "peers" in case.samples else "-"
        out.append(f"| {case.label} | {main_} | {alt} | {floor} |")
    out.append("")
    if os.environ.get("E2E_BASELINE"):
        out += ["### buttress overhead / baseline's (per round)", ""]
        out += ["| case | ratio |", "|---|---|"]
        for case in cases:
            out.append(f"| {case.label} | {_spread(_ratio(case, 'buttress', BASELINE))} |")
        out.append("")

    result = {"loadgen": "wrk" if use_wrk else "python"}
    for server, prefix in (("uvicorn", "asgi"), ("gunicorn", "wsgi")):
        for sampling, tag in ((1.0, "sampled"), (0.01, "1pct")):
            one = find(server, sampling, 1)
            if one is None:
                continue
            result[f"{prefix}_loss_{tag}"] = f"{_loss(one, 'buttress')[0]:.3f}"
            if "peers" in one.samples:
                result[f"{prefix}_ratio_{tag}"] = f"{_ratio(one, 'buttress', 'peers')[0]:.3f}"
            wide = find(server, sampling, 100)
            if wide is not None:
                growth = _overhead(wide, "buttress")[0] / _overhead(one, "buttress")[0]
                result[f"{prefix}_routes_{tag}"] = f"{growth:.2f}"
    out.append("RESULT e2e " + " ".join(f"{k}={v}" for k, v in result.items()))
    return "\n".join(out)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
