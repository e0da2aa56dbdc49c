"""docs/metrics.md and the names module list exactly the same names."""

from __future__ import annotations

import re
from pathlib import Path

from buttress.telemetry import _names

METRICS_MD = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `([^`]+)` \|(.*)\|$")


def _documented_rows() -> dict[str, list[str]]:
    rows = {}
    for line in METRICS_MD.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def _module_names() -> dict[str, str]:
    return {
        value: key
        for key, value in vars(_names).items()
        if key.isupper() and isinstance(value, str)
    }


def test_every_documented_name_is_a_constant() -> None:
    documented = set(_documented_rows())
    assert len(documented) > 50  # the parse works: otherwise this test could not fail
    assert sorted(documented - set(_module_names())) == []


def test_every_constant_is_documented() -> None:
    assert sorted(set(_module_names()) - set(_documented_rows())) == []


def test_every_metric_row_says_type_unit_labels_and_meaning() -> None:
    metrics = {v for k, v in vars(_names).items() if k.isupper() and isinstance(v, str)}
    metrics = {m for m in metrics if m.startswith(("http_server_", "http_client_", "buttress_"))}
    rows = _documented_rows()
    for metric in sorted(metrics):
        kind, unit, labels, meaning = rows[metric]
        assert kind in {"counter", "gauge", "histogram"}, metric
        assert unit, metric
        assert meaning, metric
        assert kind != "counter" or metric.endswith("_total"), metric
        for label in re.findall(r"`([^`]+)`", labels):
            assert label in rows, f"{metric} label {label} is undocumented"
