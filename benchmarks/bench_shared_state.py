"""Shared breaker and rate-limiter state in Redis: batched against per-call, side by side.

Four worker processes call one shared ``CircuitBreaker`` behind one shared ``RateLimiter``
on a real redis-server, with ``RedisStore(mode="batched")`` and then with
``mode="per_call"``, in the same run:

1. Redis commands per second (``total_commands_processed`` from INFO) with each process
   paced at half, once and twice a base call rate: batched should stay flat.
2. The time from the upstream failing to every process refusing: with all four busy, and
   with one busy and three at a trickle (those learn it mostly from Redis).
3. The fleet's admitted rate against the limit over ``duration`` seconds, every process
   calling as fast as it can.

Usage: ``python benchmarks/bench_shared_state.py [--quick] [--duration SECONDS]``.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import shutil
import socket
import subprocess
import time
from typing import Any

import redis

PROCESSES = 4
BASE_RATE = 500.0  # calls per second per process, halved and doubled
LIMIT = 1000.0  # the fleet's rate limit in phase 3 (burst: its default, one second's worth)
MODES = ("batched", "per_call")


class UpstreamDown(Exception):
    pass


def _worker(index: int, mode: str, url: str, shared: dict[str, Any]) -> None:
    """One replica: a limiter, then a breaker, around an upstream, until told to stop.

    The parent steers every phase through ``shared`` arrays: ``flags`` [stop, go, upstream
    failing, limited, phase], ``rates`` (calls/s per process, 0: as fast as it can),
    ``failing`` (whether the upstream fails for this process); it reads ``counts`` (calls,
    then admitted calls), ``first_refusal`` and ``errors``. Each phase has its own breaker.
    """
    from buttress import CircuitBreaker, CircuitOpen, RateLimited, RateLimiter, RedisStore
    from buttress.events import Registry, StoreUnavailable

    flags, rates, failing = shared["flags"], shared["rates"], shared["failing"]
    counts, first_refusal, errors = shared["counts"], shared["first_refusal"], shared["errors"]
    store = RedisStore(url, service="bench", mode=mode, socket_timeout=1.0)  # type: ignore[arg-type]
    events = Registry()

    def count_fallbacks(event: object) -> None:
        if isinstance(event, StoreUnavailable):
            shared["fallbacks"][index] += 1

    events.add(count_fallbacks)
    breakers: dict[int, CircuitBreaker] = {}
    generous = RateLimiter("generous", rate=1e9, store=store, events=events)
    limited = RateLimiter("limited", rate=LIMIT, store=store, events=events)

    def upstream() -> None:
        if flags[2] and failing[index]:
            raise UpstreamDown

    while not flags[1]:
        time.sleep(0.001)
    due = time.monotonic()
    while not flags[0]:
        phase = int(flags[4])
        breaker = breakers.get(phase)
        if breaker is None:
            breakers.clear()  # the last phase's breaker goes, and its exchanges with it
            gc.collect()  # (a breaker and its backend refer to each other)
            breaker = breakers[phase] = CircuitBreaker(
                f"upstream{phase}",
                consecutive_failures=5,
                reset_timeout=600,
                store=store,
                events=events,
            )
        rate = rates[index]
        if rate:
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            due = max(due + 1 / rate, now - 0.1)  # no catch-up burst after a stall
        counts[index] += 1
        try:
            (limited if flags[3] else generous).acquire()
        except RateLimited:
            continue
        except Exception:
            errors[index] += 1
            continue
        counts[PROCESSES + index] += 1
        try:
            breaker.call(upstream)
        except UpstreamDown:
            pass
        except CircuitOpen:
            if flags[2] and not first_refusal[index]:
                first_refusal[index] = time.monotonic()
        except Exception:
            errors[index] += 1
    store.close()


class _Fleet:
    """Four workers of one mode, steered phase by phase, stopped together."""

    def __init__(self, mode: str, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.shared = {
            "flags": context.RawArray("d", 5),
            "rates": context.RawArray("d", PROCESSES),
            "failing": context.RawArray("b", PROCESSES),
            "counts": context.RawArray("q", 2 * PROCESSES),
            "first_refusal": context.RawArray("d", PROCESSES),
            "errors": context.RawArray("q", PROCESSES),
            "fallbacks": context.RawArray("q", PROCESSES),
        }
        self.flags = self.shared["flags"]
        self.processes = [
            context.Process(target=_worker, args=(i, mode, url, self.shared), daemon=True)
            for i in range(PROCESSES)
        ]

    def __enter__(self) -> _Fleet:
        for process in self.processes:
            process.start()
        self.flags[1] = 1
        self.phase(rates=[BASE_RATE] * PROCESSES)
        counts = self.shared["counts"]
        deadline = time.monotonic() + 120
        while min(counts[:PROCESSES]) < 50:  # every worker imported, connected, calling
            if time.monotonic() > deadline:
                raise TimeoutError("the workers never started calling")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.flags[0] = 1
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    def phase(self, *, rates: list[float], limited: bool = False) -> None:
        """A new phase: a fresh breaker, the upstream healthy, these rates."""
        self.flags[2] = 0
        self.shared["first_refusal"][:] = [0.0] * PROCESSES
        self.shared["failing"][:] = [1] * PROCESSES
        self.shared["rates"][:] = rates
        self.flags[3] = float(limited)
        self.flags[4] += 1
        time.sleep(0.6)  # past the new breaker's first exchanges

    def calls(self) -> int:
        return sum(self.shared["counts"][:PROCESSES])

    def admitted(self) -> int:
        return sum(self.shared["counts"][PROCESSES:])

    def errors(self) -> int:
        return sum(self.shared["errors"][:])

    def fallbacks(self) -> int:
        """How often a worker's strategy found Redis unreachable (and decided locally)."""
        return sum(self.shared["fallbacks"][:])


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def command_rates(fleet: _Fleet, client: redis.Redis, seconds: float) -> dict[str, float]:
    """Redis commands/s and calls/s with every process paced at half, 1x and 2x BASE_RATE."""
    figures: dict[str, float] = {}
    for label, factor in (("half", 0.5), ("base", 1.0), ("double", 2.0)):
        fleet.phase(rates=[BASE_RATE * factor] * PROCESSES)
        calls, commands, start = fleet.calls(), _commands(client), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        # minus the INFO command that read the second count
        figures[f"cmds_{label}"] = (_commands(client) - commands - 1) / elapsed
        figures[f"calls_{label}"] = (fleet.calls() - calls) / elapsed
    return figures


