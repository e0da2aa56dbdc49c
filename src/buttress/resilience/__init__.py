"""Resilience strategies: small state machines with injected clocks, composed by Policy.

A private package: its public names are re-exported by ``buttress`` and
``buttress.strategies``. Nothing here imports ``buttress.telemetry`` or
``buttress.middleware`` (tests/test_architecture.py checks it).
"""
