"""A person's diaries over time in the service: dated uploads, the baseline that builds itself from them, the
hand-made baseline, the drift alert, the timeline and the export, and a user's removal leaving nothing behind.

Real recordings of one ko_emotional speaker through the real pipeline, transcripts given (no speech-to-text).
The tests of ``alice`` share one service (the module's fixture) and run in file order: the last one removes her.
"""

from __future__ import annotations

import csv
import json
import statistics
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_calls import auth, post, wait
from service_config import service_toml
from sqlalchemy import text
from typer.testing import CliRunner

from fusion.alerts import DRIFT_KIND
from fusion.audio import load_audio
from fusion.cli import app as cli_app
from fusion.config import load_config
from fusion.dates import utc
from fusion.history import entry
from fusion.report import DiaryReport, ValenceArousal
from fusion.service import baselines
from fusion.service.app import create_app
from fusion.service.baselines import forget_diary, refresh_auto, refresh_within
from fusion.service.schemas import BaselineInfo, ExportLine, Timeline
from fusion.service.store import PERSONAL_AUTO, Store, entry_json, hash_token
from fusion.voice.prosody import NeutralBaseline, Prosody, VoiceStats, build_baseline

SPEAKER = "nea"
# Upload order of the diaries, as recording days after the first: the 6th upload is not the latest recording.
DAYS = [2, 0, 5, 1, 4, 3]


def _clips(shared_data: Path) -> dict[str, tuple[Path, str]]:
    """``SPEAKER``'s clips: file name → (path, transcript)."""
    root = shared_data / "speech" / "ko_emotional"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        return {Path(r["path"]).stem: (root / r["path"], r["transcript"]) for r in csv.DictReader(fh)
                if r["speaker"] == SPEAKER}



def _done(client, token: str, analysis_id: str) -> dict:
    body = wait(client, token, analysis_id, timeout=120.0)
    assert body["status"] == "done", body["error"]
    return body


@pytest.fixture(scope="module")
def diaries(shared_data, tmp_path_factory, module_database_url):
    """alice's six dated diaries, uploaded out of date order and each awaited; bob has none.

    Yields a namespace: client, tokens, config (and its file), the first recording day, the uploads in upload
    order as (id, day, report) and the speaker's clips.
    """
    tmp_path = tmp_path_factory.mktemp("history")
    config_path = service_toml(tmp_path, database_url=f'"{module_database_url}"')
    config = load_config(config_path)
    clips = _clips(shared_data)
    names = ["nea00001", "nea00101", "nea00002", "nea00201", "nea00003", "nea00301"]
    first = (datetime.now(timezone.utc) - timedelta(days=20)).replace(hour=9, minute=0, second=0, microsecond=0)
    app = create_app(config)
    alice, bob = app.state.store.add_user("alice"), app.state.store.add_user("bob")
    uploads = []
    with TestClient(app) as client:
        for i, (name, day) in enumerate(zip(names, DAYS)):
            when = first + timedelta(days=day)
            # without a zone (UTC) and with Seoul's offset, alternately: the same instants either way
            stamp = when.replace(tzinfo=None).isoformat() if i % 2 else when.astimezone(
                timezone(timedelta(hours=9))).isoformat()
            path, words = clips[name]
            response = post(client, alice, path.read_bytes(), path.name, transcript=words, recorded_at=stamp)
            assert response.status_code == 202, response.text
            body = _done(client, alice, response.json()["id"])
            uploads.append((body["id"], day, DiaryReport.model_validate(body["report"])))
        yield type("Diaries", (), dict(client=client, alice=alice, bob=bob, config=config, config_path=config_path,
                                       first=first, uploads=uploads, clips=clips))


def test_each_report_carries_its_recording_time(diaries):
    for _, day, report in diaries.uploads:
        assert report.recorded_at == diaries.first + timedelta(days=day)


