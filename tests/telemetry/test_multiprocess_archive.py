"""The multiprocess archive: dead workers folded once, live ones read, nothing lost or doubled.

Files are written in prometheus-client's own format (its ``MmapedDict``) for pids that
cannot exist (above the kernel's ``pid_max``: dead workers) or that do (this process, a
sleeping child: live workers).
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

import buttress
import buttress.multiprocess
from buttress import ConfigurationError
from buttress.telemetry._multiprocess import ARCHIVE, ArchiveCollector, fold_dead_workers

PID_MAX = int(Path("/proc/sys/kernel/pid_max").read_text())


def dead(n: int) -> int:
    """A pid no process can have."""
    return PID_MAX + 1 + n


def write(
    directory: Path,
    prefix: str,
    pid: int,
    series: dict[tuple[str, str, tuple[tuple[str, str], ...]], float],
    ts: float = 0.0,
) -> None:
    """One prometheus-client file, made complete before it gets its real name."""
    temporary = directory / f"tmp-{prefix}-{pid}"
    values = MmapedDict(str(temporary))  # type: ignore[no-untyped-call]
    for (metric, name, labels), value in series.items():
        key = mmap_key(metric, name, [k for k, _ in labels], [v for _, v in labels], "help")
        values.write_value(key, value, ts)  # type: ignore[no-untyped-call]
    values.close()  # type: ignore[no-untyped-call]
    temporary.rename(directory / f"{prefix}_{pid}.db")


def requests(
    n: float, route: str = "/a"
) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    return {("requests", "requests_total", (("route", route),)): n}


def latency(fast: float, slow: float) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    labels = (("route", "/a"),)
    return {
        ("latency", "latency_bucket", (*labels, ("le", "0.1"))): fast,
        ("latency", "latency_bucket", (*labels, ("le", "+Inf"))): slow,
        ("latency", "latency_sum", labels): fast * 0.05 + slow * 2,
    }


def gauge(value: float) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    return {("active", "active", (("method", "GET"),)): value}


def scrape(
    directory: Path, collector: str = "buttress"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    if collector == "buttress":
        registry.register(ArchiveCollector(directory))
    else:
        multiprocess.MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def db_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.db"))


@pytest.fixture
def live_pid() -> Iterator[int]:
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_matches_prometheus_client_when_every_worker_lives(tmp_path: Path, live_pid: int) -> None:
    for pid in (os.getpid(), live_pid):
        write(tmp_path, "counter", pid, requests(3))
        write(tmp_path, "histogram", pid, latency(2, 1))
        write(tmp_path, "gauge_livesum", pid, gauge(1))
        write(tmp_path, "gauge_max", pid, {("peak", "peak", ()): pid})
        write(tmp_path, "gauge_all", pid, {("temp", "temp", ()): 20})
    write(tmp_path, "gauge_mostrecent", live_pid, {("last", "last", ()): 5}, ts=2.0)
    write(tmp_path, "gauge_mostrecent", os.getpid(), {("last", "last", ()): 9}, ts=1.0)

    ours = scrape(tmp_path)
    assert ours == scrape(tmp_path, "prometheus_client")
    assert ours[("requests_total", (("route", "/a"),))] == 6
    assert ours[("latency_count", (("route", "/a"),))] == 6
    assert ours[("last", ())] == 5


def test_dead_workers_fold_into_one_archive_and_the_totals_carry_on(
    tmp_path: Path, live_pid: int
) -> None:
    write(tmp_path, "counter", live_pid, requests(1))
    write(tmp_path, "histogram", live_pid, latency(1, 0))
    for n in range(50):
        write(tmp_path, "counter", dead(n), requests(2))
        write(tmp_path, "histogram", dead(n), latency(1, 1))
    before = scrape(tmp_path, "prometheus_client")

    assert fold_dead_workers(tmp_path) == 100
    assert db_files(tmp_path) == [f"counter_{live_pid}.db", f"histogram_{live_pid}.db"]
    after = scrape(tmp_path)
    assert after == before
    assert after[("requests_total", (("route", "/a"),))] == 101
    assert after[("latency_bucket", (("le", "0.1"), ("route", "/a")))] == 51
    assert after[("latency_bucket", (("le", "+Inf"), ("route", "/a")))] == 101
    assert after[("latency_count", (("route", "/a"),))] == 101

    # A second generation adds to the first.
    write(tmp_path, "counter", dead(99), requests(4, route="/b"))
    assert scrape(tmp_path)[("requests_total", (("route", "/b"),))] == 4  # the scrape folds
    assert db_files(tmp_path) == [f"counter_{live_pid}.db", f"histogram_{live_pid}.db"]
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 101


def test_dead_workers_gauges_follow_their_multiprocess_mode(tmp_path: Path, live_pid: int) -> None:
    write(tmp_path, "gauge_livesum", live_pid, gauge(1))
    write(tmp_path, "gauge_livesum", dead(1), gauge(7))  # requests in flight when it died
    write(tmp_path, "gauge_liveall", dead(1), {("up", "up", ()): 1})
    write(tmp_path, "gauge_max", dead(1), {("peak", "peak", ()): 8})
    write(tmp_path, "gauge_max", dead(2), {("peak", "peak", ()): 3})
    write(tmp_path, "gauge_min", dead(1), {("low", "low", ()): 8})
    write(tmp_path, "gauge_min", dead(2), {("low", "low", ()): 3})
    write(tmp_path, "gauge_sum", dead(1), {("total", "total", ()): 2})
    write(tmp_path, "gauge_sum", dead(2), {("total", "total", ()): 3})
    write(tmp_path, "gauge_mostrecent", dead(1), {("last", "last", ()): 1}, ts=5.0)
    write(tmp_path, "gauge_mostrecent", dead(2), {("last", "last", ()): 2}, ts=4.0)
    write(tmp_path, "gauge_all", dead(1), {("temp", "temp", ()): 20})
    write(tmp_path, "gauge_all", dead(2), {("temp", "temp", ()): 30})

    fold_dead_workers(tmp_path)

    got = scrape(tmp_path)
    assert got[("active", (("method", "GET"),))] == 1  # only the live worker's
    assert not any(name == "up" for name, _ in got)
    assert got[("peak", ())] == 8
    assert got[("low", ())] == 3
    assert got[("total", ())] == 5
    assert got[("last", ())] == 1
    # "all" keeps each worker's series, as prometheus-client does for dead workers.
    assert got[("temp", (("pid", str(dead(1))),))] == 20
    assert got[("temp", (("pid", str(dead(2))),))] == 30
    assert db_files(tmp_path) == [f"gauge_livesum_{live_pid}.db"]


def test_a_held_lease_or_a_live_pid_is_never_folded(tmp_path: Path, live_pid: int) -> None:
    write(tmp_path, "counter", dead(1), requests(1))
    write(tmp_path, "counter", live_pid, requests(1))  # alive, never took a lease
    lease = tmp_path / f"buttress-lease-{dead(1)}.lock"
    with open(lease, "ab") as held:
        # A process in another pid namespace would look dead to kill(): its lease says not.
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert fold_dead_workers(tmp_path) == 0
    assert fold_dead_workers(tmp_path) == 1
    assert db_files(tmp_path) == [f"counter_{live_pid}.db"]
    assert not lease.exists()
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 2


def test_a_scrape_does_not_wait_to_fold_but_still_reads_everything(tmp_path: Path) -> None:
    write(tmp_path, "counter", dead(1), requests(3))
    with open(tmp_path / "buttress.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_SH)  # another scrape is reading
        assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 3
        assert fold_dead_workers(tmp_path, wait=0) == 0
    assert db_files(tmp_path) == [f"counter_{dead(1)}.db"]
    assert fold_dead_workers(tmp_path, wait=0) == 1


def test_a_fold_that_died_after_its_archive_is_not_counted_twice(tmp_path: Path) -> None:
    write(tmp_path, "counter", dead(1), requests(3))
    fold_dead_workers(tmp_path)
    # As if the folder died after writing the archive, before removing dead(2)'s file.
    write(tmp_path, "counter", dead(2), requests(5))
    archive = json.loads((tmp_path / ARCHIVE).read_text())
    archive["values"][0][3] += 5
    archive["generation"] += 1
    (tmp_path / ARCHIVE).write_text(json.dumps(archive))
    journal = {"generation": archive["generation"], "files": [f"counter_{dead(2)}.db"]}
    (tmp_path / "buttress-folding.json").write_text(json.dumps(journal))

    with open(tmp_path / "buttress.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_SH)  # keeps the scrape from folding
        assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 8
    fold_dead_workers(tmp_path)
    assert db_files(tmp_path) == []
    assert not (tmp_path / "buttress-folding.json").exists()
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 8


def test_a_fold_that_died_before_its_archive_loses_nothing(tmp_path: Path) -> None:
    write(tmp_path, "counter", dead(1), requests(3))
    (tmp_path / "buttress-folding.json").write_text(
        json.dumps({"generation": 1, "files": [f"counter_{dead(1)}.db"]})
    )
    with open(tmp_path / "buttress.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
        assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 3
    assert fold_dead_workers(tmp_path) == 1
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 3


def _fold_and_scrape(
    directory: str, rounds: int, queue: multiprocessing.Queue[list[float]]
) -> None:
    seen = []
    for _ in range(rounds):
        seen.append(scrape(Path(directory)).get(("requests_total", (("route", "/a"),)), 0.0))
    queue.put(seen)


def test_concurrent_scrapes_and_folds_never_double_or_lose_a_count(tmp_path: Path) -> None:
    # Dead workers keep appearing while two other processes scrape (and so fold) at once:
    # each one's totals only grow, and never pass what was written.
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[float]] = context.Queue()
    scrapers = [
        context.Process(target=_fold_and_scrape, args=(str(tmp_path), 60, queue)) for _ in range(2)
    ]
    for process in scrapers:
        process.start()
    written = 0
    while any(p.is_alive() for p in scrapers) and written < 2000:
        write(tmp_path, "counter", dead(written), requests(1))
        written += 1
    results = [queue.get(timeout=60) for _ in scrapers]
    for process in scrapers:
        process.join(timeout=30)
    for seen in results:
        assert seen == sorted(seen)
        assert seen[-1] <= written
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == written
    assert db_files(tmp_path) == []


def test_clear_empties_only_what_metrics_wrote(tmp_path: Path) -> None:
    write(tmp_path, "counter", dead(1), requests(3))
    write(tmp_path, "counter", os.getpid(), requests(1))  # the master's own (preload_app)
    fold_dead_workers(tmp_path)
    write(tmp_path, "gauge_livesum", dead(2), gauge(1))
    (tmp_path / f"buttress-lease-{dead(2)}.lock").touch()
    (tmp_path / "notes.txt").write_text("not ours")

    assert buttress.multiprocess.clear_multiprocess_dir(tmp_path) is True

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "buttress.lock",
        f"counter_{os.getpid()}.db",
        "notes.txt",
    ]


def test_clear_keeps_a_directory_that_live_workers_still_use(tmp_path: Path) -> None:
    # gunicorn's USR2 re-exec: the new master starts while old workers serve.
    write(tmp_path, "counter", dead(1), requests(3))
    write(tmp_path, "counter", dead(2), requests(4))
    lease = tmp_path / f"buttress-lease-{dead(2)}.lock"
    with open(lease, "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert buttress.multiprocess.clear_multiprocess_dir(tmp_path) is False
        assert db_files(tmp_path) == [f"counter_{dead(2)}.db"]
        assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 7


def test_clear_ignores_a_reused_pid_whose_lease_nobody_holds(tmp_path: Path, live_pid: int) -> None:
    # A restarted container: the old worker's pid now belongs to another process.
    write(tmp_path, "counter", live_pid, requests(3))
    (tmp_path / f"buttress-lease-{live_pid}.lock").touch()
    assert buttress.multiprocess.clear_multiprocess_dir(tmp_path) is True
    assert db_files(tmp_path) == []


def _start_and_report(
    directory: str, to_parent: multiprocessing.Queue[int], to_child: multiprocessing.Queue[int]
) -> None:
    buttress.multiprocess.mark_worker_started(directory)
    buttress.multiprocess.mark_worker_started(directory)  # a second call changes nothing
    to_parent.put(os.getpid())
    to_child.get()  # wait until told to exit


def test_a_started_worker_holds_its_lease_until_it_exits(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    to_parent: multiprocessing.Queue[int] = context.Queue()
    to_child: multiprocessing.Queue[int] = context.Queue()
    # A worker that died without a hook is swept when the next one starts.
    write(tmp_path, "counter", dead(1), requests(2))
    child = context.Process(target=_start_and_report, args=(str(tmp_path), to_parent, to_child))
    child.start()
    try:
        pid = to_parent.get(timeout=60)
        assert db_files(tmp_path) == []
        write(tmp_path, "counter", pid, requests(5))
        assert fold_dead_workers(tmp_path) == 0
        assert buttress.multiprocess.clear_multiprocess_dir(tmp_path) is False
    finally:
        to_child.put(0)
        child.join(timeout=30)
    buttress.multiprocess.mark_worker_dead(pid, tmp_path)
    assert db_files(tmp_path) == []
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 7


@pytest.mark.parametrize("pid", [0, -1, "12", True])
def test_mark_worker_dead_refuses_what_is_not_a_pid(tmp_path: Path, pid: object) -> None:
    with pytest.raises(ConfigurationError, match="pid="):
        buttress.multiprocess.mark_worker_dead(pid, tmp_path)  # type: ignore[arg-type]


def test_no_directory_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR is not set"):
        buttress.multiprocess.clear_multiprocess_dir()
    with pytest.raises(ConfigurationError, match="missing"):
        buttress.multiprocess.mark_worker_started(tmp_path / "missing")


def test_a_lease_held_by_another_process_is_a_configuration_error(tmp_path: Path) -> None:
    # Two containers sharing one directory: the same pid in both.
    with open(tmp_path / f"buttress-lease-{os.getpid()}.lock", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ConfigurationError, match="held by another process"):
            buttress.multiprocess.mark_worker_started(tmp_path)


CONFIGURED_WORKER = """
import fcntl, os, sys
import buttress
buttress.configure(service="w", log_format="json")
lease = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"buttress-lease-{os.getpid()}.lock")
with open(lease, "ab") as other:
    try:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("held")
