"""What the service keeps and for how long: per-user quotas, deleted words gone from the database files, private
storage, and recordings removed after ``keep_recordings_days``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from service_calls import SAMPLE, WORDS, analysed, auth, config_for, post, running_app, wait

from fusion.service.tables import Analysis


def test_queued_jobs_and_stored_bytes_per_user_are_limited(tmp_path, database_url):
    size = len(SAMPLE.read_bytes())

    def slow(*args, **kwargs):
        time.sleep(1)
        raise RuntimeError("only the queue matters here")

    config = config_for(tmp_path, database_url=database_url, max_queued_per_user=1,
                        max_stored_bytes_per_user=int(size * 1.5))
    with running_app(config, analyze=slow) as (client, token, _):
        first = post(client, token, transcript=WORDS)
        assert first.status_code == 202
        busy = post(client, token, transcript=WORDS)
        assert busy.status_code == 429 and "too many analyses waiting: 1 queued or running" in busy.json()["detail"]
        wait(client, token, first.json()["id"])
        full = post(client, token, transcript=WORDS)
        assert full.status_code == 507 and "storage quota exceeded" in full.json()["detail"]
        assert client.delete(f"/v1/analyses/{first.json()['id']}", headers=auth(token)).status_code == 204
        assert post(client, token, transcript=WORDS).status_code == 202


def test_a_deleted_transcript_leaves_no_trace_in_the_database_files(tmp_path):
    secret = "아무도 몰라야 하는 비밀 일기 문장"
    config = config_for(tmp_path)
    with running_app(config) as (client, token, _):
        analysis_id = analysed(client, token, secret)
        assert client.delete(f"/v1/analyses/{analysis_id}", headers=auth(token)).status_code == 204
        files = sorted(config.server.storage_path().glob("fusion.db*"))
        assert not any(secret.encode() in p.read_bytes() for p in files), "found after DELETE"
    files = sorted(config.server.storage_path().glob("fusion.db*"))
    assert [p.name for p in files] == ["fusion.db"], "the WAL is folded back on shutdown"
    assert secret.encode() not in files[0].read_bytes()


def test_database_uploads_and_storage_folder_are_private(tmp_path):
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    config = config_for(tmp_path)
    with running_app(config) as (client, token, _):
        analysis_id = analysed(client, token)
        for path in (root, root / "uploads", root / "incoming"):
            assert path.stat().st_mode & 0o777 == 0o700, path
        for path in (root / "fusion.db", root / "uploads" / analysis_id, *root.glob("fusion.db-*")):
            assert path.stat().st_mode & 0o777 == 0o600, path


def test_by_default_a_recording_goes_once_analysed_and_its_report_stays(tmp_path, database_url):
    size = SAMPLE.stat().st_size
    config = config_for(tmp_path, database_url=database_url, keep_recordings_days=0,
                        max_stored_bytes_per_user=int(size * 1.5))
    uploads = tmp_path / "store" / "uploads"
    with running_app(config) as (client, token, _):
        ids = []
        for _ in range(2):  # the second fits the quota: the first recording's bytes are no longer stored
            response = post(client, token, transcript=WORDS)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
            assert wait(client, token, ids[-1])["status"] == "done"
        assert not any(uploads.iterdir())
        lines = [json.loads(line) for line in client.get("/v1/export", headers=auth(token)).text.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids) and all(line["report"] for line in lines)
        assert len(client.get("/v1/timeline", headers=auth(token)).json()["entries"]) == 2


def test_a_kept_recording_goes_after_keep_recordings_days(tmp_path, database_url):
    uploads = tmp_path / "store" / "uploads"
    with running_app(config_for(tmp_path, database_url=database_url, keep_recordings_days=2)) as (client, token, app):
        store = app.state.store
        old, new = (post(client, token, transcript=WORDS).json()["id"] for _ in range(2))
        for analysis_id in (old, new):
            wait(client, token, analysis_id)
        assert sorted(p.name for p in uploads.iterdir()) == sorted([old, new])
        with store.session() as s, s.begin():
            s.get(Analysis, old).updated = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=2, hours=1)
        assert app.state.workers.expire() == 1
        assert [p.name for p in uploads.iterdir()] == [new]
        assert wait(client, token, old)["report"]["transcript"] == WORDS
