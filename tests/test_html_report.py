"""The self-contained HTML report, in a real headless Chromium."""

from __future__ import annotations

import io
import os
import re
import shutil
from html import escape
from pathlib import Path

import numpy as np
import pytest
from browser import watched_page
from plotly.offline import get_plotlyjs
from rich.console import Console
from typer.testing import CliRunner

from fusion.alerts import ALERTS_ARE, MISMATCH_WORDS, SEVERITIES
from fusion.cli import app
from fusion.combine import AGREE, ALERT_RULES, AlertRule, Observation, mismatch_alerts
from fusion.html_report import render_html
from fusion.pipeline import analyze
from fusion.render import render
from fusion.report import DiaryReport

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "diary_ko.flac"
DOCS_PICTURE = ROOT / "docs" / "report.png"


@pytest.fixture(scope="module")
def sample_report() -> DiaryReport:
    """The sample diary, heard by the real speech-to-text and models."""
    return analyze(SAMPLE)


def _alert_words(page: str) -> list[str]:
    """The alert kinds a page tells, in the order it tells them."""
    found = [(page.index(words), kind) for kind, words in MISMATCH_WORDS.items() if words in page]
    return [kind for _, kind in sorted(found)]


def _terminal(report: DiaryReport) -> str:
    console = Console(record=True, width=200)
    render(report, console)
    return console.export_text()


def test_page_is_one_self_contained_file(sample_report):
    page = render_html(sample_report)
    assert page.startswith("<!DOCTYPE html>") and page.count(get_plotlyjs()) == 1, "plotly.js inline, once"
    ours = page.replace(get_plotlyjs(), "")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=(?!\"data:)|@import|url\(|(src|href)=[\"']?https?:", ours)


def test_alerts_come_first_in_plain_words_with_their_evidence(flagship_report):
    """The real flagship alert of the sad-voice sample under happy words: told first, where it was found, and
    the voice's pitch and energy against the calm baseline taken from the alert's own evidence."""
    (alert,) = [a for a in flagship_report.alerts if a.kind == "positive_words_depressed_tone"]
    page = render_html(flagship_report)
    words = MISMATCH_WORDS[alert.kind]
    assert words in page and page.index(words) < page.index('id="timeline"') < page.index('id="transcript"')
    box = page[page.index(f'<div class="alert {alert.severity}">'):]
    box = box[:box.index("</div>")]
    assert words in box and "the diary as a whole" in box
    prosody = alert.evidence[0].prosody
    assert prosody.pitch_semitones < -2.0  # measured -5.0: the low voice is the evidence
    assert f"pitch {prosody.pitch_semitones:+.1f} semitones, energy {prosody.energy_db_delta:+.1f} dB" in box
    assert page.count('class="flagged"') == len(alert.sentences)
    assert "Words and voice agree" not in page and ALERTS_ARE in page
    assert "The words read positive, most often 기쁨 (joy); the voice sounds SAD." in page, \
        "the summary names each side's own reading, never a fused label the voice does not carry"


def test_with_no_alert_the_page_says_the_report_s_verdict(flagship_report):
    """The verdict is the report's (fusion.combine.verdict): agreeing only when words and voice sit together."""
    for verdict, style in ((AGREE, "agree"), ("The voice sounds lower than the words (valence -0.49 against +0.40), "
                                              "below the alert thresholds.", "apart")):
        page = render_html(flagship_report.model_copy(update={"alerts": [], "verdict": verdict}))
        assert f'<div class="{style}">{escape(verdict)}</div>' in page and ALERTS_ARE not in page


def test_every_alert_kind_is_told_in_words(flagship_report, mirror_reports):
    """Each kind, as real audio raised it, in the page and on the terminal; a sentence it names is flagged."""
    for report in (flagship_report, *mirror_reports.values()):
        (alert,) = report.alerts
        page = render_html(report)
        assert _alert_words(page) == [alert.kind] and MISMATCH_WORDS[alert.kind] in _terminal(report)
        flagged = re.findall(r'<tr class="flagged" data-sentence="(\d+)"', page)
        assert sorted(map(int, flagged)) == alert.sentences


def test_several_alerts_are_told_most_severe_first(flagship_report, mirror_reports):
    """The alerts of one report (here the three real ones put together) keep the report's order on the page."""
    ordered = [mirror_reports["negative_words_upbeat_tone"].alerts[0], flagship_report.alerts[0],
               mirror_reports["calm_words_agitated_tone"].alerts[0]]
    ranks = [SEVERITIES.index(a.severity) for a in ordered]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]  # high, then the flagship's, then low
    report = flagship_report.model_copy(update={"alerts": ordered})
    assert _alert_words(render_html(report)) == [a.kind for a in ordered]
    terminal = _terminal(report)
    assert sorted(a.kind for a in ordered) == sorted(MISMATCH_WORDS)
    assert [terminal.index(MISMATCH_WORDS[a.kind]) for a in ordered] == sorted(
        terminal.index(MISMATCH_WORDS[a.kind]) for a in ordered)


