"""The flaky upstream: a real HTTP service whose health the scenario switches."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._scenario import Mode


@dataclass
class UpstreamControl:
    """What the upstream does now, and how many calls it saw (to measure amplification)."""

    mode: Mode = "healthy"
    calls: int = 0
    failures: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))


def build_upstream(control: UpstreamControl) -> Starlette:
    async def price(request: Request) -> JSONResponse:
        control.calls += 1
        sku = request.path_params["sku"]
        if control.mode == "outage" and control.rng.random() < 0.9:
            control.failures += 1
            return JSONResponse({"error": "unavailable"}, status_code=503)
        if control.mode == "slow":
            await asyncio.sleep(control.rng.uniform(0.2, 1.2))
        else:
            await asyncio.sleep(control.rng.uniform(0.002, 0.02))
        return JSONResponse({"sku": sku, "price": 100 + sum(map(ord, sku)) % 50})

    return Starlette(routes=[Route("/price/{sku}", price)])
