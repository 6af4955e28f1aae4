"""A person's diaries over time from files: a dated results file of real reports, ``fusion history`` and its page
in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import pytest
from browser import watched_page
from plotly.offline import get_plotlyjs
from rich.console import Console
from text_samples import PLAIN_WORDS
from typer.testing import CliRunner

from fusion.alerts import DRIFT_KIND, DRIFT_WORDS
from fusion.batch import read_results
from fusion.batch.results import timeline_entries
from fusion.cli import app
from fusion.config import default_config
from fusion.files import DANGLING
from fusion.history import describe_trend, timeline, trend_alert, weekly
from fusion.history_html import render_timeline
from fusion.html_report import PLOTLY_URL, plotly_js_path, render_html
from fusion.render import render
from fusion.report import DiaryReport

ROOT = Path(__file__).resolve().parents[1]
CFG = default_config().history
runner = CliRunner()

# Three weeks of one person's evenings (ko_emotional test speaker ned, female, never trained on): her neutral and
# happy readings, then three sad ones in the last week. Times are Korean evenings; the file names are the batch's.
DIARIES = [("ned00001", "2026-10-26T21:10:00+09:00"), ("ned00101", "2026-10-28T22:05:00+09:00"),
           ("ned00002", "2026-10-30T21:40:00+09:00"), ("ned00003", "2026-11-02T20:55:00+09:00"),
           ("ned00102", "2026-11-04T21:20:00+09:00"), ("ned00004", "2026-11-06T22:30:00+09:00"),
           ("ned00005", "2026-11-08T21:00:00+09:00"), ("ned00201", "2026-11-11T21:15:00+09:00"),
           ("ned00202", "2026-11-13T22:10:00+09:00"), ("ned00203", "2026-11-15T21:45:00+09:00")]


@pytest.fixture(scope="module")
def diaries(shared_data, tmp_path_factory) -> Path:
    """The ten recordings analysed by the real models with their dates and plain words given (the drift alert reads
    the voice; speech-to-text has the batch's own tests), as the lines of a dated ``fusion batch`` results file, in
    the batch's order (by file name)."""
    from fusion import analyze

    lines = []
    for name, when in sorted(DIARIES):
        path = shared_data / "speech" / "ko_emotional" / "ned" / f"{name}.flac"
        report = analyze(path, transcript=PLAIN_WORDS, recorded_at=datetime.fromisoformat(when))
        record = {"file": str(path), "key": name, "status": "ok", "report": report.model_dump(mode="json")}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    out = tmp_path_factory.mktemp("diaries") / "results.jsonl"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _entries(results: Path):
    entries, errors, undated = timeline_entries(read_results(results))
    return timeline(entries, CFG)


def test_the_dated_diaries_give_a_real_drift_alert_in_the_last_week(diaries):
    """The sad week against her usual: the voice's valence and pitch sit well below her own medians."""
    entries = _entries(diaries)
    assert [Path(e.id).stem for e in entries] == [n for n, _ in DIARIES]
    trend = trend_alert(entries, CFG)
    assert trend is not None and (trend.recent_diaries, trend.usual_diaries) == (3, 7)
    assert trend.signals["voice_valence"].z < -2 and trend.signals["pitch_semitones"].recent < -1.5
    assert [Path(e.id).stem for e in entries if DRIFT_KIND in e.alerts] == ["ned00203"], "not before the third"
    lines = describe_trend(trend)
    assert lines[0] == DRIFT_WORDS and f"{trend.signals['voice_valence'].recent:+.2f}" in lines[2]


def test_history_writes_the_page_and_one_csv_row_per_diary_in_date_order(diaries, tmp_path):
    results = tmp_path / "results.jsonl"
    records = read_results(diaries)
    failed = {"file": "/gone/broken.wav", "key": "k", "status": "error",
              "error": {"kind": "bad_input", "message": "/gone/broken.wav: not a readable audio file"}}
    shuffled = records[1::2] + [failed] + records[::2]
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in shuffled), encoding="utf-8")
    page, table = tmp_path / "trend.html", tmp_path / "trend.csv"
    result = runner.invoke(app, ["history", str(results), "--html", str(page), "--csv", str(table)])
    assert result.exit_code == 0, result.output
    assert "10 diaries in 3 weeks; drift alert: yes" in result.output and "1 error record(s) skipped" in result.output
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [Path(r["id"]).stem for r in rows] == [n for n, _ in DIARIES], "one row per ok record, in date order"
    assert [datetime.fromisoformat(r["recorded_at"]) for r in rows] == [datetime.fromisoformat(w) for _, w in DIARIES]
    by_file = {r["file"]: r["report"] for r in records}
    for row in rows:
        report = by_file[row["id"]]
        assert float(row["duration_s"]) == report["duration_s"] and row["voice_top"] == report["voice"]["top"]
        assert float(row["voice_valence"]) == report["voice_va"]["valence"]
        drift = [DRIFT_KIND] if Path(row["id"]).stem == "ned00203" else []
        assert row["alert_kinds"] == ";".join([a["kind"] for a in report["alerts"]] + drift)
    html = page.read_text(encoding="utf-8")
    assert html.count(get_plotlyjs()) == 1, "the file opens offline"
    order = [html.index(part) for part in (escape(DRIFT_WORDS), 'id="chart"', 'id="weeks"', 'id="diaries"')]
    assert order == sorted(order), "the drift alert first, then the chart, the weeks and the diaries"
    assert html.count('<tr class="') == len(DIARIES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "trend.csv", "trend.html"]


