"""The incident report as one self-contained HTML page.

No script, no font, no image, nothing fetched: styles are inline and charts are inline SVG
from ``_report_svg``. A Content-Security-Policy that allows only inline styles makes a
stray external reference fail loudly in a browser instead of quietly needing a network.
"""

from __future__ import annotations

from ._report_model import Chart, Report
from ._report_svg import esc, line_chart, state_chart, waterfall

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee5; --panel: #ffffff;
  --page: #f3f5f8; --s0: #2563eb; --s1: #d97706; --s2: #dc2626; --s3: #059669;
  --s4: #7c3aed; --s5: #0891b2; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h2 .dash { color: var(--muted); font-weight: normal; font-size: 13px; margin-left: 8px; }
.subtitle, .reading, .note { color: var(--muted); }
.intro { max-width: 900px; }
.phases { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 10px 0 0; padding: 0;
  list-style: none; }
.phases li { display: flex; align-items: center; gap: 6px; font-size: 13px; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid var(--line);
  border-radius: 2px; }
ol.moments { margin: 0; padding-left: 0; list-style: none; columns: 2; column-gap: 32px; }
ol.moments li { padding: 2px 0; break-inside: avoid; }
ol.moments b { display: inline-block; min-width: 56px; font-variant-numeric: tabular-nums; }
.grid-2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
figure.panel { display: flex; flex-direction: column; margin: 0;
  background: var(--panel); border: 1px solid var(--line);
  border-radius: 6px; padding: 10px 12px 8px; }
figure.wide { grid-column: 1 / -1; }
@media (max-width: 900px) { .grid-2 { grid-template-columns: minmax(0, 1fr); }
  ol.moments { columns: 1; } }
figure.panel h3 { font-size: 14px; margin: 0 0 2px; }
figure.panel .reading { flex: 1; font-size: 12.5px; margin: 0 0 6px; }
figure.panel svg { display: block; width: 100%; height: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px;
  color: var(--muted); margin-top: 2px; }
.legend i { display: inline-block; width: 16px; height: 3px; vertical-align: middle;
  margin-right: 5px; }
.legend i.dashed {
  background: repeating-linear-gradient(90deg, currentColor 0 4px, transparent 4px 7px)
  !important; }
