"""A person's diaries over time as one HTML page: the drift alert in words, a chart, the weeks and the diaries.

Reading order: the drift alert (``voice_lower_than_usual``) told first with its plain numbers, as
``fusion.history.describe_trend`` words it; the valence of the words and of the voice, diary by diary,
with the diaries that carry an alert marked; a table of the weeks; the diaries in date order, each
linking to its own report when it has one. The page shell (head, CSS, plotly.js inline or from a URL)
is ``fusion.html_report.page``.
"""

from __future__ import annotations

import os
from html import escape
from urllib.parse import urlsplit

from fusion.errors import MissingExtra

try:
    import plotly.graph_objects as go
except ImportError as exc:
    raise MissingExtra("plotly", "report", "an HTML timeline") from exc

from fusion.alerts import told
from fusion.config import Config, default_config
from fusion.history import TimelineEntry, WeekSummary
from fusion.html_report import COLOURS, MISMATCH, figure_div, page, trend_html
from fusion.report import TrendAlert

WORDS_COLOUR, VOICE_COLOUR = "#f28c28", "#1f77b4"

_CSS = """
td.num{text-align:right;font-variant-numeric:tabular-nums}td.when{white-space:nowrap}
tr.alerted td{background:#fde8ee}
"""


def _short(kind: str) -> str:
    return kind.replace("_", " ")


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _when(entry: TimelineEntry) -> str:
    return f"{entry.recorded_at:%Y-%m-%d %H:%M}"


def _safe_url(url: str | None) -> str | None:
    """A link target that is a web address or a path, never ``javascript:`` or another scheme."""
    if not url or urlsplit(url).scheme not in ("", "http", "https"):
        return None
    return url


class _Gloss:
    def __init__(self, config: Config):
        self.english = dict(zip(config.labels.ko, config.labels.ko_english))

    def __call__(self, label: str | None) -> str:
        if label is None:
            return "–"
        return f"{label} ({self.english[label]})" if label in self.english else label


def _drift_section(trend: TrendAlert | None) -> str:
    if trend is None:
        return ('<section id="drift"><h2>What stands out</h2><div class="agree">The recent diaries\' voice is '
                "not lower than usual (or there are not yet enough diaries to tell).</div></section>")
    return f'<section id="drift"><h2>What stands out</h2>{trend_html(trend)}</section>'


def valence_figure(entries: list[TimelineEntry], trend: TrendAlert | None, gloss: _Gloss) -> go.Figure:
    """Words and voice valence over the days, one point per diary on each line; alerted diaries ringed."""
    fig = go.Figure()

    def hover(e: TimelineEntry) -> str:
        alerts = ", ".join(escape(_short(k)) for k in e.alerts) or "none"
        return (f"{escape(e.id)}<br>{_when(e)}<br>words: {escape(gloss(e.text_top))}"
                f"<br>voice: {escape(e.voice_top or '–')}<br>alerts: {alerts}")

    for name, attr, colour in (("words", "words_va", WORDS_COLOUR), ("voice", "voice_va", VOICE_COLOUR)):
        shown = [e for e in entries if getattr(e, attr) is not None]
        fig.add_scatter(x=[e.recorded_at.isoformat() for e in shown], y=[getattr(e, attr).valence for e in shown],
                        mode="lines+markers", name=f"{name} valence", line={"color": colour, "width": 2},
                        marker={"size": 8}, text=[hover(e) for e in shown],
                        hovertemplate="%{text}<extra>" + name + " %{y:+.2f}</extra>")
    flagged = [e for e in entries if e.alerts]
    fig.add_scatter(x=[e.recorded_at.isoformat() for e in flagged],
                    y=[(e.voice_va or e.words_va).valence if (e.voice_va or e.words_va) else 0.0 for e in flagged],
                    mode="markers", name="diary with an alert", text=[hover(e) for e in flagged],
                    marker={"symbol": "circle-open", "size": 18, "color": MISMATCH, "line": {"width": 3}},
                    hovertemplate="%{text}<extra>alert</extra>")
    if trend is not None and entries:
        fig.add_vrect(x0=trend.since.isoformat(), x1=entries[-1].recorded_at.isoformat(), fillcolor=MISMATCH,
                      opacity=0.08, line_width=0, layer="below", annotation_text="recent window",
                      annotation_position="top left")
    fig.update_layout(height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, plot_bgcolor="#fafbfc",
                      legend={"orientation": "h", "y": -0.18},
                      yaxis={"title": "valence (unpleasant → pleasant)", "range": [-1.05, 1.05], "zeroline": True},
                      xaxis={"title": "recorded (UTC)", "type": "date"})
    return fig