def test_history_csv_to_standard_output(diaries, tmp_path, monkeypatch):
    """``--csv -`` writes the rows to standard output (before: a file named "-" in the working folder)."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["history", str(diaries), "--csv", "-"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(DIARIES) and list(tmp_path.iterdir()) == []


def test_history_without_options_prints_the_weeks(diaries):
    result = runner.invoke(app, ["history", str(diaries)])
    assert result.exit_code == 0, result.output
    assert DRIFT_WORDS in " ".join(result.output.split())
    for week in ("2026-W44", "2026-W45", "2026-W46"):
        assert week in result.output


def test_an_old_schema_1_0_report_still_reads_and_is_dated_by_its_file(diaries, tmp_path):
    """A results line written before reports were dated (schema 1.0, main's format: no recorded_at, no baseline
    origin, no trend alerts) validates; ``fusion history`` dates it by its file's time, or leaves it out with a
    warning when the file is gone."""
    (first, second, *_) = read_results(diaries)
    old = {k: v for k, v in first["report"].items() if k not in ("recorded_at", "trend_alerts")}
    old["voice"] = {k: v for k, v in old["voice"].items() if k not in ("baseline_diaries", "baseline_since")}
    old["schema_version"] = "1.0"
    report = DiaryReport.model_validate(old)
    assert report.schema_version == "1.0" and report.recorded_at is None and report.trend_alerts == []
    kept = tmp_path / "old.flac"
    kept.write_bytes(b"the recording")
    os.utime(kept, (1_760_000_000, 1_760_000_000))
    results = tmp_path / "old.jsonl"
    results.write_text(json.dumps({**first, "file": str(kept), "report": {**old, "source": str(kept)}}) + "\n"
                       + json.dumps({**second, "file": "/gone/old.flac", "report": old}) + "\n", encoding="utf-8")
    table = tmp_path / "old.csv"
    result = runner.invoke(app, ["history", str(results), "--csv", str(table)])
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(table.open(encoding="utf-8"))
    assert row["id"] == str(kept)
    assert datetime.fromisoformat(row["recorded_at"]) == datetime.fromtimestamp(1_760_000_000, timezone.utc)
    output = " ".join(result.output.split())
    assert "warning: 1 report(s) without recorded_at whose file is gone: left out" in output
    assert "1 diaries in 1 weeks; drift alert: no" in output


def test_history_refuses_bad_paths_and_a_missing_plotly_in_one_line(diaries, tmp_path):
    for args, problem in (
        (["--html", str(tmp_path / "no" / "trend.html")], "the folder"),
        (["--csv", str(tmp_path)], "is a directory"),
    ):
        result = runner.invoke(app, ["history", str(diaries), *args])
        assert result.exit_code == 2 and problem in result.output and "error:" in result.output, result.output
    result = runner.invoke(app, ["history", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "none.jsonl: no such results file" in " ".join(result.output.split())
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    result = runner.invoke(app, ["history", str(tmp_path / "loop.jsonl")])
    assert result.exit_code == 2 and f"loop.jsonl: {DANGLING}" in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["history", str(diaries), "--csv", "-", "--html", "-"])
    assert result.exit_code == 2 and "another output of this command goes to standard output too" in result.output
    for lines, problem in (('{"file": "x", "sta\n{}\n', "not a fusion batch results file: line 1 is not JSON"),
                           ('{"file": "x", "key": "k", "status": "ok", "report": {"source": "x"}}\n',
                            "record 1 (x): not a DiaryReport (duration_s: Field required)"),
                           ("[1, 2]\n", "not a fusion batch results file: line 1 is not a result"),
                           ('{"a": 1}\n', "not a fusion batch results file: line 1 is not a result"),
                           ("\x00\x01 binary, no line end",
                            "not a fusion batch results file: it holds no complete line")):
        (tmp_path / "bad.jsonl").write_text(lines, encoding="utf-8")
        result = runner.invoke(app, ["history", str(tmp_path / "bad.jsonl")])
        assert result.exit_code == 2 and f"bad.jsonl: {problem}" in " ".join(result.output.split()), result.output
    code = "import sys; sys.modules['plotly'] = None; from fusion.cli import app; app()"
    run = [sys.executable, "-c", code, "history", str(diaries)]
    blocked = subprocess.run([*run, "--html", str(tmp_path / "t.html")], capture_output=True, text=True, cwd=ROOT)
    assert blocked.returncode == 2 and not (tmp_path / "t.html").exists()
    assert blocked.stderr.strip() == ("error: an HTML timeline needs plotly, which is not installed: "
                                      "pip install 'fusion[report]'")
    assert subprocess.run([*run, "--csv", str(tmp_path / "t.csv")], cwd=ROOT, capture_output=True).returncode == 0


@pytest.mark.parametrize(("lines", "problem"), [
    ('{"file": "x.flac", "key": "k", "status": "ok"}\n', "line 1 is not a result"),
    ('{"file": "x.flac", "key": "k", "status": "error", "error": {"kind": "bad_input", "message": "m"}}\n'
     + "[" * 100_000 + "]" * 100_000 + "\n", "line 2 is not JSON"),
], ids=["ok-without-report", "100000-deep"])
def test_history_of_lines_that_are_no_results_is_one_line(tmp_path, lines, problem):
    """An ok record without its report, JSON nested 100,000 deep: one line naming the file and the line
    (before: KeyError and RecursionError tracebacks)."""
    results = tmp_path / "r.jsonl"
    results.write_text(lines, encoding="utf-8")
    result = runner.invoke(app, ["history", str(results)])
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit, result.output
    assert f"r.jsonl: not a fusion batch results file: {problem}" in " ".join(result.output.split())


def test_pages_loading_plotly_from_a_url_are_small_and_the_file_is_the_installed_one(diaries):
    """The service's pages load plotly.js from PLOTLY_URL: the report page and the timeline then weigh tens of
    kilobytes, against megabytes with plotly.js inline."""
    assert plotly_js_path().read_text(encoding="utf-8") == get_plotlyjs()
    entries = _entries(diaries)
    report = DiaryReport.model_validate(read_results(diaries)[-1]["report"])
    weeks, trend = weekly(entries), trend_alert(entries, CFG)
    sizes = {}
    for name, page in (("report", render_html(report, plotly_js=PLOTLY_URL)),
                       ("timeline", render_timeline(entries, weeks, trend, plotly_js=PLOTLY_URL))):
        sizes[name] = len(page.encode("utf-8"))
        assert f'<script src="{PLOTLY_URL}"' in page and get_plotlyjs()[:2000] not in page
        assert sizes[name] <= 300_000, (name, sizes[name])
    inline = render_timeline(entries, weeks, trend)
    assert inline.count(get_plotlyjs()) == 1 and "<script src=" not in inline
    assert len(inline.encode("utf-8")) > len(get_plotlyjs()) > 3_000_000
    print("page sizes (bytes):", sizes, "self-contained timeline:", len(inline.encode("utf-8")))


def test_a_report_that_carries_the_drift_alert_tells_it_in_the_same_words(diaries):
    """A report with a trend alert (the service's, as of that diary) tells it beside its own alerts, before its
    timeline, in the words and numbers of the timeline page."""
    trend = trend_alert(_entries(diaries), CFG)
    last = DiaryReport.model_validate(read_results(diaries)[-1]["report"])
    page = render_html(last.model_copy(update={"trend_alerts": [trend]}), plotly_js=PLOTLY_URL)
    box = page[page.index('<div class="alert drift'):]
    box = box[:box.index("</div>")]
    assert [escape(line) in box for line in describe_trend(trend)] == [True] * len(describe_trend(trend))
    assert page.index(escape(DRIFT_WORDS)) < page.index('id="timeline"')
    assert escape(DRIFT_WORDS) not in render_html(last, plotly_js=PLOTLY_URL)


def test_the_terminal_report_tells_the_drift_alert_and_the_baseline_behind_the_voice(diaries):
    trend = trend_alert(_entries(diaries), CFG)
    last = DiaryReport.model_validate(read_results(diaries)[-1]["report"])
    carried = last.model_copy(update={"trend_alerts": [trend]})
    carried = carried.model_copy(update={"voice": carried.voice.model_copy(update={
        "baseline": "personal-auto", "baseline_diaries": 7, "baseline_since": datetime(2026, 11, 2, tzinfo=timezone.utc)
    })})
    console = Console(record=True, width=200)
    render(carried, console)
    told = console.export_text()
    assert all(line in told for line in describe_trend(trend)[:2])
    assert "voice baseline: personal-auto, 7 diaries since 2026-11-02" in told
    console = Console(record=True, width=200)
    render(last, console)
    assert DRIFT_WORDS not in console.export_text()


def test_ids_and_links_cannot_inject_markup(diaries):
    entries = _entries(diaries)
    evil = [entries[0].model_copy(update={"id": "<script>alert(1)</script><b>x</b>.flac",
                                          "url": 'javascript:alert(1)"><b>y</b>'}),
            entries[1].model_copy(update={"url": "/v1/analyses/abc/report.html?a=1&b=<2>"}), *entries[2:]]
    page = render_timeline(evil, weekly(evil), None, title="<i>me</i>", plotly_js=PLOTLY_URL)
    assert "<script>alert(1)" not in page and "<b>x</b>" not in page and "<b>y</b>" not in page
    assert "javascript:" not in page and "<i>me</i>" not in page
    assert '<a href="/v1/analyses/abc/report.html?a=1&amp;b=&lt;2&gt;">' in page


def test_timeline_page_in_a_real_browser(offline_browser, diaries, tmp_path):
    """No console errors; one point per diary on the words line and on the voice line; the alert markers are
    exactly the diaries that carry an alert. FUSION_SCREENSHOTS=docs writes docs/timeline.png."""
    path = tmp_path / "trend.html"
    result = runner.invoke(app, ["history", str(diaries), "--html", str(path)])
    assert result.exit_code == 0, result.output
    entries = _entries(diaries)
    alerted = [e for e in entries if e.alerts]
    assert alerted, "the drift alert marks a diary"
    page, problems = watched_page(offline_browser)
    page.goto(path.as_uri())
    page.wait_for_selector("#trend .trace.scatter .point")
    points = page.evaluate("[...document.querySelectorAll('#trend .trace.scatter')]"
                           ".map(t => t.querySelectorAll('.point').length)")
    assert points == [len(entries), len(entries), len(alerted)]
    names = page.evaluate("document.getElementById('trend-plot').data.map(t => t.name)")
    assert names == ["words valence", "voice valence", "diary with an alert"]
    marked = page.evaluate("document.getElementById('trend-plot').data[2].x")
    assert [datetime.fromisoformat(x) for x in marked] == [e.recorded_at for e in alerted]
    assert page.locator("#drift .drift").count() == 1 and page.locator("#diaries tbody tr").count() == len(entries)
    assert page.locator("#diaries tbody tr.alerted").count() == len(alerted)
    assert problems == []
    shot = tmp_path / "timeline.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if folder := os.environ.get("FUSION_SCREENSHOTS"):
        (ROOT / folder).mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / folder / "timeline.png")
    page.close()
