"""Grafana dashboards generated from the metric names, shipped as package data."""

__all__: list[str] = []
