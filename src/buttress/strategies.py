"""The strategy types, and the strategy API they share.

``retry()``, ``hedge()``, ``throttle()``, ``timeout()`` and ``fallback()`` return a
:class:`Retry`, a :class:`Hedge`, a :class:`Throttle`, a :class:`Timeout` and a
:class:`Fallback`; ``CircuitBreaker``, ``Bulkhead``, ``RateLimiter``, ``Policy`` and
``FaultInjection`` are classes of their own. Every one is a :class:`Strategy`:
``strategy(fn)`` decorates, ``strategy.call(fn, *args)`` calls once, and the pair
``run_sync(fn, args, kwargs)`` / ``run_async(fn, args, kwargs)`` is the seam that
``Policy``, the httpx transports and your own strategies compose through.
``retrying(retry)`` returns :class:`Attempts`, an attempt loop that yields :class:`Attempt`.
"""

from __future__ import annotations

from .resilience._attempts import Attempt, Attempts
from .resilience._fallback import Fallback
from .resilience._hedge import Hedge
from .resilience._retry import Retry
from .resilience._shell import Strategy
from .resilience._throttle import Throttle
from .resilience._timeout import Timeout

__all__ = ["Attempt", "Attempts", "Fallback", "Hedge", "Retry", "Strategy", "Throttle", "Timeout"]
