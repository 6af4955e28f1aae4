"""A DiaryReport as one HTML page: alerts in words, then plotly charts.

By default the page carries plotly.js inline (about 4.6 MB), so it opens offline and can be mailed or
stored as one file; given a URL (a server's :data:`PLOTLY_URL`, where it serves :func:`plotly_js_path`)
the page loads it from there instead and weighs tens of kilobytes. :func:`page` is the shell (head, CSS,
plotly) that the timeline of a person's diaries (``fusion.history_html``) shares.

Reading order: alerts first (the sentences of ``fusion.alerts.MISMATCH_WORDS``), a timeline of the diary
(each sentence a span coloured by its words' emotion, the voice's emotion beneath it, mismatching spans
outlined in red), the words-vs-voice valence/arousal picture, the diary-level bars of both label sets,
the transcript.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fusion.errors import MissingExtra

try:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs
    from plotly.subplots import make_subplots
except ImportError as exc:
    raise MissingExtra("plotly", "report", "an HTML report") from exc

from fusion.alerts import ALERTS_ARE, MISMATCH_WORDS
from fusion.combine import AGREE
from fusion.config import Config, default_config
from fusion.files import atomic_write
from fusion.history import describe_trend
from fusion.report import Alert, DiaryReport, TrendAlert

# Colour of each emotion, by its English name, so words and voice use one visual language.
COLOURS = {
    "joy": "#f2b705", "HAPPY": "#f2b705",
    "flustered": "#f28c28", "SURPRISE": "#f28c28",
    "anger": "#d62728", "ANGRY": "#d62728",
    "anxiety": "#9467bd", "FEAR": "#9467bd",
    "hurt": "#8c6d9e", "DISGUST": "#8c564b",
    "sadness": "#1f77b4", "SAD": "#1f77b4",
}
_FALLBACK = "#7f7f7f"
MISMATCH = "#e0245e"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
# Where a server publishes plotly.js for its pages (the file of plotly_js_path()).
PLOTLY_URL = "/static/plotly.min.js"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans KR","NanumGothic",sans-serif;\
margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.15rem;margin:28px 0 8px}
.meta{color:#5b6475;font-size:.9rem}
section{background:#fff;border-radius:10px;padding:16px 20px;margin-top:16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.alert{border-left:6px solid #c9a227;padding:8px 12px;margin:8px 0;background:#fff8e6;border-radius:4px}
.alert.medium{border-color:#f28c28;background:#fff1e6}.alert.high{border-color:#e0245e;background:#fde8ee}
.alert ul{margin:6px 0 0;padding-left:20px}
.alert .sev{text-transform:uppercase;font-size:.75rem;font-weight:700;letter-spacing:.05em;margin-right:6px}
.agree{border-left:6px solid #2ca02c;padding:8px 12px;background:#eaf7ea;border-radius:4px}
.apart{border-left:6px solid #e0a800;padding:8px 12px;background:#fdf6e3;border-radius:4px}
.warn{color:#8a6100}
.key span{display:inline-block;margin:2px 10px 2px 0;font-size:.85rem}
.key i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:4px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
tr.flagged td{background:#fde8ee}
.chip{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:.8rem;white-space:nowrap}
footer{color:#5b6475;font-size:.8rem;margin:20px 0}
"""


def _colour(english: str) -> str:
    return COLOURS.get(english, _FALLBACK)


class _Names:
    """Display names: Korean labels with their English gloss; English labels as they are."""

    def __init__(self, config: Config):
        self.ko_english = dict(zip(config.labels.ko, config.labels.ko_english))

    def words(self, label: str) -> str:
        return f"{label} ({self.ko_english[label]})" if label in self.ko_english else label

    def words_colour(self, label: str) -> str:
        return _colour(self.ko_english.get(label, label))


def _flagged(report: DiaryReport) -> set[int]:
    return {i for alert in report.alerts for i in alert.sentences}


