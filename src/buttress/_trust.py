"""Who may steer a request, and where our headers may go: the trust boundary in one place.

Inbound, everything a request brings (the deadline header, an incoming request id,
baggage, the trace to continue) is the client's word. It is honoured only when the
sender is a trusted peer: from configured networks, presenting a shared secret in a
header (compared in constant time), or everyone, when configuration says so explicitly
(an internal mesh). Outbound, the correlation id, the deadline and baggage go only to
hosts configured as internal; trace context goes where ``propagate_trace`` says.

Decisions are plain functions of configuration checked once, at construction, so a bad
network or pattern fails with a ``ConfigurationError`` naming it, not on a request.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable
from fnmatch import translate
from typing import Final, Literal, TypeAlias

from ._errors import ConfigurationError

__all__ = [
    "ANY",
    "ContinueTrace",
    "InternalHosts",
    "PropagateTrace",
    "TrustOption",
    "TrustedPeers",
    "check_continue_trace",
    "check_propagate_trace",
    "check_trust",
]

ANY: Final = "any"
ContinueTrace: TypeAlias = Literal["trusted", "always", "never"]
"""Whose ``traceparent`` a server span continues: trusted peers', anyone's, or nobody's."""
PropagateTrace: TypeAlias = Literal["internal", "all", "none"]
"""Which hosts outbound calls send trace context to."""

_Network: TypeAlias = "ipaddress.IPv4Network | ipaddress.IPv6Network"
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 header name
_HOST_PATTERN: Final = re.compile(r"[a-z0-9*_.-]+")


class TrustedPeers:
    """Senders whose deadline, request id, baggage (and trace) a request honours.

    A peer is trusted when its address is in one of ``networks`` (CIDR strings such as
    ``"10.0.0.0/8"`` or single addresses), or when it sends ``header`` with the value
    ``secret`` (compared in constant time). Either test suffices. The address is the one
    the server reports for the connection: behind a proxy that rewrites it from
    ``X-Forwarded-For`` (uvicorn's ``--forwarded-allow-ips``, gunicorn's
    ``forwarded_allow_ips``), only trust networks the proxy alone can reach from.
    """

    __slots__ = ("_secret", "header", "networks")

    def __init__(
        self,
        *,
        networks: Iterable[str] = (),
        header: str | None = None,
        secret: str | None = None,
    ) -> None:
        if isinstance(networks, str):
            raise ConfigurationError(f"networks must be a list of networks, not {networks!r}")
        self.networks: tuple[_Network, ...] = tuple(_network(n) for n in networks)
        if (header is None) != (secret is None):
            raise ConfigurationError("header and secret go together: give both or neither")
        if header is not None and (not isinstance(header, str) or not _TOKEN.fullmatch(header)):
            raise ConfigurationError(f"header must be an HTTP header name, got {header!r}")
        if secret is not None and (
            not isinstance(secret, str) or len(secret) < 16 or not secret.isascii()
        ):
            # A short secret can be guessed; a non-ASCII one cannot travel in a header.
            raise ConfigurationError("secret must be an ASCII string of at least 16 characters")
        self.header = header.lower() if header is not None else None
        self._secret = secret.encode("ascii") if secret is not None else b""
        if not self.networks and self.header is None:
            raise ConfigurationError(
                'TrustedPeers needs networks or a header and secret (or use trusted_peers="any")'
            )

    def trusts(self, address: str | None, presented: bytes | str | None) -> bool:
        """Whether a sender at ``address`` that presented ``presented`` is trusted."""
        if self.header is not None and presented is not None:
            if isinstance(presented, str):
                presented = presented.encode("latin-1", "replace")
            # compare_digest takes the same time for any two values of equal length.
            if hmac.compare_digest(presented, self._secret):
                return True
        if self.networks and address:
            try:
                ip = ipaddress.ip_address(address.removeprefix("[").removesuffix("]"))
            except ValueError:
                return False  # a unix socket path, a host name: not a network address
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            return any(ip in network for network in self.networks)
        return False

    def credential(self) -> str:
        """The secret, for a sender that presents it (message producers): ``""`` if none."""
        return self._secret.decode("ascii")

    def __repr__(self) -> str:
        shown = [str(n) for n in self.networks]
        header = f", header={self.header!r}, secret=..." if self.header else ""
        return f"TrustedPeers(networks={shown!r}{header})"


TrustOption: TypeAlias = "TrustedPeers | Literal['any'] | None"
"""``None`` trusts nobody (the default), ``"any"`` everybody, else the given peers."""


def check_trust(option: object) -> TrustedPeers | Literal["any"] | None:
    if option is None or option == ANY or isinstance(option, TrustedPeers):
        return option
    raise ConfigurationError(f'trusted_peers must be a TrustedPeers, "any" or None, got {option!r}')


def check_continue_trace(option: object) -> ContinueTrace:
    if option in ("trusted", "always", "never"):
        return option
    raise ConfigurationError(
        f'continue_trace must be "trusted", "always" or "never", got {option!r}'
    )


def check_propagate_trace(option: object) -> PropagateTrace:
    if option in ("internal", "all", "none"):
        return option
    raise ConfigurationError(f'propagate_trace must be "internal", "all" or "none", got {option!r}')


class InternalHosts:
    """Destination hosts that are ours: patterns matched case-insensitively.

    A pattern is a host name (``"pricing"``), a wildcard (``"*.svc.cluster.local"``,
    ``"*"`` for every host), or a network in CIDR form (``"10.0.0.0/8"``) that matches
    hosts given as IP literals. Nothing is internal by default.
    """

    __slots__ = ("_everything", "_names", "_networks", "_patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):
            raise ConfigurationError(f"internal_hosts must be a list of patterns, not {patterns!r}")
        names: set[str] = set()
        networks: list[_Network] = []
        wildcards: list[str] = []
        self._everything = False
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigurationError(f"invalid internal_hosts pattern {pattern!r}")
            lowered = pattern.strip().lower().removeprefix("[").removesuffix("]")
            if lowered == "*":
                self._everything = True
            elif _is_network(lowered):
                networks.append(_network(lowered))
            elif not _HOST_PATTERN.fullmatch(lowered):
                raise ConfigurationError(f"invalid internal_hosts pattern {pattern!r}")
            elif "*" in lowered:
                wildcards.append(translate(lowered))
            else:
                names.add(lowered.rstrip("."))
        self._names = frozenset(names)
        self._networks = tuple(networks)
        self._patterns = re.compile("|".join(wildcards)) if wildcards else None

    def __contains__(self, host: object) -> bool:
        if self._everything:
            return True
        if not isinstance(host, str) or not host:
            return False
        host = host.lower().rstrip(".")
        if host in self._names:
            return True
        if self._patterns is not None and self._patterns.match(host):
            return True
        if self._networks:
            try:
                ip = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
            except ValueError:
                return False
            return any(ip in network for network in self._networks)
        return False

    def __bool__(self) -> bool:
        return self._everything or bool(self._names or self._networks or self._patterns)


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _network(text: object) -> _Network:
    if not isinstance(text, str):
        raise ConfigurationError(f"a network must be a string such as '10.0.0.0/8', got {text!r}")
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigurationError(f"invalid network {text!r}") from None
