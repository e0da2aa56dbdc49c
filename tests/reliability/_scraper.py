"""One scraper: ``python -m tests.reliability._scraper URL INTERVAL SECONDS``.

Scrapes ``URL`` every ``INTERVAL`` seconds (as a Prometheus server does) for ``SECONDS``,
then prints the number of scrapes and the size of the last body as JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time

import httpx


def main(url: str, interval: float, seconds: float) -> None:
    scrapes = size = 0
    end = time.monotonic() + seconds
    time.sleep(random.uniform(0, interval))  # scrapers are not in step
    with httpx.Client(timeout=30.0) as client:
        while time.monotonic() < end:
            started = time.monotonic()
            response = client.get(url)
            response.raise_for_status()
            scrapes += 1
            size = len(response.content)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(json.dumps({"scrapes": scrapes, "size": size}))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
