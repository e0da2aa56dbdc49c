"""Telemetry: events to Prometheus metrics, OpenTelemetry spans and structured logs.

A private package: its public names are re-exported by ``buttress``, ``buttress.names``,
``buttress.slo`` and ``buttress.multiprocess``.
"""
