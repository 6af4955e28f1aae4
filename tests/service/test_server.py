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
from pathlib import Path

import httpx
import odd_audio
import pytest
from browser import watched_page
from fastapi.testclient import TestClient
from service_calls import SAMPLE, WORDS, analysed, auth, config_for, post, running_app, wait
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


@pytest.fixture()
def service(tmp_path):
    """A running app with two users; yields (client, alice's token, bob's token, config)."""
    config = config_for(tmp_path)
    app = create_app(config)
    alice, bob = app.state.store.add_user("alice"), app.state.store.add_user("bob")
    with TestClient(app) as client:
        yield client, alice, bob, config


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
    response = post(client, "not-a-token", transcript=WORDS)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_upload_is_queued_then_gives_the_report_and_its_page(service):
    client, alice, _, _ = service
    response = post(client, alice, transcript=WORDS, gender="female")
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "queued" and response.headers["location"].endswith(created["id"])
    body = wait(client, alice, created["id"])
    assert body["status"] == "done", body["error"]
    report = DiaryReport.model_validate(body["report"])
    assert report.transcript == WORDS and report.voice.baseline == "female" and report.source == "diary.flac"
    page = client.get(f"/v1/analyses/{created['id']}/report.html", headers=auth(alice))
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert "즐거웠어" in page.text


def test_another_users_analysis_is_404(service):
    client, alice, bob, _ = service
    analysis_id = analysed(client, alice)
    for method, suffix in (("GET", ""), ("GET", "/report.html"), ("DELETE", "")):
        assert client.request(method, f"/v1/analyses/{analysis_id}{suffix}", headers=auth(bob)).status_code == 404
    assert client.get(f"/v1/analyses/{analysis_id}", headers=auth(alice)).json()["status"] == "done"


@pytest.mark.parametrize("limit, chunked", [(100_000, False), (300_000, False), (100_000, True)],
                         ids=["declared-length", "file-over-limit", "chunked-body"])
def test_upload_over_the_size_limit_is_413(tmp_path, limit, chunked):
    with running_app(config_for(tmp_path, max_upload_bytes=limit)) as (client, token, _):
        if chunked:
            body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.flac\"\r\n\r\n"
                    + SAMPLE.read_bytes())
            response = client.post("/v1/analyses",
                                   content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                                   headers={**auth(token), "Content-Type": "multipart/form-data; boundary=b"})
        else:
            response = post(client, token, transcript=WORDS)
    assert response.status_code == 413
    assert response.json()["detail"] == f"upload too large: the limit is {limit / 1e6:.1f} MB"
    store = tmp_path / "store"
    assert not any((store / "uploads").iterdir()) and not any((store / "incoming").iterdir())


def test_recording_over_the_duration_limit_is_413(tmp_path):
    with running_app(config_for(tmp_path, max_duration_s=10.0)) as (client, token, _):
        response = post(client, token, transcript=WORDS)
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
    response = post(client, alice, content, name=name, transcript=WORDS)
    assert response.status_code == 415, response.text
    assert "not" in response.json()["detail"]
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_an_id3_tag_cannot_hide_a_long_flac_from_the_duration_check(service, tmp_path):
    client, alice, _, config = service
    tagged = odd_audio.id3_flac(tmp_path / "tagged.flac", 7200).read_bytes()
    response = post(client, alice, tagged, name="diary.mp3")
    assert response.status_code == 413
    assert response.json()["detail"] == "recording too long: 7200 s, the limit is 60 s"
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_a_recording_longer_than_its_header_says_stops_decoding_at_the_limit(service, tmp_path):
    client, alice, _, _ = service
    joined = odd_audio.joined_mp3(tmp_path / "joined.mp3", rest_s=120).read_bytes()  # declares about 8 s
    response = post(client, alice, joined, name="diary.mp3", transcript=WORDS)
    assert response.status_code == 202, response.text
    body = wait(client, alice, response.json()["id"])
    assert body["status"] == "failed"
    assert re.fullmatch(r"bad recording: recording too long: decoding passed 6\d s, the limit is 60 s", body["error"])


