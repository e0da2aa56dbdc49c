"""Nothing pending lost at a graceful stop: spans, metric points and log records flushed.

``configure()`` registers the providers it built here. :func:`flush` exports what they
hold, bounded in time: the SDK's own ``force_flush`` ignores its timeout and an exporter
can wait on a slow endpoint for many seconds, so the work runs in a daemon thread that is
given up on when the bound passes (a stop must never hang on telemetry).

It runs from every way a service stops that we can see:

- the ASGI lifespan shutdown (the middleware flushes before it reports ``complete``);
- interpreter exit (``atexit``), which covers gunicorn workers, Django and Flask
  processes and scripts;
- ``SIGTERM`` when nothing else handles it: the signal's default kills the process
  without running ``atexit``, so configure() installs a handler that flushes, then
  re-raises the signal with its default action (the exit status stays "killed by
  SIGTERM"). A server that takes the signal itself (uvicorn, gunicorn) keeps it; uvicorn
  re-raises it after its graceful shutdown, which reaches this handler when configure()
  ran before the server started, and the lifespan flush otherwise.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from typing import Any, Protocol

__all__ = ["flush", "install_exit_hooks", "register", "shutdown"]

_log = logging.getLogger("buttress")


class _Provider(Protocol):
    def force_flush(self, timeout_millis: int = ...) -> bool: ...

    def shutdown(self) -> Any: ...


_providers: list[_Provider] = []
_lock = threading.Lock()
_timeout = 5.0
_hooked = False
_done = False


def register(provider: _Provider, *, timeout: float) -> None:
    """Flush and shut ``provider`` down at the stop; ``timeout`` bounds the whole flush."""
    global _timeout
    with _lock:
        _providers.append(provider)
        _timeout = timeout


def _run_bounded(work: Any, timeout: float) -> bool:
    finished = threading.Event()

    def run() -> None:
        try:
            work()
        except Exception:  # a failing exporter must not turn a stop into a crash
            _log.warning("buttress: exporting telemetry at shutdown failed", exc_info=True)
        finally:
            finished.set()

    threading.Thread(target=run, name="buttress-flush", daemon=True).start()
    return finished.wait(timeout)


def flush(timeout: float | None = None) -> bool:
    """Export everything pending now; ``False`` when the bound passed first."""
    providers = list(_providers)
    if not providers:
        return True
    bound = _timeout if timeout is None else timeout
    deadline = time.monotonic() + bound

    def work() -> None:
        for provider in providers:
            left = max(deadline - time.monotonic(), 0.0)
            provider.force_flush(timeout_millis=int(left * 1000))

    return _run_bounded(work, bound)


def shutdown(timeout: float | None = None) -> bool:
    """Flush, then shut every provider down (once; later calls do nothing)."""
    global _done
    with _lock:
        if _done:
            return True
        _done = True
    bound = _timeout if timeout is None else timeout
    start = time.monotonic()
    flushed = flush(bound)
    left = max(bound - (time.monotonic() - start), 0.1)
    providers = list(_providers)

    def work() -> None:
        for provider in providers:
            provider.shutdown()

    return _run_bounded(work, left) and flushed


def _on_sigterm(signum: int, frame: object) -> None:
    shutdown()
    # Die as the signal's default would have, so supervisors see the same exit status.
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def install_exit_hooks() -> None:
    """``atexit`` always; a SIGTERM handler when nothing else took the signal (main thread)."""
    global _hooked
    with _lock:
        if _hooked:
            return
        _hooked = True
    atexit.register(shutdown)
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        pass


def _reset() -> None:
    """Forget the registered providers (for tests)."""
    global _done
    with _lock:
        _providers.clear()
        _done = False
