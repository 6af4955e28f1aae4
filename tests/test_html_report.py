"""The self-contained HTML report, in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from rich.console import Console
from typer.testing import CliRunner

from fusion.cli import app
from fusion.combine import ALERT_RULES, AlertRule, Observation, mismatch_alerts
from fusion.html_report import render_html
from fusion.pipeline import analyze
from fusion.render import render
from fusion.report import Alert, DiaryReport

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "diary_ko.flac"
DOCS_PICTURE = ROOT / "docs" / "report.png"
CHROMIUM = os.environ.get("FUSION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def sample_report() -> DiaryReport:
    """The sample diary, heard by the real speech-to-text and models."""
    return analyze(SAMPLE)


def _with_alert(report: DiaryReport, sentences: list[int], kind: str = "positive_words_depressed_tone") -> DiaryReport:
    alert = Alert(kind=kind, severity="high", score=2.5, diary_level=False, sentences=sentences, evidence=[])
    return report.model_copy(update={"alerts": [alert]})


def _terminal(report: DiaryReport) -> str:
    console = Console(record=True, width=200)
    render(report, console)
    return console.export_text()


def test_page_is_one_self_contained_file(sample_report):
    page = render_html(sample_report)
    assert page.startswith("<!DOCTYPE html>") and page.count(get_plotlyjs()) == 1, "plotly.js inline, once"
    ours = page.replace(get_plotlyjs(), "")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|url\(|(src|href)=[\"']?https?:", ours)


def test_alerts_come_first_in_plain_words(sample_report):
    page = render_html(_with_alert(sample_report, [1]))
    words = ALERT_RULES["positive_words_depressed_tone"].words
    assert words in page and page.index(words) < page.index('id="timeline"') < page.index('id="transcript"')
    assert page.count('class="flagged"') == 1
    assert "Words and voice agree" in render_html(sample_report.model_copy(update={"alerts": []}))


@pytest.mark.parametrize("kind", list(ALERT_RULES))
def test_every_alert_kind_is_told_in_words(sample_report, kind):
    report = _with_alert(sample_report, [0], kind)
    assert ALERT_RULES[kind].words in render_html(report) and ALERT_RULES[kind].words in _terminal(report)


def test_a_new_alert_kind_needs_only_its_rule_and_severity_steps(sample_report, config, monkeypatch):
    """One AlertRule and its [alerts.severity] steps: the config loads, the rule fires, the report
    validates and both renderings tell it."""
    kind, words = "loud_words_whispered_tone", "The words shout, but the voice whispers."
    monkeypatch.setitem(ALERT_RULES, kind, AlertRule(kind, words, lambda obs, cfg: 0.5, ()))
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
    report = sample_report.model_copy(update={"sentences": [evil, *sample_report.sentences[1:]], "source": "<i>a</i>.wav"})
    page = render_html(report)
    assert "<script>alert(1)" not in page and "<b>x</b>" not in page and "<i>a</i>" not in page


def test_cli_writes_the_page(tmp_path):
    transcript = tmp_path / "t.txt"
    transcript.write_text("오늘 정말 즐거웠어. 친구를 만났거든.", encoding="utf-8")
    out = tmp_path / "diary.html"
    result = CliRunner().invoke(app, ["analyze", str(SAMPLE), "--transcript", str(transcript), "--html", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count('data-sentence="') == 2


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # Outside CI a developer machine may lack the browser; CI (.ci/run installs it) must never skip.
    if os.environ.get("CI") != "true":
        pytest.importorskip("playwright.sync_api")
        if not Path(CHROMIUM).exists():
            pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FUSION_CHROMIUM)")
    import playwright.sync_api as playwright
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 900}, offline=True)
        yield context
        context.close()


def _open(browser, path: Path):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.goto(path.as_uri())
    page.wait_for_selector("#timeline .trace.bars .point")
    return page, problems


def _points(page, trace: int) -> int:
    return page.evaluate(f"document.querySelectorAll('#timeline .trace.bars')[{trace}].querySelectorAll('.point').length")


def test_sample_report_in_a_real_browser(browser, sample_report, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_html(sample_report), encoding="utf-8")
    page, problems = _open(browser, path)
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


def test_mismatching_spans_are_highlighted_in_the_browser(browser, sample_report, tmp_path):
    path = tmp_path / "alert.html"
    path.write_text(render_html(_with_alert(sample_report, [0, 2])), encoding="utf-8")
    page, problems = _open(browser, path)
    assert page.evaluate("document.getElementById('timeline-plot').layout.shapes.length") == 2
    assert page.locator("#timeline .shapelayer path").count() == 2
    assert page.locator("#alerts .alert.high").count() == 1 and problems == []
    page.close()
