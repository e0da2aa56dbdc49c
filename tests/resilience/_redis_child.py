"""A second process sharing a Redis-backed breaker with the test: ``python -m`` this module.

Usage: ``python -m tests.resilience._redis_child URL fail N`` makes N failing calls;
``... URL try`` makes one call. It prints one word per call: ok, failed or open.
"""

from __future__ import annotations

import sys

from buttress import CircuitBreaker, CircuitOpen, RedisStore


def main(argv: list[str]) -> int:
    url, action = argv[0], argv[1]
    breaker = CircuitBreaker(
        "shared",
        consecutive_failures=3,
        reset_timeout=60,
        store=RedisStore(url, service="two-processes", socket_timeout=5),
    )

    def failing() -> None:
        raise ConnectionError("dependency down")

    count = int(argv[2]) if action == "fail" else 1
    words = []
    for _ in range(count):
        try:
            breaker.call(failing if action == "fail" else (lambda: None))
            words.append("ok")
        except ConnectionError:
            words.append("failed")
        except CircuitOpen:
            words.append("open")
    print(" ".join(words))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
