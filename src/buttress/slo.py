"""Service level objectives: define them, load them from YAML, turn them into rules.

>>> from buttress.slo import SLO
>>> SLO(name="checkout-availability", objective=0.999).objective
0.999

See docs/slo.md for the fields, the rules and the alerts.
"""

from __future__ import annotations

from .telemetry._rules import slo_rules
from .telemetry._slo import SLO, buckets_with_thresholds, load_slos

__all__ = ["SLO", "buckets_with_thresholds", "load_slos", "slo_rules"]