def test_the_sixth_diary_is_measured_against_a_baseline_built_from_the_first_five(diaries):
    *earlier, (_, _, sixth) = diaries.uploads
    assert all(report.voice.baseline in ("male", "female") for _, _, report in earlier)
    assert sixth.voice.baseline == "personal-auto" and sixth.voice.baseline_diaries == 5
    assert sixth.voice.baseline_since == diaries.first + timedelta(days=min(day for _, day, _ in earlier))
    assert sixth.voice.prosody.pitch_semitones is not None
    info = BaselineInfo.model_validate(diaries.client.get("/v1/baseline", headers=auth(diaries.alice)).json())
    assert (info.kind, info.name, info.diaries, info.since) == ("personal-auto", "personal-auto", 6, diaries.first)
    assert info.version == 2, "a version after the fifth diary, and one after the sixth"
    assert info.pitch_hz == pytest.approx(statistics.median(r.voice.prosody.pitch_hz for _, _, r in diaries.uploads))
    assert info.energy_db
    # Each diary's voice statistics are its report's prosody: no second MFCC pass over the upload.
    store = diaries.client.app.state.store
    rows = store.stats_of_recent(store.user_for_token(diaries.alice).id, 10)
    stats = {row.id: json.loads(row.voice_stats) for row in rows}
    assert len(stats) == 6 and all(s["mfcc_mean"] is None for s in stats.values())
    assert all(stats[i]["pitch_hz"] == report.voice.prosody.pitch_hz for i, _, report in diaries.uploads)


def test_the_timeline_lists_the_callers_diaries_in_date_order(diaries):
    client, alice = diaries.client, diaries.alice
    response = client.get("/v1/timeline", headers=auth(alice))
    assert response.status_code == 200
    timeline = Timeline.model_validate(response.json())
    by_date = [analysis_id for analysis_id, _, _ in sorted(diaries.uploads, key=lambda u: u[1])]
    assert [e.id for e in timeline.entries] == by_date
    assert [e.recorded_at for e in timeline.entries] == [diaries.first + timedelta(days=d) for d in range(6)]
    assert sum(week.diaries for week in timeline.weeks) == 6 and timeline.trend is None
    reports = {analysis_id: report for analysis_id, _, report in diaries.uploads}
    assert [e.model_copy(update={"url": None}) for e in timeline.entries] == [
        entry(i, reports[i], reports[i].recorded_at) for i in by_date], "each job's compact row, as its report says"
    page = client.get(timeline.entries[0].url, headers=auth(alice))
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert timeline.entries[0].url.endswith(f"/v1/analyses/{by_date[0]}/report.html")


def test_pages_load_one_served_copy_of_plotly_and_stay_small(diaries):
    """The report and timeline pages fetch plotly.js from /static (no token needed: it holds no user data) instead
    of carrying its 4.8 MB each; every diary is a row of the timeline page, linking its report page."""
    from fusion.html_report import PLOTLY_URL, plotly_js_path

    client, alice = diaries.client, diaries.alice
    script = client.get(PLOTLY_URL)
    assert script.status_code == 200 and script.content == plotly_js_path().read_bytes()
    assert script.headers["content-type"].startswith("text/javascript")
    tag = f'<script src="{PLOTLY_URL}"'
    timeline_page = client.get("/v1/timeline.html", headers=auth(alice))
    report_page = client.get(f"/v1/analyses/{diaries.uploads[0][0]}/report.html", headers=auth(alice))
    for page in (timeline_page, report_page):
        assert page.status_code == 200 and page.text.count(tag) == 1
        assert len(page.content) <= 300_000, f"{page.request.url.path}: {len(page.content)} bytes"
    assert timeline_page.text.count('data-diary="') == 6
    assert all(f"/v1/analyses/{analysis_id}/report.html" in timeline_page.text for analysis_id, _, _ in diaries.uploads)
    assert client.get("/v1/timeline.html").status_code == 401
    bobs = client.get("/v1/timeline.html", headers=auth(diaries.bob))
    assert bobs.status_code == 200 and 'data-diary="' not in bobs.text
    print(f"page sizes: timeline {len(timeline_page.content)} bytes, report {len(report_page.content)} bytes, "
          f"plotly.js {len(script.content)} bytes served once")


def test_from_and_to_bound_the_timeline(diaries):
    first = diaries.first
    params = {"from": (first + timedelta(days=1)).isoformat(), "to": (first + timedelta(days=3)).isoformat()}
    timeline = Timeline.model_validate(diaries.client.get("/v1/timeline", params=params,
                                                          headers=auth(diaries.alice)).json())
    assert [e.recorded_at for e in timeline.entries] == [first + timedelta(days=d) for d in (1, 2, 3)]
    naive = {"from": (first + timedelta(days=4)).replace(tzinfo=None).isoformat()}
    assert len(diaries.client.get("/v1/timeline", params=naive, headers=auth(diaries.alice)).json()["entries"]) == 2
    backwards = {"from": params["to"], "to": params["from"]}
    assert diaries.client.get("/v1/timeline", params=backwards, headers=auth(diaries.alice)).status_code == 422


