"""The demo's incident report in a real headless Chromium (Debian's package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._services import require_binary

from ._chromium import inspect, screenshot
from .conftest import DemoRun

CHARTS = {
    "chart-request-rate",
    "chart-error-ratio",
    "chart-latency",
    "chart-outbound-rate",
    "chart-burn-rate",
    "chart-error-budget",
    "chart-breaker-state",
    "chart-breaker-rejections",
    "chart-bulkhead",
    "chart-retries",
    "chart-fallbacks",
    "chart-timeouts",
    "chart-trace-slowest",
    "chart-trace-retried",
}


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_binary("chromium")


@pytest.mark.slow
def test_the_report_draws_every_chart_offline_without_errors(
    demo_run: DemoRun, chromium: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert demo_run.returncode == 0, demo_run.output
    report = demo_run.out / "report.html"
    opened = inspect(chromium, report)
    check = opened.check
    assert opened.console == [], opened.console
    assert check["errors"] == []
    assert check["resources"] == 0  # nothing fetched: no CDN, no font, no image
    charts = {chart["id"]: chart for chart in check["charts"]}
    assert set(charts) == CHARTS
    for chart in charts.values():
        assert chart["title"], chart
        assert chart["width"] > 300, chart
        assert chart["height"] > 60, chart
        assert chart["marks"] > 0, chart
        assert chart["drawn"] == chart["marks"], chart
    # The retried quote's waterfall shows more than one attempt.
    assert charts["chart-trace-retried"]["marks"] >= 4

    # The screenshot: the page as it ships, whole, kept beside the test's other files.
    png = tmp_path_factory.mktemp("artifacts") / "demo-report.png"
    shot = screenshot(chromium, report, png, height=check["height"])
    assert shot.console == [], shot.console
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 50_000  # a drawn page, not a blank one
    print(f"screenshot: {png}")


@pytest.mark.slow
def test_a_broken_page_is_caught(chromium: str, tmp_path: Path) -> None:
    # The same checks fail on a page that fetches from the network or throws.
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'\"></head><body>"
        '<img src="https://cdn.example.invalid/x.png"><script>missing();</script></body></html>',
        encoding="utf-8",
    )
    opened = inspect(chromium, page)
    assert any("Content Security Policy" in line for line in opened.console), opened.console
    assert any("missing" in line for line in opened.console + opened.check["errors"])
    assert opened.check["charts"] == []
