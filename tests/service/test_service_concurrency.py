"""The service under requests that race each other, on SQLite and on PostgreSQL: uploads and baselines against
``remove-user``, parallel uploads against the per-user limits, and two service processes sharing one database.

Each race is forced through the real code path: the upload's duration check (``routes.declared_duration``) or
the baseline's decoding (``routes.load_audio``) waits at an event or a barrier while the other side runs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_calls import SAMPLE, WORDS, auth, post

from fusion.config import default_config
from fusion.service import routes
from fusion.service.app import create_app, remove_user
from fusion.service.store import Store
from fusion.service.tables import Analysis

ROOT = Path(__file__).resolve().parents[2]
CALM = [ROOT / "samples" / "diary_ko.flac", ROOT / "samples" / "sad_voice_ko.flac"]


def _config(tmp_path: Path, database_url: str, **server):
    return default_config().with_updates(server={"storage_dir": str(tmp_path / "store"), "database_url": database_url,
                                                 **server})


def _paused(monkeypatch, name: str):
    """Make ``routes.<name>`` wait, once called, until the test releases it; returns (reached, release)."""
    reached, release, real = threading.Event(), threading.Event(), getattr(routes, name)

    def paused(*args, **kwargs):
        reached.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(routes, name, paused)
    return reached, release


def _left_on_disk(config) -> list[str]:
    root = config.server.storage_path()
    return sorted(p.relative_to(root).as_posix() for p in (root / "uploads", root / "incoming") for p in p.iterdir())


def _rows(config) -> list[tuple[str, int]]:
    store = Store(config.server.database())
    try:
        with store.session() as s:
            return [(row.id, row.user_id) for row in s.query(Analysis)]
    finally:
        store.close()


def _never(*args, **kwargs):
    raise RuntimeError("not analysed here")


def test_an_upload_racing_remove_user_is_refused_and_the_next_user_inherits_nothing(tmp_path, database_url,
                                                                                     monkeypatch):
    config = _config(tmp_path, database_url)
    app = create_app(config, analyze=_never)
    alice = app.state.store.add_user("alice")
    alice_id = app.state.store.user_for_token(alice).id
    reached, release = _paused(monkeypatch, "declared_duration")
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        upload = pool.submit(post, client, alice, transcript=WORDS)
        assert reached.wait(30), "the upload reached its duration check"
        assert remove_user(config, "alice") == (0, 0, 0, 0)
        release.set()
        response = upload.result(30)
        assert response.status_code == 401, response.text
        carol = app.state.store.add_user("carol")
        assert app.state.store.user_for_token(carol).id != alice_id, "a removed user's id is never given again"
        export = client.get("/v1/export", headers=auth(carol))
        assert export.status_code == 200 and export.text == ""
    assert _rows(config) == [] and _left_on_disk(config) == []


def test_a_baseline_racing_remove_user_is_refused_not_an_internal_error(tmp_path, database_url, monkeypatch):
    config = _config(tmp_path, database_url)
    app = create_app(config, analyze=_never)
    alice = app.state.store.add_user("alice")
    reached, release = _paused(monkeypatch, "load_audio")
    files = [("files", (path.name, path.read_bytes())) for path in CALM]
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        made = pool.submit(client.post, "/v1/baseline", files=files, headers=auth(alice))
        assert reached.wait(30)
        remove_user(config, "alice")
        release.set()
        response = made.result(60)
    assert response.status_code == 401, response.text
    assert _left_on_disk(config) == []


@pytest.mark.parametrize("limits, refused", [({"max_queued_per_user": 2}, 429),
                                             ({"max_stored_bytes_per_user": int(SAMPLE.stat().st_size * 2.5)}, 507)],
                         ids=["queue", "bytes"])
def test_parallel_uploads_cannot_pass_the_per_user_limits(tmp_path, database_url, monkeypatch, limits, refused):
    """Eight uploads checked at once (a barrier holds each at its duration check until all are there): two fit."""
    config = _config(tmp_path, database_url, **limits)
    done = threading.Event()
    app = create_app(config, analyze=lambda *a, **k: done.wait(30) and _never())
    token = app.state.store.add_user("alice")
    together, real = threading.Barrier(8, timeout=30), routes.declared_duration

    def at_once(path):
        together.wait()
        return real(path)

    monkeypatch.setattr(routes, "declared_duration", at_once)
    try:
        with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
            codes = sorted(r.status_code for r in pool.map(lambda _: post(client, token, transcript=WORDS), range(8)))
            assert codes == [202] * 2 + [refused] * 6
            assert len(_rows(config)) == 2 and len(list((config.server.storage_path() / "uploads").iterdir())) == 2
    finally:
        done.set()



def _left_by_a_killed_process(incoming: Path) -> Path:
    """The part of an upload whose process held it, as a request does, until it was killed with SIGKILL."""
    holder = ("import sys, time; from pathlib import Path; from fusion.service.routes import _part; "
              "held = _part(Path(sys.argv[1])); print(held.__enter__(), flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", holder, str(incoming)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    left = Path(child.stdout.readline().strip())
    child.kill()
    child.wait(30)
    assert left.is_file()
    return left


@pytest.mark.slow
def test_a_start_removes_the_uploads_a_killed_server_left_and_keeps_those_in_flight(tmp_path, database_url):
    """The part of a killed process (the user's audio, under no analysis) goes at the next start and at
    remove-user; the part of a live request stays."""
    config = _config(tmp_path, database_url)
    app = create_app(config, analyze=_never)
    app.state.store.add_user("alice")
    incoming = app.state.incoming
    _left_by_a_killed_process(incoming)
    with routes._part(incoming) as held:
        with TestClient(app):
            assert list(incoming.iterdir()) == [held]
        left = _left_by_a_killed_process(incoming)
        remove_user(config, "alice")
        assert list(incoming.iterdir()) == [held]
    assert not left.exists()


def _wait_status(client, token, analysis_id, until, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.get(f"/v1/analyses/{analysis_id}", headers=auth(token)).json()["status"]) not in until:
        assert time.monotonic() < deadline, f"{analysis_id} still {status}"
        time.sleep(0.05)
    return status


def test_two_service_processes_on_one_database_run_each_job_once(tmp_path, database_url):
    """Two apps share the database and the storage folder as two processes would (each holds its own mark; flock
    tells apart two open files even in one process). The second starts while the first runs one job and has one
    queued: it may take the queued one, never the running one."""
    config = _config(tmp_path, database_url)
    runs, release = [], threading.Event()

    def counted(audio, transcript=None, **kwargs):
        runs.append(transcript)
        assert release.wait(30)
        raise RuntimeError("only the runs are counted here")

    first = create_app(config, analyze=counted)
    token = first.state.store.add_user("alice")
    with TestClient(first) as one:
        ids = [one.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())}, data={"transcript": str(i)},
                        headers=auth(token)).json()["id"] for i in range(2)]
        _wait_status(one, token, ids[0], ("running",))
        with TestClient(create_app(config, analyze=counted)) as two:
            release.set()
            for analysis_id in ids:
                assert _wait_status(two, token, analysis_id, ("done", "failed")) == "failed"
    assert sorted(runs) == ["0", "1"], "each job ran exactly once"


def test_of_many_claims_of_one_job_at_once_exactly_one_wins(tmp_path, database_url):
    url = database_url or f"sqlite:///{tmp_path / 'fusion.db'}"
    stores = [Store(url), Store(url)]
    try:
        user = stores[0].user_for_token(stores[0].add_user("alice"))
        job = stores[0].create(user.id, "d.flac", None, None, WORDS)
        together = threading.Barrier(8, timeout=30)

        def claim(i):
            together.wait()
            return stores[i % 2].claim(job.id, f"worker{i}")

        with ThreadPoolExecutor(8) as pool:
            claims = list(pool.map(claim, range(8)))
        assert sum(c is not None for c in claims) == 1
    finally:
        for store in stores:
            store.close()


def test_an_upload_s_bytes_count_for_the_next_one_as_soon_as_its_row_exists(tmp_path, database_url, monkeypatch):
    """The recording is in place before the row is committed (under the user's lock), so an upload that finds the
    row also finds the bytes, however long the first request takes to return."""
    config = _config(tmp_path, database_url, max_stored_bytes_per_user=int(SAMPLE.stat().st_size * 1.5))
    done = threading.Event()
    app = create_app(config, analyze=lambda *a, **k: done.wait(30) and _never())
    store = app.state.store
    token = store.add_user("alice")
    reached, release, real = threading.Event(), threading.Event(), store.create

    def create_then_pause(*args, **kwargs):
        row = real(*args, **kwargs)
        monkeypatch.setattr(store, "create", real)
        reached.set()
        assert release.wait(30)
        return row

    monkeypatch.setattr(store, "create", create_then_pause)
    try:
        with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, client, token, transcript=WORDS)
            assert reached.wait(30)
            second = post(client, token, transcript=WORDS)
            release.set()
            assert (first.result(30).status_code, second.status_code) == (202, 507), second.text
    finally:
        release.set()
        done.set()


def test_a_start_removes_recordings_of_no_analysis(tmp_path, database_url):
    """An upload killed between placing its recording and writing its row leaves a file no row names."""
    config = _config(tmp_path, database_url)
    app = create_app(config, analyze=_never)
    uploads = app.state.uploads
    (uploads / ("0" * 32)).write_bytes(SAMPLE.read_bytes())
    with TestClient(app):
        assert not any(uploads.iterdir())
