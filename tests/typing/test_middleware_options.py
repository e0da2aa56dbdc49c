"""Typed call sites of the middleware: mypy --strict checks the one line users write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from buttress.middleware import ASGIMiddleware, MiddlewareOptions, WSGIMiddleware

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def asgi_app(scope: object, receive: object, send: object) -> None:
    raise NotImplementedError


def wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return [b""]


def test_options_type_check_at_the_call_site() -> None:
    # These lines are what mypy --strict checks (the file is in tests/, which it reads).
    ASGIMiddleware(asgi_app, service="checkout", metrics_registry=CollectorRegistry())
    WSGIMiddleware(wsgi_app, tracing=False, exclude=["/health"])
    shared: MiddlewareOptions = {"service": "checkout", "access_log": False}
    ASGIMiddleware(asgi_app, **shared)


def _mypy(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "call_site.py"
    target.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_mypy_flags_a_misspelled_option(tmp_path: Path) -> None:
    bad = (HERE / "bad" / "misspelled_option.py").read_text()
    # The checked-in file silences the error so the suite's own mypy run stays clean;
    # without the ignore, mypy must name the bad keyword.
    result = _mypy(bad.replace("  # type: ignore[call-arg]", ""), tmp_path)
    assert result.returncode == 1, result.stdout
    assert 'Unexpected keyword argument "servce" for "ASGIMiddleware"' in result.stdout


def test_mypy_accepts_the_spelled_option(tmp_path: Path) -> None:
    good = (HERE / "bad" / "misspelled_option.py").read_text()
    good = good.replace('servce="checkout")  # type: ignore[call-arg]', 'service="checkout")')
    result = _mypy(good, tmp_path)
    assert result.returncode == 0, result.stdout