def _weeks_section(weeks: list[WeekSummary]) -> str:
    rows = "".join(
        f"<tr><td>{escape(w.week)}</td><td>{w.start:%Y-%m-%d}</td><td class=\"num\">{w.diaries}</td>"
        f'<td class="num">{_signed(w.words_valence)}</td><td class="num">{_signed(w.voice_valence)}</td>'
        f"<td>{escape(', '.join(f'{_short(k)} ×{n}' for k, n in w.alerts.items()) or '–')}</td></tr>"
        for w in weeks)
    return ('<section id="weeks"><h2>Week by week</h2><table><thead><tr><th>week</th><th>from</th>'
            "<th>diaries</th><th>words valence</th><th>voice valence</th><th>alerts (diaries)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>")


def _short_ids(ids: list[str]) -> dict[str, str]:
    """Each id as shown: file paths without the folder they all share (the whole id stays in the row's title)."""
    try:
        common = os.path.commonpath(ids) if len(set(ids)) > 1 else os.path.dirname(ids[0])
    except (ValueError, IndexError):  # absolute and relative paths mixed, or no ids
        common = ""
    if common in ("", "/"):
        return {i: i for i in ids}
    return {i: os.path.relpath(i, common) for i in ids}


def _diaries_section(entries: list[TimelineEntry], gloss: _Gloss) -> str:
    shown = _short_ids([e.id for e in entries])

    def name(e: TimelineEntry) -> str:
        url = _safe_url(e.url)
        label = f'<span title="{escape(e.id)}">{escape(shown[e.id])}</span>'
        return f'<a href="{escape(url)}">{label}</a>' if url else label

    def colour(label: str | None, english: str | None) -> str:
        return f' style="border-left:4px solid {COLOURS.get(english or "", "#c3c8d2")}"' if label else ""

    rows = "".join(
        f'<tr class="{"alerted" if e.alerts else ""}" data-diary="{escape(e.id)}"><td class="when">{_when(e)}</td>'
        f"<td>{name(e)}</td><td class=\"num\">{e.duration_s:.1f} s</td>"
        f"<td{colour(e.text_top, gloss.english.get(e.text_top or ''))}>{escape(gloss(e.text_top))}</td>"
        f"<td{colour(e.voice_top, e.voice_top)}>{escape(e.voice_top or '–')}</td>"
        f'<td class="num">{_signed(e.words_va.valence if e.words_va else None)}</td>'
        f'<td class="num">{_signed(e.voice_va.valence if e.voice_va else None)}</td>'
        f"<td>{'<br>'.join(escape(told(k)) for k in e.alerts) or '–'}</td></tr>"
        for e in entries)
    return ('<section id="diaries"><h2>The diaries</h2><table><thead><tr><th>recorded (UTC)</th><th>diary</th>'
            "<th>length</th><th>words</th><th>voice</th><th>words valence</th><th>voice valence</th><th>alerts</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></section>")


def render_timeline(entries: list[TimelineEntry], weeks: list[WeekSummary], trend: TrendAlert | None,
                    title: str = "Diaries over time", plotly_js: str | None = None,
                    config: Config | None = None) -> str:
    """The page of a person's diaries (``entries`` from ``fusion.history.timeline``, ``weeks`` from ``weekly``,
    ``trend`` from ``trend_alert``): plotly.js inline (``plotly_js`` None) or from that URL."""
    gloss = _Gloss(config or default_config())
    entries = sorted(entries, key=lambda e: (e.recorded_at, e.id))
    meta = (f"{len(entries)} diaries, {entries[0].recorded_at:%Y-%m-%d} to {entries[-1].recorded_at:%Y-%m-%d}, "
            f"{len(weeks)} weeks" if entries else "no diaries yet")
    chart = (figure_div(valence_figure(entries, trend, gloss), "trend", diaries=str(len(entries)),
                        alerted=str(sum(bool(e.alerts) for e in entries)))
             if entries else "<p>No diaries to chart.</p>")
    body = f"""<h1>{escape(title)}</h1><div class="meta">{meta}</div>
{_drift_section(trend)}
<section id="chart"><h2>How pleasant the words and the voice were, diary by diary</h2>{chart}</section>
{_weeks_section(weeks)}
{_diaries_section(entries, gloss)}"""
    return page(title, body, plotly_js, _CSS)
