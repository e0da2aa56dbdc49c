"""Per-route and per-client rate limits for inbound requests, with the IETF RateLimit fields.

Each :class:`RateLimit` rule keeps one token bucket per key (the client's address, an API
key, a user id or one for everybody) as a :class:`~buttress.RateLimiter`, in this process
or shared through a :class:`~buttress.RedisStore`. Keys are bounded twice over: at most
``max_keys`` buckets are kept (the least recently used is forgotten first), and a key is
never a label or a store key as sent: it is hashed, so a client cannot grow memory, metric
series or Redis keys without limit, nor learn another client's bucket name.

Answers carry the fields of draft-ietf-httpapi-ratelimit-headers: ``RateLimit-Policy``
(the quota ``q`` per window ``w`` seconds) and, on a refusal, ``RateLimit`` (``r=0``
remaining, reset in ``t`` seconds) with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from .._args import check_seconds
from .._errors import ConfigurationError
from .._events import Registry

if TYPE_CHECKING:
    from .. import RateLimiter, RedisStore

__all__ = ["KeyFunction", "RateLimit", "RequestView", "RoutePattern"]

_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_KEY: Final = 256  # longest key value read from a header; longer values are cut
_NO_KEY: Final = "-"  # requests without the key share one bucket


class RequestView:
    """What a key function may read of a request, before the app sees it."""

    __slots__ = ("_lookup", "client_address", "method", "path", "trusted")

    def __init__(
        self,
        method: str,
        path: str,
        client_address: str | None,
        trusted: bool,
        lookup: Callable[[str], str | None],
    ) -> None:
        self.method = method
        self.path = path
        self.client_address = client_address
        self.trusted = trusted  # whether the sender is a trusted peer (see TrustedPeers)
        self._lookup = lookup

    def header(self, name: str) -> str | None:
        """The value of request header ``name`` (any case), or ``None``."""
        return self._lookup(name.lower())


KeyFunction: TypeAlias = Callable[[RequestView], "str | None"]
"""Returns the bucket a request counts against; ``None`` puts it in the shared one."""


class RoutePattern:
    """A path template matched against the request path before routing.

    ``{name}`` matches one path segment, ``{name:path}`` the rest of the path; anything
    else matches itself: ``/users/{id}``, ``/files/{rest:path}``.
    """

    __slots__ = ("_regex", "template")

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ConfigurationError(f"a route must be a path starting with '/', got {template!r}")
        self.template = template
        parts: list[str] = []
        for piece in re.split(r"(\{[^{}]*\})", template):
            if piece.startswith("{") and piece.endswith("}"):
                parts.append(".*" if piece[1:-1].endswith(":path") else "[^/]+")
            else:
                parts.append(re.escape(piece))
        self._regex = re.compile("".join(parts))

    def matches(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None


def routes_of(routes: Iterable[str] | None, what: str) -> tuple[RoutePattern, ...] | None:
    if routes is None:
        return None
    if isinstance(routes, str):
        raise ConfigurationError(f"{what} must be a list of routes, not {routes!r}")
    return tuple(RoutePattern(r) for r in routes)


class RateLimit:
    """At most ``rate`` requests per ``per`` seconds for each key, bursts up to ``burst``.

    ``key`` says what a bucket belongs to: ``"client"`` (the client's address; IPv6
    clients by their /64), ``"global"`` (one bucket for every request the rule covers),
    ``"header"`` (the value of ``header``, e.g. an API key: anyone may send one),
    ``"user"`` (a user id in ``header``, set by a gateway: honoured only from trusted
    peers, other requests are keyed by client address), or a :data:`KeyFunction`.
    ``routes`` limits the rule to these path templates (all paths by default).
    ``store=RedisStore(...)`` shares the buckets between processes.
    """

    __slots__ = (
        "_buckets", "_lock", "_store", "burst", "header", "key", "max_keys", "name", "per",
        "rate", "routes",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        per: float | timedelta = 1.0,
        burst: int | None = None,
        key: Literal["client", "global", "header", "user"] | KeyFunction = "client",
        header: str | None = None,
        routes: Iterable[str] | None = None,
        store: RedisStore | None = None,
        max_keys: int = 10_000,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"a rate limit's name must be 1-64 letters, digits, '_', '.' or '-', got {name!r}"
            )
        self.name = name
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ConfigurationError(f"rate must be a number > 0, got {rate!r}")
        if not math.isfinite(rate):
            raise ConfigurationError(f"rate must be finite, got {rate!r}")
        self.rate = float(rate)
        self.per = check_seconds("per", per)
        if burst is not None and (
            not isinstance(burst, int) or isinstance(burst, bool) or burst < 1
        ):
            raise ConfigurationError(f"burst must be an int >= 1, got {burst!r}")
        self.burst = burst if burst is not None else max(1, math.ceil(rate))
        if not callable(key) and key not in ("client", "global", "header", "user"):
            raise ConfigurationError(
                f'key must be "client", "global", "header", "user" or a function, got {key!r}'
            )
        if key in ("header", "user"):
            if not isinstance(header, str) or not _TOKEN.fullmatch(header):
                raise ConfigurationError(f"key={key!r} needs header= naming a header: {header!r}")
        elif header is not None:
            raise ConfigurationError(f"header= goes with key='header' or key='user', not {key!r}")
        self.key = key
        self.header = header.lower() if header is not None else None
        self.routes = routes_of(routes, "routes")
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
            raise ConfigurationError(f"max_keys must be an int >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._store = store
        self._buckets: OrderedDict[str, RateLimiter] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimit({self.name!r}, rate={self.rate:g}/{self.per:g}s, key={self.key!r})"

    def covers(self, path: str) -> bool:
        routes = self.routes
        return routes is None or any(r.matches(path) for r in routes)

    def key_of(self, request: RequestView) -> str:
        """The bucket ``request`` counts against (hashed when it came from the client)."""
        key = self.key
        if key == "global":
            return _NO_KEY
        if key == "client":
            value = _client(request.client_address)
        elif key == "header":
            assert self.header is not None
            value = request.header(self.header)
        elif key == "user":
            assert self.header is not None
            value = request.header(self.header) if request.trusted else None
            if value is None:
                value = "client:" + (_client(request.client_address) or _NO_KEY)
        else:
            value = key(request)
        if not value:
            return _NO_KEY
        # Hashed: bounded in length, never the raw value (an API key) in a store key.
        return hashlib.sha256(value[:_MAX_KEY].encode("utf-8", "replace")).hexdigest()[:24]

    def limiter(self, key: str) -> RateLimiter:
        """The bucket of ``key``, made on first use; the least recently used is dropped."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                self._buckets.move_to_end(key)
                return bucket
        from .. import RateLimiter

        # Its own events go nowhere: the middleware reports by rule name, never by key.
        bucket = RateLimiter(
            f"{self.name}.{key}",
            rate=self.rate,
            per=self.per,
            burst=self.burst,
            store=self._store,
            events=Registry(),
        )
        with self._lock:
            kept = self._buckets.setdefault(key, bucket)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return kept

    @property
    def keys_kept(self) -> int:
        return len(self._buckets)

    def policy_item(self) -> str:
        """This rule as an item of the ``RateLimit-Policy`` field."""
        return f'"{self.name}";q={_number(self.rate)};w={_number(self.per)}'

    def refusal_item(self, retry_after: float) -> str:
        """This rule as an item of the ``RateLimit`` field when it refused a request."""
        return f'"{self.name}";r=0;t={max(1, math.ceil(retry_after))}'


def _number(value: float) -> str:
    # Structured-field integers where the value is whole, else a decimal of 3 places.
    return str(int(value)) if value == int(value) else f"{value:.3f}"


def _client(address: str | None) -> str | None:
    """The client's address as a key; IPv6 by its /64, which one host can rotate within."""
    if not address or ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.removeprefix("[").removesuffix("]"))
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


def policy_field(rules: Iterable[RateLimit]) -> str:
    return ", ".join(rule.policy_item() for rule in rules)