"""


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_configure_claims_the_workers_pid(tmp_path: Path) -> None:
    write(tmp_path, "counter", dead(1), requests(2))  # died without a hook
    result = _python(CONFIGURED_WORKER, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert result.stdout.strip() == "held", result.stderr
    assert db_files(tmp_path) == []  # swept when the worker started
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 2


def _workers(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buttress", "workers", *argv]
    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_buttress_workers_empties_the_directory_then_runs_the_server(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    write(metrics, "counter", dead(1), requests(2))
    show = "import os; d = os.environ['PROMETHEUS_MULTIPROC_DIR']; print(d, sorted(os.listdir(d)))"
    result = _workers(
        "--", sys.executable, "-c", show, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == [str(metrics), "['buttress.lock']\n"]

    made = tmp_path / "made"
    result = _workers("--dir", str(made), "--", sys.executable, "-c", show, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(made))


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--",), {"PROMETHEUS_MULTIPROC_DIR": "."}, "give the server command"),
        (("--", "true"), {"PROMETHEUS_MULTIPROC_DIR": ""}, "set PROMETHEUS_MULTIPROC_DIR"),
        (("--", "/nonexistent/server"), {"PROMETHEUS_MULTIPROC_DIR": "."}, "cannot run"),
    ],
)
def test_buttress_workers_refuses_what_it_cannot_run(
    tmp_path: Path, argv: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    env = {k: str(tmp_path) if v == "." else v for k, v in env.items()}
    result = _workers(*argv, env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_gunicorn_hooks_need_the_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    import buttress.gunicorn

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        buttress.gunicorn.on_starting(object())


def test_a_fold_that_fails_does_not_fail_the_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from buttress.telemetry import _multiprocess

    def fail(*args: object, **kwargs: object) -> int:
        raise PermissionError("read-only file system")

    write(tmp_path, "counter", dead(1), requests(3))
    monkeypatch.setattr(_multiprocess, "fold_dead_workers", fail)
    assert scrape(tmp_path)[("requests_total", (("route", "/a"),))] == 3
    assert "could not fold dead workers" in caplog.text
