"""Multiprocess metrics whose scrape cost is bounded by the live workers, not by history.

prometheus-client's multiprocess mode gives each process its own memory-mapped files
(``counter_<pid>.db``, ``gauge_livesum_<pid>.db``...) and reads every file at every
scrape. It never deletes a dead worker's counter or histogram files (that would reset
them), so under gunicorn ``max_requests`` or crashing workers the directory and the scrape
time grow for the life of the pod. Here the values of dead workers are folded into one
archive, ``buttress-archive.json``, and their files removed:

- **when**: gunicorn's ``child_exit`` (:func:`mark_worker_dead`), every worker's start
  (:func:`mark_worker_started`, a sweep for workers that died without a hook) and every
  scrape (:class:`ArchiveCollector`; the only hook ``uvicorn --workers`` has).
- **who is dead**: a worker holds an exclusive ``flock`` on ``buttress-lease-<pid>.lock``
  for its whole life (the kernel drops it when the process dies, even by SIGKILL). A pid
  is folded only when its lease is free *and* no process has that pid, so a worker that
  never took a lease, or a new process that reused the pid, is never folded. A new worker
  takes its lease before its files are opened (gunicorn ``post_fork``), waiting for any
  fold in progress, so a reused pid starts from fresh files.
- **counters and histograms** are summed into the archive: the totals seen by Prometheus
  never go down while the server runs. **Gauges** follow their ``multiprocess_mode``:
  ``live*`` values of dead workers are dropped (an in-flight gauge never sticks);
  ``min``/``max``/``sum``/``mostrecent`` fold into one value per series; ``all`` keeps
  the dead worker's series with its ``pid`` label, as prometheus-client does.
- **concurrency**: one lock file, ``buttress.lock``. A scrape reads the archive and the
  files under a shared lock; a fold holds it exclusively while it writes the new archive
  (a temporary file, then an atomic rename) and removes the folded files, so a scrape
  sees each value exactly once. A fold that crashes half-way is finished by the next
  one: a journal names the files the new archive absorbed, and a scrape skips those
  while they exist.

A scrape from a pid namespace other than the workers' (a sidecar) cannot test pids and
relies on leases alone: there every worker must call :func:`mark_worker_started`
(``buttress.configure()`` does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# prometheus_client is imported inside the functions: ``import buttress`` must not import
# it, since it picks its value class (files or memory) once, on import.

__all__ = [
    "ARCHIVE",
    "ArchiveCollector",
    "clear_multiprocess_dir",
    "fold_dead_workers",
    "mark_worker_dead",
    "mark_worker_started",
]

_log = logging.getLogger("buttress")
ARCHIVE = "buttress-archive.json"
_JOURNAL = "buttress-folding.json"
_LOCK = "buttress.lock"
_LEASE = re.compile(r"^buttress-lease-(\d+)\.lock$")
# prometheus-client's names: <type>_<pid>.db, or gauge_<mode>_<pid>.db.
_DB = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db$")
_FORMAT = 1
# How long a hook waits for the lock before leaving the fold to the next sweep.
_WAIT = 5.0


def _directory(path: str | os.PathLike[str] | None) -> str:
    if path is None:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if path is None:
            raise ConfigurationError(
                "PROMETHEUS_MULTIPROC_DIR is not set: set it to the metrics directory"
            )
    text = os.fspath(path)
    if not os.path.isdir(text):
        raise ConfigurationError(f"PROMETHEUS_MULTIPROC_DIR={text!r}: use an existing directory")
    return text


@contextlib.contextmanager
def _locked(directory: str, kind: int, *, wait: float | None) -> Iterator[bool]:
    """Hold ``buttress.lock`` (``fcntl.LOCK_SH`` or ``LOCK_EX``); yields False if not got.

    ``wait=None`` blocks; otherwise the lock is tried until ``wait`` seconds have passed
    (0: once).
    """
    fd = os.open(os.path.join(directory, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if wait is None:
            fcntl.flock(fd, kind)
            got = True
        else:
            got = _try_flock(fd, kind, wait)
        try:
            yield got
        finally:
            if got:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int, kind: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)  # a fold or a scrape holds it for milliseconds


# --- the archive ---------------------------------------------------------------------


@dataclass
class _Archive:
    """Folded values: ``(prefix, pid or "", mmap key) -> [value, timestamp]``."""

    generation: int = 0
    values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)


_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int, int], _Archive]] = {}


def _read_archive(directory: str) -> _Archive:
    path = os.path.join(directory, ARCHIVE)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return _Archive()
    # A new archive is always a new file (rename), so inode and mtime tell a change.
    identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(directory)
    if cached is not None and cached[0] == identity:
        return cached[1]
    with open(path, encoding="utf-8") as stream:
        raw = json.load(stream)
    if raw.get("format") != _FORMAT:
        raise ConfigurationError(f"{path}: not an archive this version of buttress can read")
    archive = _Archive(
        generation=int(raw["generation"]),
        values={(p, pid, k): [float(v), float(t)] for p, pid, k, v, t in raw["values"]},
    )
    with _cache_lock:
        _cache[directory] = (identity, archive)
    return archive


def _write_archive(directory: str, archive: _Archive) -> None:
    data = {
        "format": _FORMAT,
        "generation": archive.generation,
        "values": [[p, pid, k, v, t] for (p, pid, k), (v, t) in archive.values.items()],
    }
    _write_atomically(os.path.join(directory, ARCHIVE), data)


def _write_atomically(target: str, data: object) -> None:
    temporary = f"{target}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(data, stream, separators=(",", ":"))
    # Readers see the old file or the new, never a part. No fsync: it protects against a
    # machine crash only, after which the server starts again and empties the directory,
    # while it would stall gunicorn's master on every worker exit on a busy disk.
    os.replace(temporary, target)


def _journal(directory: str, archive: _Archive) -> set[str]:
    """Files the current archive absorbed that a crashed fold left behind (normally none).

    A fold writes the journal (the next generation and its files) before the archive, and
    removes it after the files: a journal of the archive's generation means the archive
    holds those files' values, so they must not be read again.
    """
    try:
        with open(os.path.join(directory, _JOURNAL), encoding="utf-8") as stream:
            raw = json.load(stream)
    except FileNotFoundError:
        return set()
    if raw.get("generation") != archive.generation:
        return set()  # the fold died before its archive was written: the files count
    return set(raw["files"])


def _fold_value(
    archive: _Archive, prefix: str, pid: str, key: str, value: float, ts: float
) -> None:
    mode = prefix.removeprefix("gauge_") if prefix.startswith("gauge_") else ""
    if mode.startswith("live"):
        return  # a dead worker's live gauge goes with it
    slot = (prefix, pid if mode == "all" else "", key)
    current = archive.values.get(slot)
    if current is None:
        archive.values[slot] = [value, ts]
    elif mode == "min":
        current[0] = min(current[0], value)
    elif mode == "max":
        current[0] = max(current[0], value)
    elif mode == "mostrecent":
        if ts >= current[1]:
            archive.values[slot] = [value, ts]
    elif mode == "all":
        archive.values[slot] = [value, ts]
    else:  # counters, histogram buckets and sums, summaries, sum gauges
        current[0] += value


# --- liveness ------------------------------------------------------------------------


def _read_file(path: str) -> Iterator[tuple[str, float, float, int]]:
    """``(key, value, timestamp, position)`` of each value in one prometheus-client file."""
    from prometheus_client.mmap_dict import MmapedDict

    values: Iterator[tuple[str, float, float, int]]
    values = MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
    return values


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError as error:
        return error.errno != errno.ESRCH
    return True


def _lease_held(directory: str, pid: int) -> bool:
    """Whether a live process holds ``pid``'s lease (False when there is none)."""
    path = os.path.join(directory, f"buttress-lease-{pid}.lock")
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _scan(directory: str) -> tuple[dict[int, list[str]], set[int]]:
    """Metric files by pid, and the pids that have a lease file."""
    files: dict[int, list[str]] = defaultdict(list)
    leases: set[int] = set()
    for name in os.listdir(directory):
        match = _DB.match(name)
        if match is not None:
            files[int(match.group(2))].append(name)
            continue
        lease = _LEASE.match(name)
        if lease is not None:
            leases.add(int(lease.group(1)))
    return files, leases