def _alert_html(alert: Alert, report: DiaryReport) -> str:
    places = ["the diary as a whole"] if alert.diary_level else []
    if alert.sentences:
        places.append("sentence(s) at " + ", ".join(
            f"{report.sentences[i].start:.1f}–{report.sentences[i].end:.1f} s" for i in alert.sentences))
    detail = ""
    prosody = next((e.prosody for e in alert.evidence if e.prosody is not None), None)
    if prosody is not None and prosody.pitch_semitones is not None and prosody.energy_db_delta is not None:
        detail = (f"<br><small>Voice against a calm baseline: pitch {prosody.pitch_semitones:+.1f} semitones, "
                  f"energy {prosody.energy_db_delta:+.1f} dB</small>")
    return (f'<div class="alert {alert.severity}"><span class="sev">{alert.severity}</span>'
            f"<strong>{escape(MISMATCH_WORDS[alert.kind])}</strong><br>"
            f"In {escape(' and '.join(places))}.{detail}</div>")


def trend_html(alert: TrendAlert) -> str:
    """A drift alert (a person's recent diaries against their usual) as ``fusion.history.describe_trend`` tells it."""
    first, *rest = describe_trend(alert)
    items = "".join(f"<li>{escape(line)}</li>" for line in rest)
    return (f'<div class="alert drift {alert.severity}" data-kind="{escape(alert.kind)}"><span class="sev">'
            f"{alert.severity}</span><strong>{escape(first)}</strong><ul>{items}</ul></div>")


def _alerts_section(report: DiaryReport) -> str:
    body = "".join(_alert_html(a, report) for a in report.alerts) or \
        f'<div class="{"agree" if report.verdict == AGREE else "apart"}">{escape(report.verdict)}</div>'
    if report.alerts:
        body += f"<p><small>{escape(ALERTS_ARE)}</small></p>"
    body += "".join(trend_html(t) for t in report.trend_alerts)
    body += "".join(f'<p class="warn">Note: {escape(w)}</p>' for w in report.warnings)
    if report.quality is not None:
        body += f'<p class="{"warn" if report.quality.problems else "quality"}">{escape(report.quality.words())}</p>'
    return f'<section id="alerts"><h2>What stands out</h2>{body}</section>'


def timeline_figure(report: DiaryReport, names: _Names) -> go.Figure:
    """Two rows of spans over time: the words' emotion on top, the voice's beneath; mismatches outlined."""
    sents, flagged = report.sentences, _flagged(report)
    starts = [s.start for s in sents]
    widths = [max(s.end - s.start, 0.05) for s in sents]
    outline = {"color": [MISMATCH if s.index in flagged else "#ffffff" for s in sents],
               "width": [3 if s.index in flagged else 1 for s in sents]}
    hover = [escape(s.text) for s in sents]
    fig = go.Figure()
    fig.add_bar(name="words", y=["Words"] * len(sents), x=widths, base=starts, orientation="h",
                marker={"color": [names.words_colour(s.text_top) for s in sents], "line": outline},
                text=[names.words(s.text_top) for s in sents], textposition="inside", insidetextanchor="middle",
                customdata=hover, hovertemplate="%{customdata}<br>words: %{text}<extra></extra>")
    fig.add_bar(name="voice", y=["Voice"] * len(sents), x=widths, base=starts, orientation="h",
                marker={"color": [_colour(s.voice_top) for s in sents], "line": outline},
                text=[s.voice_top for s in sents], textposition="inside", insidetextanchor="middle",
                customdata=hover, hovertemplate="%{customdata}<br>voice: %{text}<extra></extra>")
    for s in sents:
        if s.index in flagged:
            fig.add_vrect(x0=s.start, x1=s.start + max(s.end - s.start, 0.05), fillcolor=MISMATCH, opacity=0.12,
                          line_width=0, layer="below")
    fig.update_layout(barmode="overlay", showlegend=False, height=220, margin={"l": 60, "r": 20, "t": 10, "b": 40},
                      xaxis={"title": "seconds", "range": [0, max(report.duration_s, 0.1)]},
                      yaxis={"categoryorder": "array", "categoryarray": ["Voice", "Words"]},
                      plot_bgcolor="#fafbfc")
    return fig