def test_the_export_streams_one_line_per_analysis(diaries):
    response = diaries.client.get("/v1/export", headers=auth(diaries.alice))
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    lines = [ExportLine.model_validate_json(line) for line in response.text.splitlines()]
    assert len(lines) == 6 and all(line.status == "done" for line in lines)
    assert [line.recorded_at for line in lines] == sorted(line.recorded_at for line in lines)
    reports = {analysis_id: report for analysis_id, _, report in diaries.uploads}
    for line in lines:
        assert line.report == reports[line.id] and line.filename == line.report.source


def test_another_user_sees_none_of_it(diaries):
    client, bob = diaries.client, diaries.bob
    assert client.get("/v1/timeline", headers=auth(bob)).json() == {"entries": [], "weeks": [], "trend": None}
    export = client.get("/v1/export", headers=auth(bob))
    assert export.status_code == 200 and export.text == ""
    assert BaselineInfo.model_validate(client.get("/v1/baseline", headers=auth(bob)).json()).kind == "reference"
    for analysis_id, _, _ in diaries.uploads:
        assert client.get(f"/v1/analyses/{analysis_id}", headers=auth(bob)).status_code == 404
        assert client.get(f"/v1/analyses/{analysis_id}/report.html", headers=auth(bob)).status_code == 404
    for path in ("/v1/timeline", "/v1/export", "/v1/baseline"):
        assert client.get(path).status_code == 401


def test_a_hand_made_baseline_comes_first_until_it_is_deleted(diaries):
    client, alice, clips = diaries.client, diaries.alice, diaries.clips
    calm = [("files", (f"{name}.flac", clips[name][0].read_bytes(), "audio/flac")) for name in ("nea00004", "nea00005")]
    made = client.post("/v1/baseline", files=calm, headers=auth(alice))
    assert made.status_code == 201, made.text
    info = BaselineInfo.model_validate(made.json())
    assert (info.kind, info.name, info.version, info.clips, info.diaries) == ("personal", "personal", 3, 2, None)
    assert info.created is not None
    expected = build_baseline([load_audio(clips[n][0]).samples for n in ("nea00004", "nea00005")],
                              cfg=diaries.config.audio)
    assert (info.pitch_hz, info.energy_db) == (round(expected.pitch_hz, 3), round(expected.energy_db, 3))
    assert BaselineInfo.model_validate(client.get("/v1/baseline", headers=auth(alice)).json()) == info
    assert client.delete("/v1/baseline", headers=auth(alice)).status_code == 204
    back = BaselineInfo.model_validate(client.get("/v1/baseline", headers=auth(alice)).json())
    assert (back.kind, back.version, back.diaries) == ("personal-auto", 2, 6)
    incoming = diaries.config.server.storage_path() / "incoming"
    assert not any(incoming.iterdir()), "the calm recordings are not kept"


def test_a_baseline_needs_two_real_recordings(diaries):
    client, alice, clips = diaries.client, diaries.alice, diaries.clips
    one = [("files", ("a.flac", clips["nea00004"][0].read_bytes()))]
    assert client.post("/v1/baseline", files=one, headers=auth(alice)).status_code == 422
    not_audio = [*one, ("files", ("b.flac", "일기는 글로".encode()))]
    refused = client.post("/v1/baseline", files=not_audio, headers=auth(alice))
    assert refused.status_code == 415 and refused.json()["detail"].startswith("b.flac: not an audio recording")
    many = one * (diaries.config.server.max_baseline_files + 1)
    assert client.post("/v1/baseline", files=many, headers=auth(alice)).status_code == 422
    twice = client.post("/v1/baseline", files=one * 2, headers=auth(alice))
    assert twice.status_code == 422 and "sound exactly alike" in twice.json()["detail"][0]["msg"]
    assert not any((diaries.config.server.storage_path() / "incoming").iterdir()), "no upload left behind"
    assert BaselineInfo.model_validate(client.get("/v1/baseline", headers=auth(alice)).json()).kind == "personal-auto"