def test_a_stream_without_a_decoder_is_refused_at_upload(service, tmp_path):
    client, alice, _, config = service
    response = post(client, alice, odd_audio.wav_with_unknown_codec(tmp_path / "odd.wav").read_bytes(), name="a.wav")
    assert response.status_code == 415 and "has no decoder" in response.json()["detail"]
    assert not any((config.server.storage_path() / "uploads").iterdir())


def test_sniffing_reads_the_bytes_not_the_name():
    assert sniff_format(SAMPLE.read_bytes()[:16]) == "flac"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "wav"
    assert sniff_format(b"\x00\x00\x00\x20ftypM4A ") == "mov"
    assert sniff_format(b"#EXTM3U\n") is None


def test_bad_form_fields_are_refused(service):
    client, alice, _, _ = service
    assert post(client, alice, gender="robot").status_code == 422
    assert "language must be one of" in post(client, alice, language="xx").json()["detail"][0]["msg"]
    assert post(client, alice, b"", transcript=WORDS).status_code == 422
    assert post(client, alice, transcript="가" * 20_001).status_code == 413


def test_file_name_never_reaches_the_storage_path(service):
    client, alice, _, config = service
    response = post(client, alice, name="../../../etc/evil.flac", transcript=WORDS)
    analysis_id = response.json()["id"]
    assert [p.name for p in (config.server.storage_path() / "uploads").iterdir()] == [analysis_id]
    assert wait(client, alice, analysis_id)["filename"] == "../../../etc/evil.flac"


def test_concurrent_uploads_queue_and_keep_their_own_results(service):
    client, alice, bob, _ = service
    diaries = [("오늘 정말 즐거웠어.", alice), ("너무 화가 나서 참을 수가 없었다.", bob),
               ("시험이 걱정돼서 잠이 안 와.", alice), ("친구가 떠나서 슬펐다.", bob)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(diaries)) as pool:
        responses = list(pool.map(lambda d: post(client, d[1], transcript=d[0]), diaries))
    assert all(r.status_code == 202 for r in responses)
    assert time.monotonic() - t0 < 10, "uploads must not wait for each other's analyses"
    for (words, token), response in zip(diaries, responses):
        body = wait(client, token, response.json()["id"])
        assert body["status"] == "done" and body["report"]["transcript"] == words


def test_delete_removes_recording_report_and_temporary_files(service):
    client, alice, _, config = service
    analysis_id = analysed(client, alice)
    assert client.delete(f"/v1/analyses/{analysis_id}", headers=auth(alice)).status_code == 204
    assert client.get(f"/v1/analyses/{analysis_id}", headers=auth(alice)).status_code == 404
    root = config.server.storage_path()
    assert not any((root / "uploads").iterdir()) and not any((root / "incoming").iterdir())
    assert Store(config.server.database()).get(analysis_id) is None


def test_a_job_interrupted_by_a_restart_runs_again(tmp_path, database_url):
    config, release = config_for(tmp_path, database_url=database_url), threading.Event()

    def stuck(*args, **kwargs):
        release.wait(30)
        raise RuntimeError("the old server's worker must not overwrite the new result")

    first = create_app(config, analyze=stuck)
    token = first.state.store.add_user("alice")
    with TestClient(first) as client:
        analysis_id = post(client, token, transcript=WORDS).json()["id"]
        assert wait(client, token, analysis_id, until=("running",))["status"] == "running"
    try:
        with TestClient(create_app(config)) as client:
            body = wait(client, token, analysis_id)
            assert body["status"] == "done" and body["report"]["transcript"] == WORDS
            release.set()
            time.sleep(0.3)
            assert client.get(f"/v1/analyses/{analysis_id}", headers=auth(token)).json()["status"] == "done"
    finally:
        release.set()


def test_unrecoverable_jobs_are_failed_with_a_reason_on_startup(tmp_path, database_url):
    config = config_for(tmp_path, database_url=database_url)
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
        assert "upload it again" in client.get(f"/v1/analyses/{lost.id}", headers=auth(token)).json()["error"]
        assert "giving up" in client.get(f"/v1/analyses/{crashing.id}", headers=auth(token)).json()["error"]


