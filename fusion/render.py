"""Readable terminal rendering of a DiaryReport: alerts first, then a bar per label."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fusion.alerts import ALERTS_ARE, MISMATCH_WORDS
from fusion.combine import AGREE
from fusion.console import printable
from fusion.history import describe_trend
from fusion.report import Alert, DiaryReport, TrendAlert

SEVERITY_STYLE = {"low": "yellow", "medium": "dark_orange", "high": "bold red"}
BAR_WIDTH = 20


def _bars(title: str, dist: dict[str, float], scale: float = 1.0, suffix: str = "") -> Table:
    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True, min_width=BAR_WIDTH)
    table.add_column(justify="right", no_wrap=True)
    top = max(dist, key=dist.get) if dist else None
    for label, value in dist.items():
        share = value / scale
        bar = "█" * round(share * BAR_WIDTH)
        table.add_row(label, Text(bar.ljust(BAR_WIDTH, "·"), style="cyan" if label == top else "dim"),
                      f"{value:.1f}{suffix}" if suffix else f"{value:.2f}")
    return table


def _alert(alert: Alert, report: DiaryReport) -> Text:
    where = "the diary as a whole" if alert.diary_level else ""
    if alert.sentences:
        times = ", ".join(f"{report.sentences[i].start:.1f}–{report.sentences[i].end:.1f}s" for i in alert.sentences)
        where = f"{where}{' and ' if where else ''}sentence(s) at {times}"
    text = Text(f"[{alert.severity}] ", style=SEVERITY_STYLE[alert.severity])
    text.append(MISMATCH_WORDS[alert.kind], style="bold")
    text.append(f"\n  in {where}.")
    prosody = next((e.prosody for e in alert.evidence if e.prosody is not None), None)
    if prosody is not None and prosody.pitch_semitones is not None and prosody.energy_db_delta is not None:
        text.append(f"\n  Voice vs neutral baseline: pitch {prosody.pitch_semitones:+.1f} semitones, "
                    f"energy {prosody.energy_db_delta:+.1f} dB")
        if prosody.rate_ratio is not None:
            text.append(f", speaking rate ×{prosody.rate_ratio:.2f}")
    return text


def _trend(alert: TrendAlert) -> Text:
    first, *rest = describe_trend(alert)
    text = Text(f"[{alert.severity}] ", style=SEVERITY_STYLE[alert.severity])
    text.append(first, style="bold")
    for line in rest:
        text.append(f"\n  {line}")
    return text


def _baseline(report: DiaryReport) -> str:
    voice = report.voice
    if voice.baseline_diaries is None:
        return voice.baseline
    since = f" since {voice.baseline_since:%Y-%m-%d}" if voice.baseline_since else ""
    return f"{voice.baseline}, {voice.baseline_diaries} diaries{since}"


def render(report: DiaryReport, console: Console | None = None) -> None:
    """Print the report: alerts, warnings, diary-level bars, then sentence by sentence."""
    console = console or Console()
    head = (f"{printable(report.source)} · {report.duration_s:.1f} s · {report.language} · "
            f"{len(report.sentences)} sentences")
    if report.alerts or report.trend_alerts:
        told = [*(_alert(a, report) for a in report.alerts), *(_trend(a) for a in report.trend_alerts),
                Text(ALERTS_ARE, style="dim")]
        console.print(Panel(Group(*told), title="Alerts", border_style="red"))
    else:
        console.print(Panel(report.verdict, title="Alerts",
                            border_style="green" if report.verdict == AGREE else "yellow"))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.quality is not None:
        console.print(report.quality.words(), style="yellow" if report.quality.problems else "dim")
    console.print(f"[bold]{head}[/]")
    grid = Table.grid(padding=(0, 4))
    grid.add_row(
        _bars("Words (share of sentences)", report.text.percent, 100.0, "%"),
        _bars(f"Voice (neutral {report.voice.neutral_prob:.0%})",
              report.voice.probs),
    )
    grid.add_row(_bars("Fused (KO)", report.fused.ko), _bars("Fused (EN)", report.fused.en))
    console.print(grid)
    console.print(
        f"Words ({report.text.polarity}) valence {report.words_va.valence:+.2f} "
        f"arousal {report.words_va.arousal:+.2f} · "
        f"voice valence {report.voice_va.valence:+.2f} arousal {report.voice_va.arousal:+.2f} · "
        f"voice baseline: {_baseline(report)}"
    )
    flagged = {i for a in report.alerts for i in a.sentences}
    table = Table(title="Sentences", title_justify="left")
    for column in ("#", "time", "text", "words", "voice"):
        table.add_column(column)
    for s in report.sentences:
        style = "red" if s.index in flagged else None
        words = "neutral" if s.neutral else s.text_top
        table.add_row(str(s.index), f"{s.start:.1f}–{s.end:.1f}", s.text, words, s.voice_label(), style=style)
    console.print(table)
    console.print(f"[dim]models: {report.models.stt_model} · {report.models.text_model} · "
                  f"{report.models.audio_model}[/]")
