"""The flaky upstream ("pricing"): a real HTTP service whose health the scenario switches.

It runs behind the middleware too, with a tracer of its own (``service.name`` pricing), so
each quote is one trace across both services: checkout's server span, a client span per
attempt, and pricing's server span under each attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..middleware import ASGIMiddleware, TrustedPeers
from ._scenario import Mode

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


@dataclass
class UpstreamControl:
    """What the upstream does now, and how many calls it saw (to measure amplification)."""

    mode: Mode = "healthy"
    calls: int = 0
    failures: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    on_call: Callable[[], None] | None = None


def build_upstream(
    control: UpstreamControl, *, tracer_provider: TracerProvider | None = None
) -> Any:
    """The pricing app behind the middleware; its metrics stay out of checkout's ``/metrics``."""

    async def price(request: Request) -> JSONResponse:
        control.calls += 1
        if control.on_call is not None:
            control.on_call()
        sku = request.path_params["sku"]
        if control.mode == "outage" and control.rng.random() < 0.9:
            control.failures += 1
            return JSONResponse({"error": "unavailable"}, status_code=503)
        if control.mode == "slow":
            await asyncio.sleep(control.rng.uniform(0.2, 1.2))
        else:
            await asyncio.sleep(control.rng.uniform(0.002, 0.02))
        return JSONResponse({"sku": sku, "price": 100 + sum(map(ord, sku)) % 50})

    app = Starlette(routes=[Route("/price/{sku}", price)])
    return ASGIMiddleware(
        app,
        service="pricing",
        # Checkout calls from loopback: a peer whose trace pricing continues.
        trusted_peers=TrustedPeers(networks=["127.0.0.0/8", "::1"]),
        tracer_provider=tracer_provider,
        metrics_registry=CollectorRegistry(),
        slos=(),
    )
