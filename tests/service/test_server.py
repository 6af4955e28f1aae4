"""``fusion serve``: the HTTP API against the app in-process, and once as a real uvicorn process (which also serves
a timeline and an export)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import odd_audio
import pytest
from browser import watched_page
from fastapi.testclient import TestClient
from service_config import service_toml
from typer.testing import CliRunner

from fusion.audio import sniff_format
from fusion.cli import app as cli_app
from fusion.config import default_config, load_config
from fusion.report import DiaryReport
from fusion.service.app import create_app
from fusion.service.store import RUNNING, Store
from fusion.service.tables import Analysis

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "diary_ko.flac"
WORDS = "오늘 정말 즐거웠어. 친구를 만났거든."


def _config(tmp_path: Path, **server):
    """The service's config for a test; its recordings stay a day after their analysis (so a test can look at them),
    unless the test says otherwise."""
    return default_config().with_updates(server={"storage_dir": str(tmp_path / "store"), "max_duration_s": 60.0,
                                                 "keep_recordings_days": 1.0, **server})


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _post(client, token, content: bytes | None = None, name: str = "diary.flac", **form):
    data = SAMPLE.read_bytes() if content is None else content
    return client.post("/v1/analyses", files={"file": (name, data, "application/octet-stream")}, data=form,
                       headers=_auth(token))


def _wait(client, token, analysis_id: str, until=("done", "failed"), timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/analyses/{analysis_id}", headers=_auth(token)).json()
        if body["status"] in until:
            return body
        time.sleep(0.05)
    raise AssertionError(f"analysis {analysis_id} still {body['status']} after {timeout} s")


@pytest.fixture()
def service(tmp_path):
    """A running app with two users; yields (client, alice's token, bob's token, config)."""
    config = _config(tmp_path)
    app = create_app(config)
    alice, bob = app.state.store.add_user("alice"), app.state.store.add_user("bob")
    with TestClient(app) as client:
        yield client, alice, bob, config


@contextmanager
def _alice(config, **app_kwargs):
    """A running app with one user; yields (client, her token, the app)."""
    app = create_app(config, **app_kwargs)
    token = app.state.store.add_user("alice")
    with TestClient(app) as client:
        yield client, token, app


def _analysed(client, token, transcript: str = WORDS) -> str:
    """The id of a new analysis of the sample with ``transcript``, once it has finished."""
    analysis_id = _post(client, token, transcript=transcript).json()["id"]
    _wait(client, token, analysis_id)
    return analysis_id


def test_healthz_needs_no_token(service):
    client, *_ = service
    assert client.get("/healthz").json() == {"status": "ok"}


def test_docs_page_needs_no_network(service):
    client, *_ = service
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert '"validatorUrl": null' in page.text, "no validator badge calling validator.swagger.io"
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "/v1/analyses" in client.get("/openapi.json").json()["paths"]


def test_missing_or_unknown_token_is_401(service):
    client, *_ = service
    assert client.get("/v1/analyses/" + "0" * 32).status_code == 401
    response = _post(client, "not-a-token", transcript=WORDS)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_upload_is_queued_then_gives_the_report_and_its_page(service):
    client, alice, _, _ = service
    response = _post(client, alice, transcript=WORDS, gender="female")
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "queued" and response.headers["location"].endswith(created["id"])
    body = _wait(client, alice, created["id"])
    assert body["status"] == "done", body["error"]
    report = DiaryReport.model_validate(body["report"])
    assert report.transcript == WORDS and report.voice.baseline == "female" and report.source == "diary.flac"
    page = client.get(f"/v1/analyses/{created['id']}/report.html", headers=_auth(alice))
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert "즐거웠어" in page.text


def test_another_users_analysis_is_404(service):
    client, alice, bob, _ = service
    analysis_id = _analysed(client, alice)
    for method, suffix in (("GET", ""), ("GET", "/report.html"), ("DELETE", "")):
        assert client.request(method, f"/v1/analyses/{analysis_id}{suffix}", headers=_auth(bob)).status_code == 404
    assert client.get(f"/v1/analyses/{analysis_id}", headers=_auth(alice)).json()["status"] == "done"


@pytest.mark.parametrize("limit, chunked", [(100_000, False), (300_000, False), (100_000, True)],
                         ids=["declared-length", "file-over-limit", "chunked-body"])
def test_upload_over_the_size_limit_is_413(tmp_path, limit, chunked):
    with _alice(_config(tmp_path, max_upload_bytes=limit)) as (client, token, _):
        if chunked:
            body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.flac\"\r\n\r\n"
                    + SAMPLE.read_bytes())
            response = client.post("/v1/analyses",
                                   content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                                   headers={**_auth(token), "Content-Type": "multipart/form-data; boundary=b"})
        else:
            response = _post(client, token, transcript=WORDS)
    assert response.status_code == 413
    assert response.json()["detail"] == f"upload too large: the limit is {limit / 1e6:.1f} MB"
    store = tmp_path / "store"
    assert not any((store / "uploads").iterdir()) and not any((store / "incoming").iterdir())


def test_recording_over_the_duration_limit_is_413(tmp_path):
    with _alice(_config(tmp_path, max_duration_s=10.0)) as (client, token, _):
        response = _post(client, token, transcript=WORDS)
    assert response.status_code == 413
    assert response.json()["detail"] == "recording too long: 26 s, the limit is 10 s"


@pytest.mark.parametrize("name, content", [
    ("diary.wav", "오늘 일기는 글로 씁니다".encode()),
    ("diary.flac", b"\x89PNG\r\n\x1a\n" + bytes(200)),
    ("diary.mp3", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n"),
    ("diary.wav", b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunk"),
])
def test_content_that_is_not_audio_is_415_whatever_its_name(service, name, content):
    client, alice, _, config = service
    response = _post(client, alice, content, name=name, transcript=WORDS)
    assert response.status_code == 415, response.text
    assert "not" in response.json()["detail"]
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_an_id3_tag_cannot_hide_a_long_flac_from_the_duration_check(service, tmp_path):
    client, alice, _, config = service
    tagged = odd_audio.id3_flac(tmp_path / "tagged.flac", 7200).read_bytes()
    response = _post(client, alice, tagged, name="diary.mp3")
    assert response.status_code == 413
    assert response.json()["detail"] == "recording too long: 7200 s, the limit is 60 s"
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_a_recording_longer_than_its_header_says_stops_decoding_at_the_limit(service, tmp_path):
    client, alice, _, _ = service
    joined = odd_audio.joined_mp3(tmp_path / "joined.mp3", rest_s=120).read_bytes()  # declares about 8 s
    response = _post(client, alice, joined, name="diary.mp3", transcript=WORDS)
    assert response.status_code == 202, response.text
    body = _wait(client, alice, response.json()["id"])
    assert body["status"] == "failed"
    assert re.fullmatch(r"bad recording: recording too long: decoding passed 6\d s, the limit is 60 s", body["error"])


def test_a_stream_without_a_decoder_is_refused_at_upload(service, tmp_path):
    client, alice, _, config = service
    response = _post(client, alice, odd_audio.wav_with_unknown_codec(tmp_path / "odd.wav").read_bytes(), name="a.wav")
    assert response.status_code == 415 and "has no decoder" in response.json()["detail"]
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_sniffing_reads_the_bytes_not_the_name():
    assert sniff_format(SAMPLE.read_bytes()[:16]) == "flac"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "wav"
    assert sniff_format(b"\x00\x00\x00\x20ftypM4A ") == "mov"
    assert sniff_format(b"#EXTM3U\n") is None


def test_bad_form_fields_are_refused(service):
    client, alice, _, _ = service
    assert _post(client, alice, gender="robot").status_code == 422
    assert "language must be one of" in _post(client, alice, language="xx").json()["detail"][0]["msg"]
    assert _post(client, alice, b"", transcript=WORDS).status_code == 422
    assert _post(client, alice, transcript="가" * 20_001).status_code == 413


def test_file_name_never_reaches_the_storage_path(service):
    client, alice, _, config = service
    response = _post(client, alice, name="../../../etc/evil.flac", transcript=WORDS)
    analysis_id = response.json()["id"]
    assert [p.name for p in (config.server.storage_path() / "uploads").iterdir()] == [analysis_id]
    assert _wait(client, alice, analysis_id)["filename"] == "../../../etc/evil.flac"


def test_concurrent_uploads_queue_and_keep_their_own_results(service):
    client, alice, bob, _ = service
    diaries = [("오늘 정말 즐거웠어.", alice), ("너무 화가 나서 참을 수가 없었다.", bob),
               ("시험이 걱정돼서 잠이 안 와.", alice), ("친구가 떠나서 슬펐다.", bob)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(diaries)) as pool:
        responses = list(pool.map(lambda d: _post(client, d[1], transcript=d[0]), diaries))
    assert all(r.status_code == 202 for r in responses)
    assert time.monotonic() - t0 < 10, "uploads must not wait for each other's analyses"
    for (words, token), response in zip(diaries, responses):
        body = _wait(client, token, response.json()["id"])
        assert body["status"] == "done" and body["report"]["transcript"] == words


def test_delete_removes_recording_report_and_temporary_files(service):
    client, alice, _, config = service
    analysis_id = _analysed(client, alice)
    assert client.delete(f"/v1/analyses/{analysis_id}", headers=_auth(alice)).status_code == 204
    assert client.get(f"/v1/analyses/{analysis_id}", headers=_auth(alice)).status_code == 404
    root = config.server.storage_path()
    assert not any((root / "uploads").iterdir()) and not any((root / "incoming").iterdir())
    assert Store(config.server.database()).get(analysis_id) is None


def test_a_job_interrupted_by_a_restart_runs_again(tmp_path, database_url):
    config, release = _config(tmp_path, database_url=database_url), threading.Event()

    def stuck(*args, **kwargs):
        release.wait(30)
        raise RuntimeError("the old server's worker must not overwrite the new result")

    first = create_app(config, analyze=stuck)
    token = first.state.store.add_user("alice")
    with TestClient(first) as client:
        analysis_id = _post(client, token, transcript=WORDS).json()["id"]
        assert _wait(client, token, analysis_id, until=("running",))["status"] == "running"
    try:
        with TestClient(create_app(config)) as client:
            body = _wait(client, token, analysis_id)
            assert body["status"] == "done" and body["report"]["transcript"] == WORDS
            release.set()
            time.sleep(0.3)
            assert client.get(f"/v1/analyses/{analysis_id}", headers=_auth(token)).json()["status"] == "done"
    finally:
        release.set()


def test_unrecoverable_jobs_are_failed_with_a_reason_on_startup(tmp_path, database_url):
    config = _config(tmp_path, database_url=database_url)
    (config.server.storage_path() / "uploads").mkdir(parents=True)
    store = Store(config.server.database())
    token = store.add_user("alice")
    user = store.user_for_token(token)
    lost = store.create(user.id, "lost.flac", None, None, WORDS)
    crashing = store.create(user.id, "crash.flac", None, None, WORDS)
    (config.server.storage_path() / "uploads" / crashing.id).write_bytes(SAMPLE.read_bytes())
    with store.session() as s, s.begin():
        s.get(Analysis, crashing.id).attempts = config.server.max_attempts
        s.get(Analysis, crashing.id).status = RUNNING
    with TestClient(create_app(config)) as client:
        assert "upload it again" in client.get(f"/v1/analyses/{lost.id}", headers=_auth(token)).json()["error"]
        assert "giving up" in client.get(f"/v1/analyses/{crashing.id}", headers=_auth(token)).json()["error"]


def test_a_recording_that_fails_to_analyse_reports_why(service):
    client, alice, _, _ = service
    header_only = SAMPLE.read_bytes()[:4096]  # a flac cut short: sniffed and probed fine, fails to decode fully
    body = _wait(client, alice, _post(client, alice, header_only, transcript=WORDS).json()["id"])
    assert body["status"] == "failed" and body["error"].startswith("bad recording: truncated")
    assert str(ROOT) not in body["error"] and "uploads" not in body["error"]


def _cli(*args: str):
    result = CliRunner().invoke(cli_app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_static_token_removed_from_the_config_stops_working_on_restart(tmp_path):
    probe = "/v1/analyses/" + "0" * 32
    with TestClient(create_app(load_config(service_toml(tmp_path, 'carol = "carol-static-token"\n')))) as client:
        assert client.get(probe, headers=_auth("carol-static-token")).status_code == 404
    with TestClient(create_app(load_config(service_toml(tmp_path)))) as client:
        assert client.get(probe, headers=_auth("carol-static-token")).status_code == 401


def test_every_serve_sub_command_takes_config_and_users_can_be_rotated_and_removed(tmp_path, database_url):
    config_path = service_toml(tmp_path, database_url=f'"{database_url}"')
    old = _cli("add-user", "alice", "--config", str(config_path)).stdout.strip()
    new = _cli("rotate-token", "alice", "--config", str(config_path)).stdout.strip()
    config = load_config(config_path)
    with TestClient(create_app(config)) as client:
        assert _post(client, old, transcript=WORDS).status_code == 401
        analysis_id = _post(client, new, transcript=WORDS).json()["id"]
        assert _wait(client, new, analysis_id)["status"] == "done"
    removed = _cli("remove-user", "alice", "--config", str(config_path))
    assert "removed with 1 analyses (1 reports) and 0 stored recordings" in removed.output.replace("\n", " "), \
        "by default a recording goes once analysed"
    assert not any((config.server.storage_path() / "uploads").iterdir())
    store = Store(config.server.database())
    assert store.get(analysis_id) is None and store.user_for_token(new) is None
    failed = CliRunner().invoke(cli_app, ["serve", "remove-user", "alice", "--config", str(config_path)])
    assert failed.exit_code == 2 and "no user 'alice'" in failed.output


def test_an_unknown_token_is_refused_before_the_body_is_read(service):
    client, *_ = service
    pulled = []

    def body():
        for _ in range(80):  # 5 MB
            pulled.append(1)
            yield bytes(65536)

    response = client.post("/v1/analyses", content=body(), headers={**_auth("not-a-token"),
                                                                    "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 401
    assert len(pulled) <= 1, f"{len(pulled) * 64} KB read before the token was checked"


def test_queued_jobs_and_stored_bytes_per_user_are_limited(tmp_path, database_url):
    size = len(SAMPLE.read_bytes())

    def slow(*args, **kwargs):
        time.sleep(1)
        raise RuntimeError("only the queue matters here")

    config = _config(tmp_path, database_url=database_url, max_queued_per_user=1,
                     max_stored_bytes_per_user=int(size * 1.5))
    with _alice(config, analyze=slow) as (client, token, _):
        first = _post(client, token, transcript=WORDS)
        assert first.status_code == 202
        busy = _post(client, token, transcript=WORDS)
        assert busy.status_code == 429 and "too many analyses waiting: 1 queued or running" in busy.json()["detail"]
        _wait(client, token, first.json()["id"])
        full = _post(client, token, transcript=WORDS)
        assert full.status_code == 507 and "storage quota exceeded" in full.json()["detail"]
        assert client.delete(f"/v1/analyses/{first.json()['id']}", headers=_auth(token)).status_code == 204
        assert _post(client, token, transcript=WORDS).status_code == 202


def test_a_deleted_transcript_leaves_no_trace_in_the_database_files(tmp_path):
    secret = "아무도 몰라야 하는 비밀 일기 문장"
    config = _config(tmp_path)
    with _alice(config) as (client, token, _):
        analysis_id = _analysed(client, token, secret)
        assert client.delete(f"/v1/analyses/{analysis_id}", headers=_auth(token)).status_code == 204
        files = sorted(config.server.storage_path().glob("fusion.db*"))
        assert not any(secret.encode() in p.read_bytes() for p in files), "found after DELETE"
    files = sorted(config.server.storage_path().glob("fusion.db*"))
    assert [p.name for p in files] == ["fusion.db"], "the WAL is folded back on shutdown"
    assert secret.encode() not in files[0].read_bytes()


def test_database_uploads_and_storage_folder_are_private(tmp_path):
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    config = _config(tmp_path)
    with _alice(config) as (client, token, _):
        analysis_id = _analysed(client, token)
        for path in (root, root / "uploads", root / "incoming"):
            assert path.stat().st_mode & 0o777 == 0o700, path
        for path in (root / "fusion.db", root / "uploads" / analysis_id, *root.glob("fusion.db-*")):
            assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_result_that_cannot_be_stored_fails_the_job_instead_of_leaving_it_running(tmp_path):
    with _alice(_config(tmp_path), analyze=lambda *args, **kwargs: "not a report") as (client, token, _):
        body = _wait(client, token, _post(client, token, transcript=WORDS).json()["id"], timeout=10)
    assert body["status"] == "failed" and body["error"].startswith("internal error")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open_timeline_page(chromium, base: str, token: str, diaries: int) -> None:
    """The served timeline page in Chromium: plotly.js comes from the service, nothing fails, a point per diary."""
    context = chromium.new_context(extra_http_headers=_auth(token))
    try:
        page, problems = watched_page(context)
        page.goto(f"{base}/v1/timeline.html")
        page.wait_for_selector("#trend .trace.scatter .point")
        points = page.evaluate("[...document.querySelectorAll('#trend .trace.scatter')]"
                               ".map(t => t.querySelectorAll('.point').length)")
        assert points[:2] == [diaries, diaries] and problems == []
    finally:
        context.close()


@pytest.mark.slow
def test_real_server_process_analyses_a_real_recording(tmp_path, chromium):
    config = service_toml(tmp_path)
    cli = [sys.executable, "-m", "fusion.cli", "serve", "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    token = subprocess.run([*cli, "add-user", "alice"], capture_output=True, text=True, check=True,
                           env=env).stdout.strip()
    store = Store(default_config().with_updates(server={"storage_dir": str(tmp_path / "store")}).server.database())
    left = store.create(store.user_for_token(token).id, "left.flac", None, None, WORDS)
    (tmp_path / "store" / "uploads" / left.id).write_bytes(SAMPLE.read_bytes())
    store.close()
    port = _free_port()
    server = subprocess.Popen([*cli, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            tagged = odd_audio.id3_flac(tmp_path / "tagged.flac", 7200).read_bytes()
            refused = _post(client, token, tagged, name="diary.mp3")
            assert refused.status_code == 413 and refused.json()["detail"].startswith("recording too long: 7200 s")
            response = _post(client, token)
            assert response.status_code == 202, response.text
            body = _wait(client, token, response.json()["id"], timeout=150)
            assert body["status"] == "done", body["error"]
            report = DiaryReport.model_validate(body["report"])
            assert (report.transcript_source == "stt" and report.sentences
                    and report.duration_s == pytest.approx(25.6, abs=0.2))
            assert client.get(f"/v1/analyses/{response.json()['id']}/report.html",
                              headers=_auth(token)).status_code == 200
            timeline = client.get("/v1/timeline", headers=_auth(token))
            assert timeline.status_code == 200
            assert response.json()["id"] in [entry["id"] for entry in timeline.json()["entries"]]
            _open_timeline_page(chromium, base, token, len(timeline.json()["entries"]))
            with client.stream("GET", "/v1/export", headers=_auth(token)) as export:
                assert export.headers["content-type"] == "application/x-ndjson"
                lines = [json.loads(line) for line in export.iter_lines() if line]
            assert {line["id"] for line in lines} == {left.id, response.json()["id"]}
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0].decode(errors="replace")
    assert "Uvicorn running" in output or "Application startup complete" in output
    assert f"re-queueing analysis {left.id} left queued by a previous server" in output


@pytest.mark.parametrize("public_url, base", [("", ""), ("https://diary.example.org/api/", "https://diary.example.org/api")],
                         ids=["relative", "public-url"])
def test_links_never_come_from_the_host_header(tmp_path, public_url, base):
    with _alice(_config(tmp_path, public_url=public_url)) as (client, token, _):
        evil = {**_auth(token), "Host": "evil.example"}
        response = client.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())},
                               data={"transcript": WORDS}, headers=evil)
        analysis_id = response.json()["id"]
        assert response.headers["location"] == response.json()["url"] == f"{base}/v1/analyses/{analysis_id}"
        _wait(client, token, analysis_id)
        entries = client.get("/v1/timeline", headers=evil).json()["entries"]
        assert [e["url"] for e in entries] == [f"{base}/v1/analyses/{analysis_id}/report.html"]
        page = client.get("/v1/timeline.html", headers=evil).text
        assert "evil.example" not in page and f"{base}/v1/analyses/{analysis_id}/report.html" in page


def test_by_default_a_recording_goes_once_analysed_and_its_report_stays(tmp_path, database_url):
    size = SAMPLE.stat().st_size
    config = _config(tmp_path, database_url=database_url, keep_recordings_days=0,
                     max_stored_bytes_per_user=int(size * 1.5))
    uploads = tmp_path / "store" / "uploads"
    with _alice(config) as (client, token, _):
        ids = []
        for _ in range(2):  # the second fits the quota: the first recording's bytes are no longer stored
            response = _post(client, token, transcript=WORDS)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
            assert _wait(client, token, ids[-1])["status"] == "done"
        assert not any(uploads.iterdir())
        lines = [json.loads(line) for line in client.get("/v1/export", headers=_auth(token)).text.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids) and all(line["report"] for line in lines)
        assert len(client.get("/v1/timeline", headers=_auth(token)).json()["entries"]) == 2


def test_a_kept_recording_goes_after_keep_recordings_days(tmp_path, database_url):
    uploads = tmp_path / "store" / "uploads"
    with _alice(_config(tmp_path, database_url=database_url, keep_recordings_days=2)) as (client, token, app):
        store = app.state.store
        old, new = (_post(client, token, transcript=WORDS).json()["id"] for _ in range(2))
        for analysis_id in (old, new):
            _wait(client, token, analysis_id)
        assert sorted(p.name for p in uploads.iterdir()) == sorted([old, new])
        with store.session() as s, s.begin():
            s.get(Analysis, old).updated = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=2, hours=1)
        assert app.state.workers.expire() == 1
        assert [p.name for p in uploads.iterdir()] == [new]
        assert _wait(client, token, old)["report"]["transcript"] == WORDS
