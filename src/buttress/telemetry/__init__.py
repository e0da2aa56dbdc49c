"""Telemetry: events to Prometheus metrics, OpenTelemetry spans and structured logs."""
