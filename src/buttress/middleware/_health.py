"""Liveness and readiness endpoints that reflect the service, as Kubernetes probes expect.

``/livez`` answers 200 while the process can answer at all: it checks nothing else, since
a failed liveness probe restarts the container and a restart cures no dependency.
``/readyz`` answers 200 when every component is up and 503 when one is down, with a JSON
body detailing each (the shape of Spring Boot Actuator's health endpoint):

- a named circuit breaker is down while it is open (or forced open);
- a named bulkhead is down while every slot and every waiting place is taken;
- the admission controller is down when it shed more than half of the requests it
  decided since the previous probe (the pod is saturated: send traffic elsewhere);
- a user check (any callable) is down when it returns ``False`` or raises.

The probes are answered before the request observer: no metrics, spans, SLO events or
access lines, so a probe every few seconds never dilutes an SLO. They answer GET and HEAD.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ._shedding import Admission

__all__ = ["Health", "check_health"]

UP: Final = "UP"
DOWN: Final = "DOWN"
_DOWN_STATES: Final = frozenset(("open", "forced_open"))
_SHED_SHARE: Final = 0.5  # shedding more than this share of requests makes a pod unready


class _Breaker(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...


class _Bulkhead(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def in_use(self) -> int: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def max_waiting(self) -> int: ...
    @property
    def waiting(self) -> int: ...


Answer = tuple[int, list[tuple[str, str]], bytes]


class Health:
    """The ``health=`` option: liveness at ``live_path``, readiness at ``ready_path``.

    Readiness depends on ``breakers`` (down while open), ``bulkheads`` (down while full
    with a full queue), ``admission`` (down while it sheds most requests) and ``checks``
    (name -> callable; down when it returns ``False`` or raises). Checks run on a worker
    thread under an event loop; keep them quick, a probe has a timeout of its own.
    """

    __slots__ = (
        "_checks", "_last", "_lock", "admission", "breakers", "bulkheads", "live_path",
        "paths", "ready_path",
    )  # fmt: skip

    def __init__(
        self,
        *,
        breakers: Iterable[_Breaker] = (),
        bulkheads: Iterable[_Bulkhead] = (),
        admission: Admission | None = None,
        checks: Mapping[str, Callable[[], object]] | None = None,
        live_path: str = "/livez",
        ready_path: str = "/readyz",
    ) -> None:
        for path, what in ((live_path, "live_path"), (ready_path, "ready_path")):
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"{what} must be a path starting with '/', got {path!r}")
        if live_path == ready_path:
            raise ConfigurationError(f"live_path and ready_path are both {live_path!r}")
        self.live_path = live_path
        self.ready_path = ready_path
        self.paths = frozenset((live_path, ready_path))
        self.breakers = tuple(breakers)
        for breaker in self.breakers:
            if not hasattr(breaker, "state") or not hasattr(breaker, "name"):
                raise ConfigurationError(f"breakers must be CircuitBreakers, got {breaker!r}")
        self.bulkheads = tuple(bulkheads)
        for bulkhead in self.bulkheads:
            if not hasattr(bulkhead, "in_use") or not hasattr(bulkhead, "max_concurrent"):
                raise ConfigurationError(f"bulkheads must be Bulkheads, got {bulkhead!r}")
        if admission is not None:
            from ._shedding import check_admission

            check_admission(admission)
        self.admission = admission
        checks = dict(checks or {})
        for name, check in checks.items():
            if not isinstance(name, str) or not name or not callable(check):
                raise ConfigurationError(f"checks must map names to callables, got {name!r}")
        self._checks = checks
        self._lock = threading.Lock()
        self._last = (0, 0)  # the admission counts (admitted, shed) at the previous probe

    def __repr__(self) -> str:
        return f"Health(live_path={self.live_path!r}, ready_path={self.ready_path!r})"

    def readiness(self) -> dict[str, Any]:
        """Every component's status and details, and the overall status."""
        components: dict[str, dict[str, Any]] = {}
        for breaker in self.breakers:
            state = breaker.state
            components[f"breaker:{breaker.name}"] = {
                "status": DOWN if state in _DOWN_STATES else UP,
                "details": {"state": state},
            }
        for bulkhead in self.bulkheads:
            full = (
                bulkhead.in_use >= bulkhead.max_concurrent
                and bulkhead.waiting >= bulkhead.max_waiting
            )
            components[f"bulkhead:{bulkhead.name}"] = {
                "status": DOWN if full else UP,
                "details": {
                    "in_use": bulkhead.in_use,
                    "max_concurrent": bulkhead.max_concurrent,
                    "waiting": bulkhead.waiting,
                },
            }
        admission = self.admission
        if admission is not None and admission.concurrency is not None:
            limit = admission.concurrency
            with self._lock:
                admitted, shed = limit.admitted, limit.shed
                last_admitted, last_shed = self._last
                self._last = (admitted, shed)
            decided = (admitted - last_admitted) + (shed - last_shed)
            share = (shed - last_shed) / decided if decided else 0.0
            components[f"admission:{admission.name}"] = {
                "status": DOWN if share > _SHED_SHARE else UP,
                "details": {
                    "limit": limit.limit,
                    "in_flight": limit.in_flight,
                    "shed_since_last_probe": round(share, 3),
                },
            }
        for name, check in self._checks.items():
            try:
                result = check()
            except Exception as error:
                # The type only: a message may hold a connection string or a secret.
                components[name] = {"status": DOWN, "details": {"error": type(error).__name__}}
                continue
            components[name] = {"status": DOWN if result is False else UP}
        status = DOWN if any(c["status"] == DOWN for c in components.values()) else UP
        return {"status": status, "components": components}

    def answer(self, method: str, path: str) -> Answer:
        """The probe's (status, headers, body), computed here (blocking, for sync shells)."""
        if method not in ("GET", "HEAD"):
            return 405, [("allow", "GET, HEAD"), ("content-length", "0")], b""
        report = {"status": UP} if path == self.live_path else self.readiness()
        return self._encode(report)

    async def answer_async(self, method: str, path: str) -> Answer:
        if method not in ("GET", "HEAD") or path == self.live_path:
            return self.answer(method, path)
        if not self._checks:  # only in-memory reads: cheaper than a thread hop
            return self.answer(method, path)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.answer, method, path)

    @staticmethod
    def _encode(report: dict[str, Any]) -> Answer:
        body = json.dumps(report, separators=(",", ":")).encode()
        status = 200 if report["status"] == UP else 503
        headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("content-length", str(len(body))),
        ]
        return status, headers, body

    async def serve_asgi(self, scope: Any, send: Callable[[Any], Awaitable[None]]) -> None:
        method = scope["method"]
        status, headers, body = await self.answer_async(method, scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def serve_wsgi(
        self, environ: Mapping[str, Any], start_response: Callable[..., object]
    ) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        status, headers, body = self.answer(method, path)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [] if method == "HEAD" else [body]

    def django_response(self, request: Any) -> Any:
        return _django(request, self.answer(request.method or "GET", request.path))

    async def django_response_async(self, request: Any) -> Any:
        return _django(request, await self.answer_async(request.method or "GET", request.path))


def _django(request: Any, answer: Answer) -> Any:
    from django.http import HttpResponse

    status, headers, body = answer
    response = HttpResponse(b"" if request.method == "HEAD" else body, status=status)
    for name, value in headers:
        if name != "content-length":
            response[name] = value
    return response


def check_health(option: object) -> Health | None:
    if option is None or isinstance(option, Health):
        return option
    raise ConfigurationError(f"health must be a Health or None, got {option!r}")