def test_a_new_alert_kind_needs_only_its_words_rule_and_severity_steps(sample_report, config, monkeypatch):
    """Its sentence in fusion.alerts, one AlertRule and its [alerts.severity] steps: the config loads, the rule
    fires, the report validates and both renderings tell it."""
    kind, words = "loud_words_whispered_tone", "The words shout, but the voice whispers."
    monkeypatch.setitem(MISMATCH_WORDS, kind, words)
    monkeypatch.setitem(ALERT_RULES, kind, AlertRule(lambda obs, cfg: 0.5, ()))
    steps = {**config.alerts.severity, kind: (0.0, 0.4, 0.9)}
    extended = config.with_updates(alerts={"severity": steps})
    diary = Observation(np.array(list(sample_report.text.mean_probs.values())),
                        np.array(list(sample_report.voice.probs.values())))
    alerts = [a for a in mismatch_alerts(diary, [], extended) if a.kind == kind]
    assert [(a.severity, a.diary_level) for a in alerts] == [("medium", True)]
    report = DiaryReport.model_validate_json(sample_report.model_copy(update={"alerts": alerts}).to_json())
    assert words in render_html(report) and words in _terminal(report)


def test_diary_text_cannot_inject_markup(sample_report):
    evil = sample_report.sentences[0].model_copy(update={"text": "</script><script>alert(1)</script><b>x</b>"})
    report = sample_report.model_copy(update={"sentences": [evil, *sample_report.sentences[1:]],
                                              "source": "<i>a</i>.wav"})
    page = render_html(report)
    assert "<script>alert(1)" not in page and "<b>x</b>" not in page and "<i>a</i>" not in page


def test_a_file_name_cannot_drive_the_terminal(sample_report):
    """A recording named with an escape sequence or rich markup is printed as written (before: the escape reached
    the terminal as is, and "[red]" was taken as a style and left out)."""
    report = sample_report.model_copy(update={"source": "e\x1b]0;owned\x07[red]x[/red].wav"})
    out = io.StringIO()
    render(report, Console(file=out, force_terminal=True, width=200))
    assert "\x1b]" not in out.getvalue() and "\x07" not in out.getvalue(), "no escape of the name reaches it"
    assert "e\\x1b]0;owned\\x07[red]x[/red].wav · " in _terminal(report)


def test_cli_writes_the_page(tmp_path):
    transcript = tmp_path / "t.txt"
    transcript.write_text("오늘 정말 즐거웠어. 친구를 만났거든.", encoding="utf-8")
    out = tmp_path / "diary.html"
    result = CliRunner().invoke(app, ["analyze", str(SAMPLE), "--transcript", str(transcript),
                                      "--html", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count('data-sentence="') == 2


def _open(offline_browser, path: Path):
    page, problems = watched_page(offline_browser)
    page.goto(path.as_uri())
    page.wait_for_selector("#timeline .trace.bars .point")
    return page, problems


def _points(page, trace: int) -> int:
    return page.evaluate(f"document.querySelectorAll('#timeline .trace.bars')[{trace}]"
                         ".querySelectorAll('.point').length")


def test_sample_report_in_a_real_browser(offline_browser, sample_report, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_html(sample_report), encoding="utf-8")
    page, problems = _open(offline_browser, path)
    n = len(sample_report.sentences)
    assert n > 1 and _points(page, 0) == n and _points(page, 1) == n, "one words span and one voice span per sentence"
    assert page.locator("#timeline").get_attribute("data-sentences") == str(n)
    assert page.locator("#transcript tbody tr").count() == n
    assert page.locator("#va .js-plotly-plot").count() == 1 and page.locator("#bars .js-plotly-plot").count() == 1
    assert problems == []
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("FUSION_UPDATE_DOCS") or not DOCS_PICTURE.exists():
        DOCS_PICTURE.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_PICTURE)
    page.close()


def test_mismatching_spans_are_highlighted_in_the_browser(offline_browser, mirror_reports, tmp_path):
    """A real alert that names sentences (a happy voice under sad words: both sentences) outlines their spans."""
    report = mirror_reports["negative_words_upbeat_tone"]
    (alert,) = report.alerts
    assert len(alert.sentences) >= 1
    path = tmp_path / "alert.html"
    path.write_text(render_html(report), encoding="utf-8")
    page, problems = _open(offline_browser, path)
    assert page.evaluate("document.getElementById('timeline-plot').layout.shapes.length") == len(alert.sentences)
    assert page.locator("#timeline .shapelayer path").count() == len(alert.sentences)
    assert page.locator(f"#alerts .alert.{alert.severity}").count() == 1 and problems == []
    page.close()
