"""Every name buttress emits: metrics, labels, span attributes, span and log events.

These strings are public API, documented in docs/metrics.md (a test keeps the two in
step). Dashboards, alert rules and your own listeners should read them from here::

    from buttress import names

    names.HTTP_SERVER_DURATION  # 'http_server_request_duration_seconds'
"""

from __future__ import annotations

from .telemetry import _names
from .telemetry._names import *  # noqa: F403 - this module is the names' public face

__all__ = sorted(name for name in vars(_names) if name.isupper())