def test_remove_user_leaves_nothing_of_them_on_disk_or_in_the_database(diaries):
    client, alice = diaries.client, diaries.alice
    calm = [("files", (f"{n}.flac", diaries.clips[n][0].read_bytes())) for n in ("nea00004", "nea00005")]
    assert client.post("/v1/baseline", files=calm, headers=auth(alice)).status_code == 201
    root = diaries.config.server.storage_path()
    store = Store(diaries.config.server.database())
    alice_id = store.user_for_token(alice).id
    assert [(b.version, b.kind) for b in store.baselines(alice_id)] == [
        (1, "personal-auto"), (2, "personal-auto"), (4, "personal")], \
        "version 3 was deleted, and its number is not given again"
    assert not any((root / "uploads").iterdir()), "each recording went once analysed; the baselines stayed"

    result = CliRunner().invoke(cli_app, ["serve", "remove-user", "alice", "--config", str(diaries.config_path)])
    assert result.exit_code == 0, result.output
    assert "removed with 6 analyses (6 reports) and 0 stored recordings; 3 baseline versions" in \
        " ".join(result.output.split())

    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                  and not p.name.startswith("fusion.db") and p.parent.name != "workers") == [], \
        "only the database and the running service's mark (workers/) are left"
    with store.session() as s:
        users = s.execute(text("SELECT name, token_hash FROM users")).all()
        assert [name for name, _ in users] == ["bob"] and hash_token(alice) not in {h for _, h in users}
        for table in ("analyses", "baselines"):
            assert s.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    store.close()
    assert client.get("/v1/timeline", headers=auth(alice)).status_code == 401


def test_recorded_at_is_refused_when_unreadable_before_1970_or_in_the_future(tmp_path, shared_data):
    path, words = _clips(shared_data)["nea00001"]
    app = create_app(load_config(service_toml(tmp_path)))
    token = app.state.store.add_user("carol")
    with TestClient(app) as client:
        for stamp, problem in (("yesterday", "is not an ISO 8601 time"), ("2026-13-01", "is not an ISO 8601 time"),
                               ((datetime.now(timezone.utc) + timedelta(days=2)).isoformat(), "in the future"),
                               ("0001-01-01", "0001-01-01 is before 1970"),
                               ("0001-01-01T00:00:00+14:00", "0001-01-01 is before 1970"),
                               ("9999-12-31T23:59:59-14:00", "9999-12-31 23:59 is more than a day in the future")):
            refused = post(client, token, path.read_bytes(), path.name, transcript=words, recorded_at=stamp)
            detail = refused.json()["detail"][0]["msg"]
            assert refused.status_code == 422 and detail.startswith("recorded_at") and problem in detail, stamp
        assert not any((tmp_path / "store" / "uploads").iterdir())
        before = datetime.now(timezone.utc)
        body = _done(client, token, post(client, token, path.read_bytes(), path.name, transcript=words).json()["id"])
        assert before - timedelta(seconds=1) <= DiaryReport.model_validate(body["report"]).recorded_at <= \
            datetime.now(timezone.utc), "no recorded_at: the upload's time"
        edges = {"from": "0001-01-01T00:00:00+14:00", "to": "9999-12-31T23:59:59-14:00"}
        assert len(client.get("/v1/timeline", params=edges, headers=auth(token)).json()["entries"]) == 1
        assert client.get("/v1/timeline.html", params=edges, headers=auth(token)).status_code == 200


def test_a_baseline_request_is_bounded_like_one_upload(tmp_path, shared_data):
    """All calm recordings together may be as large as one diary upload: the gate refuses a body declared larger
    before reading it, and the route refuses recordings that add up to more."""
    clips = _clips(shared_data)
    sizes = [clips[n][0].stat().st_size for n in ("nea00001", "nea00002", "nea00003")]
    limit = sum(sizes[:2]) + 1000  # two fit, three do not; the body of three stays under the gate's bound
    app = create_app(load_config(service_toml(tmp_path, max_upload_bytes=str(limit))))
    token = app.state.store.add_user("carol")
    with TestClient(app) as client:
        pulled = []

        def body():
            for _ in range(200):
                pulled.append(1)
                yield bytes(65536)

        gate = client.post("/v1/baseline", content=body(),
                           headers={**auth(token), "Content-Type": "multipart/form-data; boundary=b",
                                    "Content-Length": str(200 * 65536)})
        assert gate.status_code == 413 and gate.json()["detail"].startswith("upload too large")
        assert len(pulled) <= 1, f"{len(pulled) * 64} KB read before the size was checked"
        three = [("files", (f"{n}.flac", clips[n][0].read_bytes())) for n in ("nea00001", "nea00002", "nea00003")]
        refused = client.post("/v1/baseline", files=three, headers=auth(token))
        assert refused.status_code == 413
        assert refused.json()["detail"] == ("nea00003.flac: baseline recordings too large: together the limit is "
                                        f"{limit / 1e6:.1f} MB"), "the one past the limit named"
        assert client.post("/v1/baseline", files=three[:2], headers=auth(token)).status_code == 201
    store = tmp_path / "store"
    assert not any((store / "incoming").iterdir()) and not any((store / "uploads").iterdir())


