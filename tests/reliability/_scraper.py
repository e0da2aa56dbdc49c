"""One scraper: ``python -m tests.reliability._scraper URL INTERVAL GATE STOP``.

Prints ``ready`` once started, then scrapes ``URL`` every ``INTERVAL`` seconds (as a
Prometheus server does) while the file ``GATE`` exists, until the file ``STOP`` exists;
then prints the number of scrapes and the size of the smallest body as JSON. Started
once for the whole test, so interpreter start-up never falls in a measured phase.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import httpx

MAX_SECONDS = 600.0  # bounded even if the test never says stop


def main(url: str, interval: float, gate: str, stop: str) -> None:
    scrapes = 0
    size: int | None = None
    end = time.monotonic() + MAX_SECONDS
    with httpx.Client(timeout=30.0) as client:
        print("ready", flush=True)
        time.sleep(random.uniform(0, interval))  # scrapers are not in step
        while not os.path.exists(stop) and time.monotonic() < end:
            started = time.monotonic()
            if os.path.exists(gate):
                response = client.get(url)
                response.raise_for_status()
                scrapes += 1
                size = len(response.content) if size is None else min(size, len(response.content))
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(json.dumps({"scrapes": scrapes, "size": size or 0}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4])