def _finish_crashed_fold(directory: str, archive: _Archive) -> None:
    for name in _journal(directory, archive):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, _JOURNAL))


def _fold(directory: str, dead: Iterable[int], files: dict[int, list[str]]) -> int:
    """Fold the files of ``dead`` pids into the archive; the exclusive lock is held."""
    archive = _read_archive(directory)
    _finish_crashed_fold(directory, archive)
    absorbed: list[str] = []
    fresh = _Archive(archive.generation + 1, {k: list(v) for k, v in archive.values.items()})
    gone = sorted(dead)
    for pid in gone:
        for name in files.get(pid, ()):
            prefix = _DB.match(name).group(1)  # type: ignore[union-attr]
            try:
                values = _read_file(os.path.join(directory, name))
                for key, value, ts, _ in values:
                    _fold_value(fresh, prefix, str(pid), key, value, ts)
            except FileNotFoundError:
                continue
            absorbed.append(name)
    if absorbed:
        journal = os.path.join(directory, _JOURNAL)
        _write_atomically(journal, {"generation": fresh.generation, "files": absorbed})
        _write_archive(directory, fresh)  # the commit point
        for name in absorbed:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
        os.remove(journal)
    for pid in gone:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, f"buttress-lease-{pid}.lock"))
    return len(absorbed)


