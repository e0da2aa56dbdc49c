"""The deadline of the current context: how long the work in hand may still take.

``timeout()`` and the middleware set it, ``retry()`` never waits past it, and the httpx
transports send what is left to the next service. Read it anywhere below::

    from buttress.deadline import deadline_scope, remaining

    with deadline_scope(2.0):
        left = remaining()  # seconds, a little under 2.0

Nested scopes keep the earliest deadline: a scope can only shorten the time left.
"""

from __future__ import annotations

from ._deadline import current_deadline, deadline_scope, remaining

__all__ = ["current_deadline", "deadline_scope", "remaining"]