table { border-collapse: collapse; width: 100%; background: var(--panel);
  border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { width: 22%; font-weight: 600; } td.value { width: 38%;
  font-variant-numeric: tabular-nums; }
td.meaning { color: var(--muted); font-size: 13px; }
footer { margin-top: 28px; color: var(--muted); font-size: 12.5px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
svg .band-outage { fill: #dc2626; fill-opacity: .09; }
svg .band-slow { fill: #d97706; fill-opacity: .12; }
svg .band-healthy { fill: none; }
svg .axis { stroke: #9aa5b1; } svg .tick { stroke: #9aa5b1; }
svg .grid { stroke: #e6e9ee; }
svg .label, svg .unit, svg .threshold-label { font-size: 11px; fill: var(--muted); }
svg .unit { font-weight: 600; }
svg .threshold { stroke: #52606d; stroke-dasharray: 5 4; stroke-width: 1; }
svg .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
svg .dashed { stroke-dasharray: 5 3; }
svg .s0 { stroke: var(--s0); } svg .s1 { stroke: var(--s1); } svg .s2 { stroke: var(--s2); }
svg .s3 { stroke: var(--s3); } svg .s4 { stroke: var(--s4); } svg .s5 { stroke: var(--s5); }
svg .step { stroke: #52606d; stroke-width: 1.2; }
svg .state { fill-opacity: .85; }
svg .state-closed, svg .state-forced_closed { fill: var(--s3); }
svg .state-half_open { fill: var(--s1); }
svg .state-open, svg .state-forced_open { fill: var(--s2); }
svg .mark { stroke-width: 1; stroke-dasharray: 2 2; }
svg .mark-open, svg .mark-forced_open { stroke: var(--s2); }
svg .mark-half_open { stroke: var(--s1); } svg .mark-closed { stroke: var(--s3); }
svg .span-label { font-size: 12px; fill: var(--ink); }
svg .span-detail { font-size: 11px; fill: var(--muted); }
svg .span-detail.inside { fill: #fff; }
svg .span-bar { fill: var(--s0); }
svg .span-bar.service-pricing { fill: var(--s4); }
svg .failed .span-bar { fill: var(--s2); }
.swatch.band-outage { background: rgba(220, 38, 38, .16); }
.swatch.band-slow { background: rgba(217, 119, 6, .2); }
.swatch.band-healthy { background: #fff; }
"""

_SERIES_COLOURS = ("s0", "s1", "s2", "s3", "s4", "s5")


def render_html(report: Report) -> str:
    """The whole page."""
    body = [
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="subtitle">{esc(report.subtitle)}</p>',
        _intro(report),
    ]
    for section in report.sections:
        body.append(
            f"<h2>{esc(_SECTION_NAMES.get(section.dashboard, section.dashboard))}"
            f'<span class="dash">as on the Grafana dashboard "{esc(section.dashboard)}"</span></h2>'
        )
        body.append('<div class="grid-2">')
        body += [_figure(report, chart) for chart in section.charts]
        body.append("</div>")
    body.append('<h2>Traces<span class="dash">from spans.json</span></h2>')
    body += [f'<p class="note">{esc(note)}</p>' for note in report.notes]
    if report.waterfalls:
        body.append('<div class="grid-2">')
        for trace in report.waterfalls:
            body.append(
                f'<figure class="panel wide" id="panel-{esc(trace.key)}">'
                f"<h3>{esc(trace.title)}</h3>"
                f'<p class="reading">{esc(trace.reading)} '
                f"Trace id <code>{esc(trace.trace_id)}</code>, "
                f"{trace.total_ms:.1f} ms in all.</p>{waterfall(trace)}"
                '<div class="legend"><span><i style="background: var(--s0)"></i>checkout</span>'
                '<span><i style="background: var(--s4)"></i>pricing</span>'
                '<span><i style="background: var(--s2)"></i>failed (5xx, timeout)</span></div>'
                "</figure>"
            )
        body.append("</div>")
    body.append('<h2>Summary<span class="dash">as in summary.json</span></h2>')
    body.append("<table>")
    body += [
        f'<tr><th>{esc(row.label)}</th><td class="value">{esc(row.value)}</td>'
        f'<td class="meaning">{esc(row.meaning)}</td></tr>'
        for row in report.rows
    ]
    body.append("</table>")
    body.append(
        "<footer>Beside this file: <code>dashboards/</code> (Grafana JSON), "
        "<code>rules/slo-rules.yaml</code>, <code>metrics.txt</code>, <code>spans.json</code>, "
        "<code>logs.jsonl</code>, <code>summary.json</code>. "
        "Written by <code>buttress demo</code>; it works offline.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(report.title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


_SECTION_NAMES = {
    "buttress / Service": "Traffic: requests, errors, duration",
    "buttress / SLOs": "SLOs: burn rate and budget",
    "buttress / Resilience": "Resilience: breaker, bulkhead, retries, fallbacks",
}


def _intro(report: Report) -> str:
    phases = "".join(
        f'<li><span class="swatch band-{esc(b.mode)}"></span>{b.start:.0f}-{b.end:.0f} s '
        f"{esc(b.title)}</li>"
        for b in report.bands
    )
    return (
        '<p class="intro">checkout answers quotes by calling pricing through buttress\'s httpx '
        "transport (retry, circuit breaker, bulkhead) with a fallback to the last known price. "
        "Pricing follows a script: an outage, a recovery, a latency spike. Every chart shares "
        "the time axis, seconds into the run; the shading marks the script's phases.</p>"
        f'<ul class="phases">{phases}</ul>{_moments(report)}'
    )


def _moments(report: Report) -> str:
    if not report.moments:
        return ""
    items = "".join(f"<li><b>{m.at:.1f} s</b> {esc(m.text)}</li>" for m in report.moments)
    return f'<h2>What happened</h2><ol class="moments">{items}</ol>'


def _figure(report: Report, chart: Chart) -> str:
    if chart.kind == "states":
        svg = state_chart(chart, report.bands, report.marks, report.duration)
        legend = "".join(
            f'<span><i style="background: var(--{colour})"></i>{name}</span>'
            for colour, name in (("s3", "closed"), ("s1", "half-open"), ("s2", "open"))
        )
        legend += f"<span>{len(report.marks)} transitions, each a dotted line</span>"
    else:
        svg = line_chart(chart, report.bands, report.duration)
        legend = "".join(
            f'<span><i class="{"dashed" if s.dashed else ""}" '
            f'style="background: var(--{_SERIES_COLOURS[i % len(_SERIES_COLOURS)]}); '
            f'color: var(--{_SERIES_COLOURS[i % len(_SERIES_COLOURS)]})"></i>{esc(s.label)}</span>'
            for i, s in enumerate(chart.series)
        )
    return (
        f'<figure class="panel" id="panel-{esc(chart.key)}"><h3>{esc(chart.title)}</h3>'
        f'<p class="reading">{esc(chart.reading)}</p>{svg}'
        f'<div class="legend">{legend}</div></figure>'
    )
