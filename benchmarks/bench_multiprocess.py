"""Scrape time in multiprocess mode after 0, 100 and 500 worker restarts.

Eight live workers (real processes, so their pids are alive) and, per restart, one dead
worker, each with the files prometheus-client writes for a service of 20 routes: the
middleware's two histograms and in-flight gauge, and resilience counters. The files are
real prometheus-client files (its ``MmapedDict``), one made per kind and copied per pid,
for pids no process can have. prometheus-client's ``MultiProcessCollector`` reads every
file at every scrape; buttress folded each dead worker into its archive when it exited
(here: one fold for all of them, which leaves the same state), so it reads the archive
and the live workers' files. Both scrape the same values; every scrape renders the full
text exposition.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from buttress.telemetry import _multiprocess as mp
from buttress.telemetry._names import SIZE_BUCKETS

ROUTES = 20
WORKERS = 8
RESTARTS = (0, 100, 500)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
PID_MAX = int(Path("/proc/sys/kernel/pid_max").read_text())
# restarts, files by contender, best scrape by contender, one fold, every sample
_Row = tuple[int, dict[str, int], dict[str, float], float, dict[str, list[float]]]


def _templates(directory: Path) -> dict[str, Path]:
    """One file per kind, with every series a worker of the service would have."""
    series: dict[str, list[tuple[str, str, list[str], list[str], float]]] = {
        "counter": [],
        "histogram": [],
        "gauge_livesum": [],
    }
    labels = ["http_request_method", "http_route", "http_response_status_code"]
    for route in range(ROUTES):
        values = ["GET", f"/things/{route}/{{id}}", "200"]
        for metric, bounds in (
            ("http_server_request_duration_seconds", DURATION_BUCKETS),
            ("http_server_response_body_size_bytes", SIZE_BUCKETS),
        ):
            for bound in (*bounds, float("inf")):
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                name = metric + "_bucket"
                series["histogram"].append((metric, name, [*labels, "le"], [*values, le], 3.0))
            series["histogram"].append((metric, metric + "_sum", labels, values, 1.5))
    for policy in ("payments", "inventory", "search"):
        for outcome in ("success", "failure"):
            name = "buttress_retry_calls"
            series["counter"].append(
                (name, name + "_total", ["policy", "outcome"], [policy, outcome], 7.0)
            )
        gauge = "buttress_bulkhead_in_use"
        series["gauge_livesum"].append((gauge, gauge, ["policy"], [policy], 0.0))
    series["gauge_livesum"].append(
        ("http_server_active_requests", "http_server_active_requests", ["method"], ["GET"], 0.0)
    )
    paths = {}
    for prefix, rows in series.items():
        path = directory / f"template-{prefix}"
        mmap = MmapedDict(str(path))  # type: ignore[no-untyped-call]
        for metric, name, label_names, label_values, value in rows:
            key = mmap_key(metric, name, label_names, label_values, "help")
            mmap.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
        mmap.close()  # type: ignore[no-untyped-call]
        paths[prefix] = path
    return paths


def _worker(directory: Path, templates: dict[str, Path], pid: int) -> None:
    for prefix, template in templates.items():
        shutil.copyfile(template, directory / f"{prefix}_{pid}.db")


def _scrape_prometheus(directory: Path) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _scrape_buttress(directory: Path) -> bytes:
    registry = CollectorRegistry()
    registry.register(mp.ArchiveCollector(directory))
    return generate_latest(registry)


def _scrape_buttress_cold(directory: Path) -> bytes:
    # As the first scrape a worker answers after a fold: the archive is parsed again.
    with mp._cache_lock:
        mp._cache.clear()
    return _scrape_buttress(directory)


def _time(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def main(quick: bool = False) -> str:
    rounds, number = (3, 2) if quick else (7, 5)
    live = [subprocess.Popen(["sleep", "3600"]) for _ in range(WORKERS)]
    root = Path(tempfile.mkdtemp(prefix="bench-multiprocess-"))
    try:
        templates = _templates(root)
        contenders: dict[tuple[int, str], Callable[[], object]] = {}
        files: dict[int, dict[str, int]] = {}
        folds: dict[int, float] = {}
        for restarts in RESTARTS:
            theirs = root / f"prometheus-{restarts}"
            ours = root / f"buttress-{restarts}"
            for directory in (theirs, ours):
                directory.mkdir()
                for worker in live:
                    _worker(directory, templates, worker.pid)
                for n in range(restarts):
                    _worker(directory, templates, PID_MAX + 1 + n)
            mp.fold_dead_workers(ours)
            # One more worker exits: what gunicorn's child_exit costs the master.
            exited = root / f"exited-{restarts}"
            shutil.copytree(ours, exited)
            _worker(exited, templates, PID_MAX + 1 + restarts)
            start = time.perf_counter()
            mp.fold_dead_workers(exited)
            folds[restarts] = time.perf_counter() - start
            shutil.rmtree(exited)
            same = sorted(_scrape_buttress(ours).splitlines())
            assert same == sorted(_scrape_prometheus(theirs).splitlines()), "not the same values"
            files[restarts] = {
                "prometheus-client": len(list(theirs.glob("*.db"))),
                "buttress": len(list(ours.glob("*.db"))) + (restarts > 0),  # + the archive
            }
            contenders[restarts, "prometheus-client"] = partial(_scrape_prometheus, theirs)
            contenders[restarts, "buttress"] = partial(_scrape_buttress, ours)
            contenders[restarts, "buttress, cold"] = partial(_scrape_buttress_cold, ours)
        samples: dict[tuple[int, str], list[float]] = {key: [] for key in contenders}
        for fn in contenders.values():
            fn()  # warm up
        # Interleaved across contenders and restart counts, so drift hits all alike.
        for _ in range(rounds):
            for key, fn in contenders.items():
                samples[key].append(_time(fn, number))
    finally:
        for worker in live:
            worker.kill()
            worker.wait()
        shutil.rmtree(root, ignore_errors=True)
    rows: list[_Row] = []
    for restarts in RESTARTS:
        mine = {name: values for (r, name), values in samples.items() if r == restarts}
        best = {name: min(values) for name, values in mine.items()}
        rows.append((restarts, files[restarts], best, folds[restarts], mine))
    return _report(rows, rounds, number)


def _report(rows: list[_Row], rounds: int, number: int) -> str:
    base = rows[0][2]
    lines = [
        "## multiprocess: one scrape after N worker restarts",
        "",
        f"{WORKERS} live workers, {ROUTES} routes; best of {rounds} rounds of {number} scrapes, ms",
        "(x: times the same contender's figure with no restart)",
        "",
        "| restarts | files, prometheus-client | scrape, prometheus-client | files, buttress "
        "| scrape, buttress | scrape, buttress (cold archive) | fold one exited worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for restarts, files, best, fold, _ in rows:
        cells = [str(restarts), str(files["prometheus-client"])]
        cells.append(_cell(best["prometheus-client"], base["prometheus-client"]))
        cells.append(str(files["buttress"]))
        cells.append(_cell(best["buttress"], base["buttress"]))
        cells.append(_cell(best["buttress, cold"], base["buttress, cold"]))
        cells.append(f"{fold * 1e3:.1f} ms")
        lines.append("| " + " | ".join(cells) + " |")
    last = rows[-1][2]
    spread = {name: statistics.median(values) / min(values) for name, values in rows[-1][4].items()}
    result = [
        f"buttress_ms_0={base['buttress'] * 1e3:.2f}",
        f"buttress_ms_100={rows[1][2]['buttress'] * 1e3:.2f}",
        f"buttress_ms_500={last['buttress'] * 1e3:.2f}",
        f"buttress_growth_100={rows[1][2]['buttress'] / base['buttress']:.2f}",
        f"buttress_growth_500={last['buttress'] / base['buttress']:.2f}",
        f"buttress_cold_growth_500={last['buttress, cold'] / base['buttress, cold']:.2f}",
        f"prometheus_ms_0={base['prometheus-client'] * 1e3:.2f}",
        f"prometheus_ms_500={last['prometheus-client'] * 1e3:.2f}",
        f"prometheus_growth_500={last['prometheus-client'] / base['prometheus-client']:.2f}",
        f"speedup_500={last['prometheus-client'] / last['buttress']:.1f}",
        f"fold_ms_500={rows[-1][3] * 1e3:.1f}",
        f"spread_median_over_best={max(spread.values()):.2f}",
    ]
    lines += ["", "RESULT multiprocess " + " ".join(result)]
    return "\n".join(lines) + "\n"


def _cell(value: float, base: float) -> str:
    return f"{value * 1e3:.2f} ({value / base:.2f}x)"


if __name__ == "__main__":
    import sys

    print(main(quick="--quick" in sys.argv))
