"""A Flask service behind WSGIMiddleware that calls an upstream, served by gunicorn.

The environment names the upstreams (``UPSTREAM``: ours, ``THIRD_PARTY``: someone
else's) and whether the service trusts its clients (``TRUST=any``). ``/call`` calls our
upstream (50 ms), ``/third`` calls both, ``/breakers`` reports every breaker's state.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from flask import Flask, jsonify
from opentelemetry.sdk.trace import TracerProvider

import buttress
from buttress.httpx import ResilientTransport
from buttress.middleware import WSGIMiddleware

UPSTREAM = os.environ["UPSTREAM"]
THIRD_PARTY = os.environ.get("THIRD_PARTY", "")
breakers: dict[str, buttress.CircuitBreaker] = {}


def _breaker(name: str) -> buttress.CircuitBreaker:
    made = breakers[name] = buttress.CircuitBreaker(name, consecutive_failures=5)
    return made


provider = TracerProvider()  # spans are made (and propagated) but kept nowhere
transport = ResilientTransport(
    breaker=_breaker, retry=None, internal_hosts=["127.0.0.1"], tracer_provider=provider
)
client = httpx.Client(transport=transport, timeout=5.0)
app = Flask(__name__)


@app.route("/call")
def call() -> Any:
    try:
        answer = client.get(f"{UPSTREAM}/slow/0.05")
    except buttress.DeadlineExceeded:
        return jsonify(outcome="deadline"), 504
    except buttress.CircuitOpen:
        return jsonify(outcome="open"), 503
    except Exception as error:  # named in the answer, so that a failing test says what
        return jsonify(outcome=f"{type(error).__module__}.{type(error).__name__}: {error}"), 500
    return jsonify(outcome="ok", status=answer.status_code)


@app.route("/third")
def third() -> Any:
    client.get(f"{UPSTREAM}/ok")
    client.get(f"{THIRD_PARTY}/ok")
    return jsonify(outcome="ok")


@app.route("/breakers")
def states() -> Any:
    return jsonify({name: b.state for name, b in breakers.items()})


app.wsgi_app = WSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    service="boundary",
    tracer_provider=provider,
    trusted_peers="any" if os.environ.get("TRUST") == "any" else None,
)