def _lower(report: DiaryReport, when: datetime, semitones: float, db: float, valence: float) -> DiaryReport:
    """``report`` recorded at ``when`` with a voice ``semitones`` higher, ``db`` louder and ``valence`` more pleasant
    (negative: lower) than it was."""
    p = report.voice.prosody
    voice = report.voice.model_copy(update={"prosody": p.model_copy(update={
        "pitch_hz": round(p.pitch_hz * 2 ** (semitones / 12), 3), "energy_db": round(p.energy_db + db, 3)})})
    va = ValenceArousal(valence=max(-1.0, min(1.0, report.voice_va.valence + valence)),
                        arousal=report.voice_va.arousal)
    return report.model_copy(update={"voice": voice, "voice_va": va, "recorded_at": when})


def test_a_history_that_drifts_lower_raises_the_alert_in_the_new_report(tmp_path, shared_data):
    """The alert needs [history] min_usual earlier diaries and min_recent recent ones, over weeks, whose voices clearly
    differ: too many real recordings to analyse here, and one speaker's clips differ too little, so the earlier ones
    are written into the store: copies of one real report with a higher, louder, more pleasant voice (weeks ago) and
    as it is (days ago). The new diary runs through the real pipeline and the job's wiring."""
    path, words = _clips(shared_data)["nea00201"]
    clip, config = (path.read_bytes(), path.name), load_config(service_toml(tmp_path))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    app = create_app(config)
    store: Store = app.state.store
    token = store.add_user("dana")
    user_id = store.user_for_token(token).id
    with TestClient(app) as client:
        recent = post(client, token, *clip, transcript=words, recorded_at=(now - timedelta(days=4)).isoformat())
        template = DiaryReport.model_validate(_done(client, token, recent.json()["id"])["report"])
        assert template.trend_alerts == []
        history = [(now - timedelta(days=30 - 2 * i), 4.0 + 0.2 * (i % 3), 6.0 - 0.3 * (i % 2), 0.5)
                   for i in range(6)] + [(now - timedelta(days=2), 0.0, 0.0, 0.0)]
        for when, semitones, db, valence in history:
            row = store.create(user_id, "earlier.flac", None, None, words, when)
            claim = store.claim(row.id)
            report = _lower(template, when, semitones, db, valence)
            assert store.finish(row.id, claim, report_json=report.to_json(None),
                                entry_json=entry_json(row.id, report, when))
        new = post(client, token, *clip, transcript=words, recorded_at=now.isoformat())
        report = DiaryReport.model_validate(_done(client, token, new.json()["id"])["report"])
        assert len(report.trend_alerts) == 1
        alert = report.trend_alerts[0]
        assert alert.kind == DRIFT_KIND and (alert.recent_diaries, alert.usual_diaries) == (3, 6)
        assert alert.signals["pitch_semitones"].z < 0 and alert.signals["energy_db"].z < 0
        assert utc(alert.since) == now - timedelta(days=config.history.window_days)
        timeline = Timeline.model_validate(client.get("/v1/timeline", headers=auth(token)).json())
        assert timeline.trend is not None and DRIFT_KIND in timeline.entries[-1].alerts
        assert DRIFT_KIND not in timeline.entries[0].alerts
        # an export is what the app backend keeps: the stored report holds the alert
        lines = [json.loads(line) for line in client.get("/v1/export", headers=auth(token)).text.splitlines()]
        assert lines[-1]["id"] == new.json()["id"] and lines[-1]["report"]["trend_alerts"][0]["kind"] == DRIFT_KIND


