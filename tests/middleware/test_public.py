"""The middleware's public names are pinned, and importing it loads no web framework."""

from __future__ import annotations

import subprocess
import sys

import pytest

import buttress.middleware
from buttress._http import normalise_method, redact_query
from buttress.middleware._observer import merge_buckets, split_host


def test_middleware_names() -> None:
    assert sorted(buttress.middleware.__all__) == [
        "ASGIMiddleware",
        "Admission",
        "DjangoMiddleware",
        "HTTPFaults",
        "Health",
        "MiddlewareOptions",
        "RateLimit",
        "RequestView",
        "SLOLike",
        "TrustedPeers",
        "WSGIMiddleware",
        "serve_metrics",
    ]
    for name in buttress.middleware.__all__:
        assert getattr(buttress.middleware, name) is not None
    with pytest.raises(AttributeError):
        buttress.middleware.Nope  # noqa: B018


def test_import_loads_no_framework() -> None:
    code = (
        "import sys, buttress.middleware; "
        "heavy = ('django', 'starlette', 'fastapi', 'flask', 'werkzeug', 'httpx', "
        "'opentelemetry.sdk'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy) and "
        "(m in heavy or m.startswith(tuple(h + '.' for h in heavy)))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # The same probe sees a framework once it is used, so the check above can fail.
    code_django = code.replace("buttress.middleware;", "buttress.middleware; import django;")
    out = subprocess.run(
        [sys.executable, "-c", code_django], capture_output=True, text=True, check=True
    )
    assert "django" in out.stdout


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("GET", ("GET", None)),
        ("get", ("_OTHER", "get")),  # methods are case-sensitive (RFC 9110, semconv)
        ("BREW", ("_OTHER", "BREW")),
        ("QUERY", ("QUERY", None)),
    ],
)
def test_normalise_method(raw: str, expected: tuple[str, str | None]) -> None:
    assert normalise_method(raw) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a=1&b=2", "a=1&b=2"),
        ("token=abc&b=2", "token=REDACTED&b=2"),
        (
            "Password=x&AWSAccessKeyId=y&sig=z",
            "Password=REDACTED&AWSAccessKeyId=REDACTED&sig=REDACTED",
        ),
        ("next=%2Fhome&api_key=s", "next=%2Fhome&api_key=REDACTED"),
        # As the transport's url.full: keys compared decoded, the rest kept as sent.
        ("flag&%74oken=t&q=a+b", "flag&%74oken=REDACTED&q=a+b"),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8443", ("example.com", 8443)),
        ("[::1]:8000", ("::1", 8000)),
        ("[::1]", ("::1", None)),
        ("[::1", (None, None)),
        ("h:notaport", ("h", None)),
        ("", (None, None)),
    ],
)
def test_split_host(host: str, expected: tuple[str | None, int | None]) -> None:
    assert split_host(host) == expected


def test_merge_buckets_is_a_sorted_union() -> None:
    class S:
        threshold: float | None = 0.2

    assert merge_buckets((0.5, 0.1, 0.2), [S()]) == (0.1, 0.2, 0.5)