def valence_arousal_figure(report: DiaryReport) -> go.Figure:
    """Each sentence as a line from where its words sit to where its voice sits, plus the diary as a whole."""
    fig = go.Figure()
    xs, ys = [], []
    for s in report.sentences:
        xs += [s.words_va.valence, s.voice_va.valence, None]
        ys += [s.words_va.arousal, s.voice_va.arousal, None]
    fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": "#c3c8d2", "width": 1}, hoverinfo="skip",
                    name="sentence: words → voice")
    for kind, attr, symbol in (("words", "words_va", "circle"), ("voice", "voice_va", "diamond")):
        points = [getattr(s, attr) for s in report.sentences]
        fig.add_scatter(x=[p.valence for p in points], y=[p.arousal for p in points], mode="markers",
                        marker={"symbol": symbol, "size": 9, "opacity": 0.7}, name=f"{kind}, per sentence",
                        text=[f"#{s.index} {escape(s.text)}" for s in report.sentences],
                        hovertemplate="%{text}<extra>" + kind + "</extra>")
        diary = getattr(report, attr)
        fig.add_scatter(x=[diary.valence], y=[diary.arousal], mode="markers+text", text=[f"{kind} (diary)"],
                        textposition="top center", name=f"{kind}, whole diary",
                        marker={"symbol": symbol, "size": 18, "line": {"width": 2, "color": "#1d2330"}})
    fig.add_annotation(x=report.voice_va.valence, y=report.voice_va.arousal, ax=report.words_va.valence,
                       ay=report.words_va.arousal, xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=3, arrowcolor="#1d2330", text="")
    for x, y, label in ((0.95, 0.95, "pleasant, excited"), (-0.95, 0.95, "unpleasant, excited"),
                        (-0.95, -0.95, "unpleasant, calm"), (0.95, -0.95, "pleasant, calm")):
        fig.add_annotation(x=x, y=y, text=label, showarrow=False, font={"color": "#8a93a3", "size": 11},
                           xanchor="right" if x > 0 else "left")
    fig.update_layout(height=420, margin={"l": 60, "r": 20, "t": 10, "b": 50}, plot_bgcolor="#fafbfc",
                      xaxis={"title": "valence (unpleasant → pleasant)", "range": [-1.05, 1.05], "zeroline": True},
                      yaxis={"title": "arousal (calm → excited)", "range": [-1.05, 1.05], "zeroline": True})
    return fig