def _dead(directory: str, pids: Iterable[int], *, own: int) -> list[int]:
    return [
        pid
        for pid in pids
        if pid != own and not _lease_held(directory, pid) and not _pid_exists(pid)
    ]


def fold_dead_workers(
    path: str | os.PathLike[str] | None = None, *, wait: float | None = _WAIT
) -> int:
    """Fold every dead worker's files into the archive; returns how many files went.

    ``wait`` bounds the wait for the lock in seconds (0: try once; ``None``: block). When
    the lock is not got, nothing changes and 0 is returned: the next sweep folds them.
    """
    directory = _directory(path)
    with _locked(directory, fcntl.LOCK_EX, wait=wait) as got:
        if not got:
            return 0
        files, leases = _scan(directory)
        return _fold(directory, _dead(directory, files.keys() | leases, own=os.getpid()), files)


def mark_worker_dead(pid: int, path: str | os.PathLike[str] | None = None) -> None:
    """Fold worker ``pid``'s files into the archive (gunicorn's ``child_exit``).

    Any other dead worker found on the way is folded too. A pid that is alive again (it
    was reused) or whose lease is held is left alone.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ConfigurationError(f"pid={pid!r}: use the pid of the worker that exited")
    fold_dead_workers(path)


# --- worker leases -------------------------------------------------------------------

_lease_lock = threading.Lock()
_lease: tuple[int, str, IO[bytes]] | None = None  # (pid, directory, the open lease file)


def mark_worker_started(path: str | os.PathLike[str] | None = None) -> None:
    """Claim this process's pid in the metrics directory, for as long as it lives.

    Call it in each worker before it records a metric (gunicorn's ``post_fork``;
    ``buttress.configure()`` calls it in multiprocess mode). It waits for a fold in
    progress, finishes one that crashed, and folds workers that died without a hook.
    Calling it again in the same process does nothing.
    """
    global _lease
    directory = _directory(path)
    pid = os.getpid()
    with _lease_lock:
        if _lease is not None and _lease[0] == pid and _lease[1] == directory:
            return
        if _lease is not None and _lease[0] != pid:
            # Inherited from the parent over fork: the parent keeps its own lease.
            _lease[2].close()
            _lease = None
        # Waiting for the lock lets a fold in progress finish before this worker opens
        # files a reused pid might share with a dead one. Bounded: a process stopped while
        # holding the lock must not stop every worker from starting.
        with _locked(directory, fcntl.LOCK_EX, wait=_WAIT) as got:
            if got:
                files, leases = _scan(directory)
                _fold(directory, _dead(directory, files.keys() | leases, own=pid), files)
            lease = open(os.path.join(directory, f"buttress-lease-{pid}.lock"), "ab")  # noqa: SIM115
            try:
                fcntl.flock(lease.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lease.close()
                raise ConfigurationError(
                    f"pid {pid}'s lease in {directory!r} is held by another process: "
                    "is another server with the same pids (another container) sharing "
                    "this directory? Give each its own PROMETHEUS_MULTIPROC_DIR"
                ) from None
        _lease = (pid, directory, lease)


def clear_multiprocess_dir(path: str | os.PathLike[str] | None = None) -> bool:
    """Empty the metrics directory when a server starts; True when it was emptied.

    Removes only what prometheus-client and buttress write there (``*_<pid>.db``, the
    archive, leases), never other files, and only when no other live process uses the
    directory. If one does (a gunicorn re-exec with ``USR2`` hands over to old workers
    still serving), the directory is kept, with dead workers folded as usual, so the
    counters the old workers carry stay continuous. The caller's own files are kept.
    """
    directory = _directory(path)
    own = os.getpid()
    with _locked(directory, fcntl.LOCK_EX, wait=None):
        files, leases = _scan(directory)
        # At start no worker of ours runs yet: a lease nobody holds means a dead owner,
        # even if an unrelated process has the pid now (a restarted container).
        live = {
            pid
            for pid in files.keys() | leases
            if pid != own
            and (_lease_held(directory, pid) or (pid not in leases and _pid_exists(pid)))
        }
        if live:
            _fold(directory, _dead(directory, files.keys() | leases, own=own), files)
            return False
        for pid, names in files.items():
            if pid == own:
                continue
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))
        for pid in leases - {own}:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, f"buttress-lease-{pid}.lock"))
        for name in os.listdir(directory):
            if name in (ARCHIVE, _JOURNAL) or (
                name.startswith(("buttress-archive.", "buttress-folding."))
                and name.endswith(".tmp")
            ):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))
        with _cache_lock:
            _cache.pop(directory, None)
        return True


# --- the scrape ----------------------------------------------------------------------


class ArchiveCollector:
    """Collects the archive and the live workers' files, as one answer per metric.

    Register it on a fresh ``CollectorRegistry`` per scrape, in place of
    prometheus-client's ``MultiProcessCollector`` (whose output it matches). Each
    collect first folds dead workers if the lock is free at once (a scrape never waits
    for another scrape to fold), then reads under the shared lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._directory = _directory(path)

    def collect(self) -> Iterator[Metric]:
        directory = self._directory
        try:
            fold_dead_workers(directory, wait=0)
        except OSError as error:  # the scrape still answers, from the files as they are
            _log.warning("could not fold dead workers in %s: %s", directory, error)
        rows: list[tuple[str, str, str, float, float]] = []
        with _locked(directory, fcntl.LOCK_SH, wait=None):
            archive = _read_archive(directory)
            skip = _journal(directory, archive)
            for (prefix, pid, key), (value, ts) in archive.values.items():
                rows.append((prefix, pid, key, value, ts))
            for name in os.listdir(directory):
                match = _DB.match(name)
                if match is None or name in skip:
                    continue
                prefix, pid = match.group(1), match.group(2)
                try:
                    values = _read_file(os.path.join(directory, name))
                    rows.extend((prefix, pid, key, v, ts) for key, v, ts, _ in values)
                except FileNotFoundError:  # removed by prometheus' mark_process_dead
                    continue
        return iter(_merge(rows))


