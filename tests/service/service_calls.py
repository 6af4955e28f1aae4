"""The service under test: its config, a running app with one user, and what a client sends over HTTP (a bearer
token, an upload of the sample diary) and waits for (a job's end)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from fusion.config import default_config
from fusion.service.app import create_app

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "diary_ko.flac"
WORDS = "오늘 정말 즐거웠어. 친구를 만났거든."


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def post(client, token: str, content: bytes | None = None, name: str = "diary.flac", **form):
    """Upload ``content`` (default: the sample) as ``name`` with these form fields."""
    data = SAMPLE.read_bytes() if content is None else content
    return client.post("/v1/analyses", files={"file": (name, data, "application/octet-stream")}, data=form,
                       headers=auth(token))


def wait(client, token: str, analysis_id: str, until=("done", "failed"), timeout: float = 60.0) -> dict:
    """The analysis once its status is one of ``until``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/analyses/{analysis_id}", headers=auth(token)).json()
        if body["status"] in until:
            return body
        time.sleep(0.05)
    raise AssertionError(f"analysis {analysis_id} still {body['status']} after {timeout} s")


def config_for(tmp_path: Path, **server):
    """The service's config for a test; its recordings stay a day after their analysis (so a test can look at them),
    unless the test says otherwise."""
    return default_config().with_updates(server={"storage_dir": str(tmp_path / "store"), "max_duration_s": 60.0,
                                                 "keep_recordings_days": 1.0, **server})


@contextmanager
def running_app(config, **app_kwargs):
    """A running app with one user; yields (client, her token, the app)."""
    app = create_app(config, **app_kwargs)
    token = app.state.store.add_user("alice")
    with TestClient(app) as client:
        yield client, token, app


def analysed(client, token, transcript: str = WORDS) -> str:
    """The id of a new analysis of the sample with ``transcript``, once it has finished."""
    analysis_id = post(client, token, transcript=transcript).json()["id"]
    wait(client, token, analysis_id)
    return analysis_id