def diary_bars_figure(report: DiaryReport, names: _Names) -> go.Figure:
    """The diary-level distributions: words (share of sentences per label) and voice (probabilities)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Words: share of sentences (%)",
                                                        f"Voice (baseline: {report.voice.baseline})"))
    words = list(report.text.percent)
    fig.add_bar(x=[names.words(k) for k in words], y=[report.text.percent[k] for k in words], row=1, col=1,
                marker_color=[names.words_colour(k) for k in words], name="words")
    voice = list(report.voice.probs)
    fig.add_bar(x=voice, y=[report.voice.probs[k] for k in voice], row=1, col=2,
                marker_color=[_colour(k) for k in voice], name="voice")
    fig.update_layout(height=340, showlegend=False, margin={"l": 50, "r": 20, "t": 40, "b": 60}, plot_bgcolor="#fafbfc")
    fig.update_yaxes(range=[0, 100], row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    return fig


def _chip(label: str, colour: str) -> str:
    return f'<span class="chip" style="background:{colour}">{escape(label)}</span>'


def _transcript_section(report: DiaryReport, names: _Names) -> str:
    flagged = _flagged(report)
    rows = "".join(
        f'<tr class="{"flagged" if s.index in flagged else ""}" data-sentence="{s.index}">'
        f"<td>{s.index + 1}</td><td>{s.start:.1f}–{s.end:.1f} s</td><td>{escape(s.text)}</td>"
        f"<td>{_chip(names.words(s.text_top), names.words_colour(s.text_top))} {s.text_probs[s.text_top]:.2f}</td>"
        f"<td>{_chip(s.voice_top, _colour(s.voice_top))} {s.voice_probs[s.voice_top]:.2f}</td></tr>"
        for s in report.sentences)
    empty = "" if report.sentences else "<p>No sentences were recognised.</p>"
    return ('<section id="transcript"><h2>Transcript</h2>'
            "<table><thead><tr><th>#</th><th>time</th><th>sentence</th><th>words</th><th>voice</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{empty}</section>")


def _key(report: DiaryReport, names: _Names, config: Config) -> str:
    words = "".join(f'<span><i style="background:{names.words_colour(k)}"></i>{escape(names.words(k))}</span>'
                    for k in config.labels.ko)
    voice = "".join(f'<span><i style="background:{_colour(k)}"></i>{escape(k)}</span>' for k in config.labels.en)
    return (f'<div class="key">Words: {words}</div><div class="key">Voice: {voice}</div>'
            f'<div class="key"><span><i style="background:{MISMATCH}"></i>words and voice disagree</span></div>')


def figure_div(fig: go.Figure, div_id: str, **attrs: str) -> str:
    """A figure as a ``<div id=div_id>`` holding the plot ``div_id-plot`` (plotly.js comes with the page)."""
    extra = "".join(f' data-{k}="{escape(v)}"' for k, v in attrs.items())
    body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"{div_id}-plot", config=_PLOT_CONFIG)
    return f'<div id="{div_id}"{extra}>{body}</div>'


def plotly_js_path() -> Path:
    """The installed plotly package's ``plotly.min.js``: the one file a server publishes at :data:`PLOTLY_URL`."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def page(title: str, body: str, plotly_js: str | None = None, css: str = "") -> str:
    """A whole page around ``body`` (HTML): the shared head and CSS, and plotly.js inline (``plotly_js`` None,
    nothing is fetched when it opens) or from that URL; an empty icon, so a browser asks for no favicon."""
    plotly = (f"<script>{get_plotlyjs()}</script>" if plotly_js is None
              else f'<script src="{escape(plotly_js)}" charset="utf-8"></script>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="icon" href="data:,"><style>{_CSS}{css}</style>{plotly}</head>
<body><main>
{body}
</main></body></html>
"""


def render_html(report: DiaryReport, config: Config | None = None, plotly_js: str | None = None) -> str:
    """The whole page as one string: plotly.js inline (``plotly_js`` None: nothing is fetched when it opens),
    or loaded from the URL ``plotly_js`` (e.g. :data:`PLOTLY_URL`)."""
    config = config or default_config()
    names = _Names(config)
    head = (f"{escape(Path(report.source).name or report.source)} · {report.duration_s:.1f} s · "
            f"language {escape(report.language)} · {len(report.sentences)} sentences")
    words = (f"The words read {report.text.polarity}" + (f", most often {escape(names.words(report.text.top))}"
                                                          if report.text.top else ""))
    voice = report.voice.label()
    fused = f"{words}; the voice sounds {escape(voice)}." if voice else f"{words}; no voice was heard."
    timeline = (figure_div(timeline_figure(report, names), "timeline", sentences=str(len(report.sentences)))
                if report.sentences else "<p>No sentences to place on a timeline.</p>")
    key = _key(report, names, config)
    va = figure_div(valence_arousal_figure(report), "va")
    bars = figure_div(diary_bars_figure(report, names), "bars")
    m = report.models
    return page("Voice diary report", f"""<h1>Voice diary report</h1><div class="meta">{head}</div>
{_alerts_section(report)}
<section id="timeline-section"><h2>Timeline: words above, voice beneath</h2>{timeline}{key}</section>
<section id="valence-arousal"><h2>Words vs voice: how pleasant, how excited</h2>{va}</section>
<section id="diary"><h2>The diary as a whole</h2>{bars}<p>{fused}</p></section>
{_transcript_section(report, names)}
<footer>models: {escape(m.stt_model)} · {escape(m.text_model)} · {escape(m.audio_model)}
· report schema {escape(report.schema_version)}</footer>""", plotly_js)


def save_html(report: DiaryReport, path: str | Path, config: Config | None = None) -> None:
    atomic_write(path, render_html(report, config))