def time_to_refuse(fleet: _Fleet, *, spread: bool) -> float:
    """Seconds from the upstream failing to the last process's first refusal.

    ``spread``: one process calls at full rate and three at a trickle (10 calls/s), so
    the three mostly learn of the failure from Redis rather than from their own calls.
    """
    rates = [BASE_RATE, 10.0, 10.0, 10.0] if spread else [BASE_RATE] * PROCESSES
    fleet.phase(rates=rates)
    first_refusal = fleet.shared["first_refusal"]
    failed_at = time.monotonic()
    fleet.flags[2] = 1
    deadline = failed_at + 10
    while not all(first_refusal[:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return (max(first_refusal[:]) if all(first_refusal[:]) else deadline) - failed_at


def admitted_rate(fleet: _Fleet, seconds: float) -> float:
    """The fleet's admitted calls/s over ``seconds``, every process at full speed."""
    fleet.phase(rates=[0.0] * PROCESSES, limited=True)
    # Measured once the bucket's initial burst is spent: when calls are being refused.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        refused = fleet.calls() - fleet.admitted()
        time.sleep(0.2)
        if fleet.calls() - fleet.admitted() - refused > 100:
            break
    # Leases run dry before the shared bucket does: a second more for it to drain too.
    time.sleep(1.0)
    admitted, start = fleet.admitted(), time.monotonic()
    time.sleep(seconds)
    return (fleet.admitted() - admitted) / (time.monotonic() - start)


def main(quick: bool = False, duration: float | None = None) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "redis-server is not installed (scripts/install-services.sh installs it)"
    seconds = 1.0 if quick else 5.0
    window = duration if duration is not None else (3.0 if quick else 30.0)
    figures: dict[str, dict[str, float]] = {}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    server = subprocess.Popen([*argv, "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        for mode in MODES:
            with _Fleet(mode, url) as fleet:
                row = command_rates(fleet, client, seconds)
                row["open_all_s"] = time_to_refuse(fleet, spread=False)
                row["open_spread_s"] = time_to_refuse(fleet, spread=True)
                row["admitted_ratio"] = admitted_rate(fleet, window) / LIMIT
                row["errors"] = fleet.errors()
                row["fallbacks"] = fleet.fallbacks()
            figures[mode] = row
            client.flushall()
        client.close()
    finally:
        server.terminate()
        server.wait(10)
    return _report(figures, seconds, window)


def _report(figures: dict[str, dict[str, float]], seconds: float, window: float) -> str:
    b, p = figures["batched"], figures["per_call"]
    lines = [
        f"## Shared state in Redis: {PROCESSES} processes, batched vs per-call",
        "",
        f"Redis commands/s (INFO, over {seconds:g} s) with each process paced at "
        f"{BASE_RATE / 2:g}, {BASE_RATE:g} and {2 * BASE_RATE:g} calls/s; time from the "
        "upstream failing to every process refusing; the fleet's admitted rate at full "
        f"speed against a limit of {LIMIT:g}/s over {window:g} s.",
        "",
        "| figure | batched | per_call |",
        "|---|---|---|",
    ]
    for label in ("half", "base", "double"):
        lines.append(
            f"| calls/s, {label} | {b[f'calls_{label}']:.0f} | {p[f'calls_{label}']:.0f} |"
        )
        lines.append(
            f"| Redis commands/s, {label} | {b[f'cmds_{label}']:.1f} | {p[f'cmds_{label}']:.0f} |"
        )
    per_process = b["cmds_double"] / PROCESSES
    lines += [
        f"| Redis commands/s per process, double | {per_process:.1f} | "
        f"{p['cmds_double'] / PROCESSES:.0f} |",
        f"| upstream fails for all: every process refusing after (s) | {b['open_all_s']:.3f} | "
        f"{p['open_all_s']:.3f} |",
        f"| same, one process busy and three at a trickle (s) | {b['open_spread_s']:.3f} | "
        f"{p['open_spread_s']:.3f} |",
        f"| admitted / limit | {b['admitted_ratio']:.3f} | {p['admitted_ratio']:.3f} |",
        f"| errors reaching callers | {b['errors']:.0f} | {p['errors']:.0f} |",
        f"| Redis unreachable (local decisions) | {b['fallbacks']:.0f} | {p['fallbacks']:.0f} |",
        "",
    ]
    flat = b["cmds_double"] / b["cmds_half"] if b["cmds_half"] else 0.0
    grows = p["cmds_double"] / p["cmds_half"] if p["cmds_half"] else 0.0
    result = {
        "batched_cmds_per_proc": f"{per_process:.1f}",
        "batched_cmds_double_over_half": f"{flat:.2f}",
        "per_call_cmds_double_over_half": f"{grows:.2f}",
        "per_call_over_batched_cmds": f"{p['cmds_double'] / max(b['cmds_double'], 1e-9):.0f}",
        "batched_open_all_s": f"{b['open_all_s']:.3f}",
        "batched_open_spread_s": f"{b['open_spread_s']:.3f}",
        "per_call_open_spread_s": f"{p['open_spread_s']:.3f}",
        "batched_admitted_ratio": f"{b['admitted_ratio']:.3f}",
        "per_call_admitted_ratio": f"{p['admitted_ratio']:.3f}",
        "errors": f"{b['errors'] + p['errors']:.0f}",
    }
    lines.append("RESULT shared_state " + " ".join(f"{k}={v}" for k, v in result.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short phases, for a smoke run")
    parser.add_argument("--duration", type=float, help="seconds of the admitted-rate phase")
    args = parser.parse_args()
    print(main(quick=args.quick, duration=args.duration))
