"""Open an HTML file in a real headless Chromium: a screenshot, the console, what was drawn.

No DevTools client is needed: ``--enable-logging=stderr`` prints every console message
(CSP refusals and uncaught errors included) on stderr, and ``--dump-dom`` prints the DOM
after the page loaded, into which a small checker script writes what the browser drew.

``python -m tests.demo._chromium REPORT.html OUT.png`` takes the screenshot on its own
(docs/img/demo-report.png is made that way from a default ``buttress demo`` run).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers often give /dev/shm 64 MB, too little for a tall page: use /tmp instead.
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
WIDTH = 1240

# Runs in a copy of the page, after its body: measures every chart as the browser laid it
# out and writes the result into the DOM for --dump-dom to carry out.
_CHECKER = """<script>
(function () {
  var out = {charts: [], errors: window.__errors || []};
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var marks = svg.querySelectorAll("path.series, rect.span-bar");
    var drawn = 0;
    marks.forEach(function (mark) {
      var box = mark.getBBox();
      if (box.width > 0) { drawn += 1; }
    });
    var box = svg.getBoundingClientRect();
    var figure = svg.closest("figure");
    out.charts.push({
      id: svg.id, marks: marks.length, drawn: drawn, width: box.width, height: box.height,
      title: figure ? figure.querySelector("h3").textContent : ""
    });
  });
  out.resources = performance.getEntriesByType("resource").length;
  out.height = document.documentElement.scrollHeight;
  var pre = document.createElement("pre");
  pre.id = "report-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""
_CATCH = (
    "<script>window.__errors = []; window.addEventListener('error', function (e) "
    "{ window.__errors.push(String(e.message)); });</script>"
)
_CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")


@dataclass
class Opened:
    """What one page load showed: console lines, and the checker's findings (if asked)."""

    console: list[str]
    check: dict[str, Any]


def _run(
    binary: str, url: str, *extra: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="buttress-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def console_lines(stderr: str) -> list[str]:
    return [match.group(1) for match in _CONSOLE.finditer(stderr)]


def inspect(binary: str, page: Path) -> Opened:
    """Load a copy of ``page`` with the checker added; the page's own policy still applies,
    except that this one inline script may run."""
    text = page.read_text(encoding="utf-8")
    # The report allows no script at all; the copy allows inline ones, nothing else.
    text, count = re.subn(
        r'(<meta http-equiv="Content-Security-Policy" content=")',
        r"\1script-src 'unsafe-inline'; ",
        text,
    )
    assert count == 1, "the report has no Content-Security-Policy"
    text = text.replace("<head>", "<head>" + _CATCH, 1).replace("</body>", _CHECKER + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="buttress-report-") as folder:
        copy = Path(folder) / page.name
        copy.write_text(text, encoding="utf-8")
        done = _run(binary, copy.as_uri(), "--dump-dom", f"--window-size={WIDTH},1000")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="report-check">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, f"the checker wrote nothing: {done.stdout[-2000:]}"
    return Opened(console_lines(done.stderr), json.loads(html.unescape(found.group(1))))


def screenshot(binary: str, page: Path, png: Path, *, height: int, scale: float = 1.0) -> Opened:
    """A screenshot of ``page`` as it is (no checker), ``height`` CSS pixels tall."""
    done = _run(
        binary,
        page.as_uri(),
        f"--screenshot={png}",
        f"--window-size={WIDTH},{height}",
        f"--force-device-scale-factor={scale}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.exists(), done.stderr[-2000:]
    return Opened(console_lines(done.stderr), {})


if __name__ == "__main__":
    import shutil

    report, out = Path(sys.argv[1]), Path(sys.argv[2])
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    chromium = shutil.which("chromium") or "chromium"
    full = inspect(chromium, report).check["height"]
    screenshot(chromium, report, out, height=full, scale=scale)
    print(f"{out}: {out.stat().st_size} bytes, {WIDTH}x{full} CSS pixels at scale {scale}")