def test_a_baseline_request_is_as_long_as_one_upload_and_its_decoding_is_bounded(tmp_path, shared_data):
    """Its recordings together declare at most ``max_duration_s`` (413 naming the one past it); while one of a user's
    baselines is being built another of theirs is refused (429), and past ``max_baseline_builds`` anyone's is told
    to come back (503, Retry-After). Before: every request decoded at once, however many and however long."""
    paths = [_clips(shared_data)[n][0] for n in ("nea00001", "nea00002")]
    calm = [("files", (p.name, p.read_bytes())) for p in paths]
    seconds = sum(load_audio(p).duration for p in paths)
    for folder in ("short", "default"):
        (tmp_path / folder).mkdir()
    short = create_app(load_config(service_toml(tmp_path / "short", max_duration_s=str(round(seconds - 0.5, 2)))))
    token = short.state.store.add_user("carol")
    with TestClient(short) as client:
        refused = client.post("/v1/baseline", files=calm, headers=auth(token))
        assert refused.status_code == 413
        assert refused.json()["detail"].startswith(f"{paths[1].name}: recording too long")
    app = create_app(load_config(service_toml(tmp_path / "default")))
    carol, dave = app.state.store.add_user("carol"), app.state.store.add_user("dave")
    with TestClient(app) as client:
        with app.state.baseline_builds.hold(app.state.store.user_for_token(carol).id):
            mine = client.post("/v1/baseline", files=calm, headers=auth(carol))
            assert mine.status_code == 429 and "being built already" in mine.json()["detail"]
            other = client.post("/v1/baseline", files=calm, headers=auth(dave))
            assert other.status_code == 503 and other.headers["Retry-After"] == "60"
        assert client.post("/v1/baseline", files=calm, headers=auth(dave)).status_code == 201
        assert client.post("/v1/baseline", files=calm, headers=auth(carol)).status_code == 201, "the slot was freed"
    assert not any((tmp_path / "default" / "store" / "incoming").iterdir()), "no upload left behind"


def test_the_automatic_baseline_follows_the_set_of_diaries(tmp_path):
    """Store level, with made-up voice stats: a version only when the most recent diaries change, at most
    max_diaries of them by recording time, and a deleted diary takes the versions built from it along."""
    config = load_config(service_toml(tmp_path)).with_updates(history={"min_diaries": 3, "max_diaries": 4})
    (tmp_path / "store").mkdir()
    store = Store(config.server.database())
    try:
        user_id = store.user_for_token(store.add_user("erin")).id
        rng = np.random.default_rng(0)
        first = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
        ids = []
        for day in (3, 0, 5, 1, 4):  # recorded out of order
            row = store.create(user_id, "d.flac", None, None, None, first + timedelta(days=day))
            stats = VoiceStats(rng.normal(size=13).astype(np.float32), Prosody(200.0 + day, -20.0, 4.0))
            assert store.finish(row.id, store.claim(row.id), report_json="{}",
                                voice_stats=json.dumps(stats.to_dict()))
            ids.append((day, row.id))
            made = refresh_auto(store, user_id, config)
            assert (made is None) == (len(ids) < 3)
        assert refresh_auto(store, user_id, config).version == 3, "versions after the 3rd, 4th and 5th diary only"
        latest = store.latest_baseline(user_id, PERSONAL_AUTO)
        by_day = dict(ids)
        assert json.loads(latest.sources) == sorted(by_day[d] for d in (1, 3, 4, 5)), "the 4 most recently recorded"
        assert latest.recordings == 4 and utc(latest.since) == first + timedelta(days=1)
        assert NeutralBaseline.from_json(latest.baseline_json).pitch_hz == pytest.approx(203.5)

        store.delete(by_day[5], then=partial(forget_diary, store=store, user_id=user_id, analysis_id=by_day[5],
                                             config=config))
        left = store.baselines(user_id, PERSONAL_AUTO)
        assert all(by_day[5] not in json.loads(b.sources) for b in left)
        assert left[-1].version == 4 and json.loads(left[-1].sources) == sorted(by_day[d] for d in (0, 1, 3, 4))
    finally:
        store.close()