def test_a_recording_that_fails_to_analyse_reports_why(service):
    client, alice, _, _ = service
    header_only = SAMPLE.read_bytes()[:4096]  # a flac cut short: sniffed and probed fine, fails to decode fully
    body = wait(client, alice, post(client, alice, header_only, transcript=WORDS).json()["id"])
    assert body["status"] == "failed" and body["error"].startswith("bad recording: truncated")
    assert str(ROOT) not in body["error"] and "uploads" not in body["error"]


def _cli(*args: str):
    result = CliRunner().invoke(cli_app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_static_token_removed_from_the_config_stops_working_on_restart(tmp_path):
    probe = "/v1/analyses/" + "0" * 32
    with TestClient(create_app(load_config(service_toml(tmp_path, 'carol = "carol-static-token"\n')))) as client:
        assert client.get(probe, headers=auth("carol-static-token")).status_code == 404
    with TestClient(create_app(load_config(service_toml(tmp_path)))) as client:
        assert client.get(probe, headers=auth("carol-static-token")).status_code == 401


def test_every_serve_sub_command_takes_config_and_users_can_be_rotated_and_removed(tmp_path, database_url):
    config_path = service_toml(tmp_path, database_url=f'"{database_url}"')
    old = _cli("add-user", "alice", "--config", str(config_path)).stdout.strip()
    new = _cli("rotate-token", "alice", "--config", str(config_path)).stdout.strip()
    config = load_config(config_path)
    with TestClient(create_app(config)) as client:
        assert post(client, old, transcript=WORDS).status_code == 401
        analysis_id = post(client, new, transcript=WORDS).json()["id"]
        assert wait(client, new, analysis_id)["status"] == "done"
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

    response = client.post("/v1/analyses", content=body(), headers={**auth("not-a-token"),
                                                                    "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 401
    assert len(pulled) <= 1, f"{len(pulled) * 64} KB read before the token was checked"


def test_a_result_that_cannot_be_stored_fails_the_job_instead_of_leaving_it_running(tmp_path):
    with running_app(config_for(tmp_path), analyze=lambda *args, **kwargs: "not a report") as (client, token, _):
        body = wait(client, token, post(client, token, transcript=WORDS).json()["id"], timeout=10)
    assert body["status"] == "failed" and body["error"].startswith("internal error")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open_timeline_page(chromium, base: str, token: str, diaries: int) -> None:
    """The served timeline page in Chromium: plotly.js comes from the service, nothing fails, a point per diary."""
    context = chromium.new_context(extra_http_headers=auth(token))
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
            refused = post(client, token, tagged, name="diary.mp3")
            assert refused.status_code == 413 and refused.json()["detail"].startswith("recording too long: 7200 s")
            response = post(client, token)
            assert response.status_code == 202, response.text
            body = wait(client, token, response.json()["id"], timeout=150)
            assert body["status"] == "done", body["error"]
            report = DiaryReport.model_validate(body["report"])
            assert (report.transcript_source == "stt" and report.sentences
                    and report.duration_s == pytest.approx(25.6, abs=0.2))
            assert client.get(f"/v1/analyses/{response.json()['id']}/report.html",
                              headers=auth(token)).status_code == 200
            timeline = client.get("/v1/timeline", headers=auth(token))
            assert timeline.status_code == 200
            assert response.json()["id"] in [entry["id"] for entry in timeline.json()["entries"]]
            _open_timeline_page(chromium, base, token, len(timeline.json()["entries"]))
            with client.stream("GET", "/v1/export", headers=auth(token)) as export:
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
    with running_app(config_for(tmp_path, public_url=public_url)) as (client, token, _):
        evil = {**auth(token), "Host": "evil.example"}
        response = client.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())},
                               data={"transcript": WORDS}, headers=evil)
        analysis_id = response.json()["id"]
        assert response.headers["location"] == response.json()["url"] == f"{base}/v1/analyses/{analysis_id}"
        wait(client, token, analysis_id)
        entries = client.get("/v1/timeline", headers=evil).json()["entries"]
        assert [e["url"] for e in entries] == [f"{base}/v1/analyses/{analysis_id}/report.html"]
        page = client.get("/v1/timeline.html", headers=evil).text
        assert "evil.example" not in page and f"{base}/v1/analyses/{analysis_id}/report.html" in page
