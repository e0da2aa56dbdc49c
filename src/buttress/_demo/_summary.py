"""summary.json and summary.md: the run's figures, each named for what it counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wording import CALL_OUTCOMES, counts_text, overspent

if TYPE_CHECKING:
    from ._stats import DemoStats


def build_summary(
    stats: DemoStats, *, interrupted: bool, upstream_calls: int, latency_threshold: float
) -> dict[str, Any]:
    requests = stats.requests
    return {
        "interrupted": interrupted,
        "requests": requests,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "error_ratio": stats.errors / requests if requests else 0.0,
        "slo_objective": stats.objective,
        "latency_threshold_seconds": latency_threshold,
        "error_budget_left": stats.budget_left(),
        "latency_budget_left": stats.latency_budget_left(),
        "upstream_calls": upstream_calls,
        "amplification": upstream_calls / requests if requests else 0.0,
        "retries": stats.retries,
        "calls_by_outcome": dict(sorted(stats.call_outcomes.items())),
        "refused_by_open_breaker": stats.rejections.get("breaker", 0),
        "refused_by_full_bulkhead": stats.rejections.get("bulkhead", 0),
        "timeouts": stats.timeouts,
        "fallbacks": stats.fallbacks,
        "bulkhead_peak": stats.bulkhead_peak,
        "bulkhead_capacity": stats.bulkhead_capacity,
        "breaker_transitions": [
            {"at_seconds": round(at, 2), "from": old, "to": new, "reason": reason}
            for at, old, new, reason in stats.transitions
        ],
    }


def _budget(left: float) -> str:
    return f"{left:.1%} left" if left >= 0 else overspent(left)


def summary_markdown(summary: dict[str, Any]) -> str:
    objective = summary["slo_objective"]
    lines = [
        "# buttress demo summary",
        "",
        f"- quotes asked for: {summary['requests']} (answers by status: {summary['statuses']})",
        f"- error ratio: {summary['error_ratio']:.2%} (the SLO allows {1 - objective:.1%}); "
        f"error budget {_budget(summary['error_budget_left'])}; latency budget "
        f"{_budget(summary['latency_budget_left'])}",
        f"- calls pricing received: {summary['upstream_calls']} "
        f"({summary['amplification']:.2f} per quote: retries bounded by the budget, "
        "the open breaker spares pricing)",
        "- calls to pricing, by how they ended: "
        + (counts_text(summary["calls_by_outcome"], CALL_OUTCOMES) or "none"),
        f"- retries: {summary['retries']} attempts tried again",
        f"- refused by the open breaker: {summary['refused_by_open_breaker']}; "
        f"refused by the full bulkhead: {summary['refused_by_full_bulkhead']}",
        f"- timeouts (504): {summary['timeouts']}; fallback answers: {summary['fallbacks']}",
        f"- bulkhead peak: {summary['bulkhead_peak']} of {summary['bulkhead_capacity']} in flight",
        "- breaker transitions:",
    ]
    lines += [
        f"  - {t['at_seconds']:6.2f} s: {t['from']} -> {t['to']} ({t['reason']})"
        for t in summary["breaker_transitions"]
    ] or ["  - none"]
    lines += [
        "",
        "Files: `report.html` (the incident report: open it in a browser), `dashboards/` "
        "(Grafana JSON), `rules/slo-rules.yaml` (Prometheus rules), `metrics.txt` (the last "
        "scrape), `spans.json` (every span), `logs.jsonl` (every log line), `summary.json`.",
        "",
    ]
    return "\n".join(lines)