@pytest.fixture
def small_store(tmp_path, database_url):
    """(store, config with an automatic baseline from 2 diaries, a user's id, one diary's voice stats as stored)."""
    config = load_config(service_toml(tmp_path, database_url=f'"{database_url}"')).with_updates(
        history={"min_diaries": 2, "max_diaries": 4})
    (tmp_path / "store").mkdir()
    store = Store(config.server.database())
    try:
        user_id = store.user_for_token(store.add_user("gil")).id
        stats = json.dumps(VoiceStats(np.zeros(13, np.float32), Prosody(180.0, -20.0, 4.0)).to_dict())
        yield store, config, user_id, stats
    finally:
        store.close()


def test_a_diary_reads_done_only_together_with_the_baseline_it_changed(small_store, monkeypatch, caplog):
    """The refresh runs in the transaction that marks the job done: another connection sees both or neither (a
    client that reads ``/v1/baseline`` the moment its job is done never sees the previous version). A refresh that
    fails is undone alone: the diary is done all the same. (The failure is injected: no real input makes the median
    of stored voice stats raise.)"""
    store, config, user_id, stats = small_store

    def finish(row, then):
        return store.finish(row.id, store.claim(row.id), report_json="{}", voice_stats=stats, then=then)

    def seen_outside(row) -> tuple[str, int]:
        with store.session() as other:
            return (other.get(type(row), row.id).status,
                    len(store.baselines(user_id, PERSONAL_AUTO, within=other)))

    first, second = (store.create(user_id, "d.flac", None, None, None) for _ in range(2))
    assert finish(first, None)
    inside = []

    def refresh(s):
        refresh_within(s, store, user_id, config)
        inside.append(seen_outside(second))
    assert finish(second, refresh)
    assert inside == [("running", 0)], "outside the transaction: neither the result nor the baseline yet"
    assert seen_outside(second) == ("done", 1)

    third = store.create(user_id, "d.flac", None, None, None)
    monkeypatch.setattr(baselines, "auto_baseline", lambda *a, **k: 1 / 0)
    assert finish(third, partial(refresh_within, store=store, user_id=user_id, config=config))
    assert seen_outside(third) == ("done", 1), "the diary stays done; the failed refresh alone is undone"
    assert "the personal-auto baseline could not be refreshed" in caplog.text


def test_two_diaries_of_one_user_finishing_at_once_both_reach_the_baseline(small_store):
    """The second job's refresh waits for the first one's transaction (the user's lock, taken before any diary is
    read) and builds on both diaries: the latest version never misses one of them."""
    import threading

    store, config, user_id, stats = small_store
    first, a, b = (store.create(user_id, "d.flac", None, None, None) for _ in range(3))
    assert store.finish(first.id, store.claim(first.id), report_json="{}", voice_stats=stats)
    claims = {row.id: store.claim(row.id) for row in (a, b)}
    refreshed, go_on = threading.Event(), threading.Event()

    def slow_refresh(s):  # a's transaction stays open, its refresh done, while b starts
        refresh_within(s, store, user_id, config)
        refreshed.set()
        go_on.wait(10)

    def finish(row, then):
        assert store.finish(row.id, claims[row.id], report_json="{}", voice_stats=stats, then=then)

    first_job = threading.Thread(target=finish, args=(a, slow_refresh))
    first_job.start()
    assert refreshed.wait(10)
    second_job = threading.Thread(target=finish, args=(b, partial(refresh_within, store=store, user_id=user_id,
                                                                   config=config)))
    second_job.start()
    second_job.join(0.5)  # b now waits for the user's lock
    go_on.set()
    first_job.join(10)
    second_job.join(10)
    latest = store.latest_baseline(user_id, PERSONAL_AUTO)
    assert json.loads(latest.sources) == sorted([first.id, a.id, b.id])


def test_a_history_that_cannot_be_read_leaves_the_new_report_without_a_drift_alert(tmp_path, shared_data, caplog):
    path, words = _clips(shared_data)["nea00001"]
    app = create_app(load_config(service_toml(tmp_path)))
    store: Store = app.state.store
    token = store.add_user("fay")
    row = store.create(store.user_for_token(token).id, "old.flac", None, None, None)
    assert store.finish(row.id, store.claim(row.id), report_json='{"not": "a report"}')
    with TestClient(app) as client:
        body = _done(client, token, post(client, token, path.read_bytes(), path.name, transcript=words).json()["id"])
    assert DiaryReport.model_validate(body["report"]).trend_alerts == []
    assert "the drift alert could not be computed" in caplog.text