def _merge(rows: Iterable[tuple[str, str, str, float, float]]) -> list[Metric]:
    """One metric per name from ``(prefix, pid, key, value, timestamp)`` rows.

    The same arithmetic prometheus-client's scrape does, written for rows that may come
    from the archive (``pid == ""``) or from a file.
    """
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    metrics: dict[str, Metric] = {}
    modes: dict[str, str] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = defaultdict(
        dict
    )
    keys: dict[str, tuple[str, str, tuple[tuple[str, str], ...], str]] = {}
    for prefix, pid, key, value, ts in rows:
        parsed = keys.get(key)
        if parsed is None:
            metric_name, name, labels, help_text = json.loads(key)
            parsed = keys[key] = (metric_name, name, tuple(sorted(labels.items())), help_text)
        metric_name, name, labels_key, help_text = parsed
        kind, _, mode = prefix.partition("_")
        metric = metrics.get(metric_name)
        if metric is None:
            metric = metrics[metric_name] = Metric(metric_name, help_text, kind)
            modes[metric_name] = mode
        if kind == "gauge" and mode in ("all", "liveall"):
            labels_key = (*labels_key, ("pid", pid))
        slot = (name, labels_key)
        by_series = samples[metric_name]
        current = by_series.get(slot)
        if current is None:
            by_series[slot] = [value, ts]
        elif kind != "gauge" or mode in ("sum", "livesum"):
            current[0] += value
        elif mode in ("min", "livemin"):
            current[0] = min(current[0], value)
        elif mode in ("max", "livemax"):
            current[0] = max(current[0], value)
        elif mode in ("mostrecent", "livemostrecent") and ts > current[1]:
            by_series[slot] = [value, ts]
    for metric_name, metric in metrics.items():
        by_series = samples[metric_name]
        if metric.type == "histogram":
            _histogram_samples(metric, by_series)
            continue
        for (name, labels_key), (value, _) in by_series.items():
            metric.samples.append(Sample(name, dict(labels_key), value))
    return list(metrics.values())


def _histogram_samples(
    metric: Metric, by_series: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]
) -> None:
    # Files hold each bucket's own count; the exposition wants them cumulative, and a
    # _count equal to the +Inf bucket.
    from prometheus_client.samples import Sample
    from prometheus_client.utils import floatToGoString

    buckets: dict[tuple[tuple[str, str], ...], dict[float, float]] = defaultdict(dict)
    out: list[Sample] = []
    for (name, labels_key), (value, _) in by_series.items():
        le = next((v for k, v in labels_key if k == "le"), None)
        if le is None:
            out.append(Sample(name, dict(labels_key), value))
            continue
        rest = tuple(item for item in labels_key if item[0] != "le")
        bounds = buckets[rest]
        bounds[float(le)] = bounds.get(float(le), 0.0) + value
    for rest, bounds in buckets.items():
        total = 0.0
        for bound in sorted(bounds):
            total += bounds[bound]
            bound_text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
            out.append(Sample(metric.name + "_bucket", {**dict(rest), "le": bound_text}, total))
        out.append(Sample(metric.name + "_count", dict(rest), total))
    metric.samples.extend(out)
