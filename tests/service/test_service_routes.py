"""The service's routes as documented (every JSON body a schema of fusion.service.schemas) and as authenticated
by tokens from the config."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_calls import SAMPLE, WORDS, post

from fusion.config import default_config
from fusion.service import schemas
from fusion.service.app import create_app

MODELS = {name for name, value in vars(schemas).items()
          if isinstance(value, type) and value.__module__ == schemas.__name__}


def _app(tmp_path: Path, **server):
    return create_app(default_config().with_updates(server={"storage_dir": str(tmp_path / "store"), **server}))


def _json_bodies(openapi: dict):
    """(method, path, status, schema) of every JSON body the document declares."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if "application/json" in response.get("content", {}):
                    yield method, path, status, response["content"]["application/json"].get("schema", {})


def test_every_json_body_is_documented_by_a_service_schema(tmp_path):
    """A new route without ``response_model=`` (or an error without ``responses=``) fails here; request
    validation errors (422) keep FastAPI's own documented body."""
    with TestClient(_app(tmp_path)) as client:
        openapi = client.get("/openapi.json").json()
    bodies = list(_json_bodies(openapi))
    assert {(m, p) for m, p, s, _ in bodies if s.startswith("2")} >= {
        ("get", "/healthz"), ("post", "/v1/analyses"), ("get", "/v1/analyses/{analysis_id}"), ("get", "/v1/timeline"),
        ("get", "/v1/baseline"), ("post", "/v1/baseline")}
    for method, path, status, schema in bodies:
        name = schema.get("$ref", "").removeprefix("#/components/schemas/")
        assert name in openapi["components"]["schemas"], (method, path, status, schema)
        assert name in (MODELS if status != "422" else {"HTTPValidationError"}), (method, path, status, name)
    errors = {(m, p, s) for m, p, s, schema in bodies if schema["$ref"].endswith("/ErrorBody")}
    assert ("get", "/v1/analyses/{analysis_id}/report.html", "409") in errors
    assert ("post", "/v1/analyses", "413") in errors and ("delete", "/v1/analyses/{analysis_id}", "404") in errors
    assert ("get", "/v1/export", "401") in errors and ("post", "/v1/baseline", "413") in errors
    lines = openapi["paths"]["/v1/export"]["get"]["responses"]["200"]["content"]
    assert lines == {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/ExportLine"}}}


def test_bodies_match_their_schemas(tmp_path):
    app = _app(tmp_path)
    token = app.state.store.add_user("alice")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert schemas.Health.model_validate(client.get("/healthz").json()).status == "ok"
        created = client.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())},
                              data={"transcript": WORDS}, headers=auth)
        body = schemas.AnalysisCreated.model_validate(created.json())
        assert created.headers["location"] == body.url
        refused = client.get(f"/v1/analyses/{body.id}/report.html", headers={"Authorization": "Bearer wrong"})
        assert schemas.ErrorBody.model_validate(refused.json()).detail == "missing or unknown bearer token"
        deadline = time.monotonic() + 60
        while ((status := schemas.AnalysisStatus.model_validate(client.get(body.url, headers=auth).json())).status
               not in ("done", "failed") and time.monotonic() < deadline):
            time.sleep(0.05)
    assert status.status == "done" and status.report.transcript == WORDS and status.created.tzinfo is not None


@pytest.fixture()
def static_users(tmp_path):
    """An app whose only users are carol and dave, from [server.tokens]."""
    app = _app(tmp_path, tokens={"carol": "carol-static-token", "dave": "dave-static-token"})
    with TestClient(app) as client:
        yield client


def test_a_token_from_the_config_authenticates_as_its_own_user(static_users):
    client = static_users
    created = post(client, "carol-static-token", transcript=WORDS)
    assert created.status_code == 202, created.text
    url = created.json()["url"]
    assert client.get(url, headers={"Authorization": "Bearer carol-static-token"}).status_code == 200
    assert client.get(url, headers={"Authorization": "Bearer dave-static-token"}).status_code == 404, \
        "dave's token is dave, not any user of the config"


@pytest.mark.parametrize("token", ["carol-static-token-", "carol", "", "dave-static-tokens"])
def test_a_wrong_token_is_401_with_config_tokens(static_users, token):
    client = static_users
    refused = post(client, token, transcript=WORDS)
    assert refused.status_code == 401 and refused.json() == {"detail": "missing or unknown bearer token"}
    assert client.get("/v1/analyses/" + "0" * 32, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_every_refusal_has_the_status_and_body_the_schema_documents(tmp_path):
    """A form field over Starlette's 1 MB part limit is a 413 as any oversized request (not a 400); a route's own
    422 has FastAPI's HTTPValidationError shape; a body that is no multipart is a documented 400."""
    app = _app(tmp_path)
    auth = {"Authorization": f"Bearer {app.state.store.add_user('alice')}"}
    with TestClient(app) as client:
        openapi = client.get("/openapi.json").json()
        for field in ("transcript", "language"):
            big = client.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())},
                              data={field: "가" * 400_000}, headers=auth)
            assert big.status_code == 413, (field, big.text)
            assert schemas.ErrorBody.model_validate(big.json()).detail.startswith("form field too large")
        refused = client.post("/v1/analyses", files={"file": ("d.flac", SAMPLE.read_bytes())},
                              data={"language": "xx"}, headers=auth)
        assert refused.status_code == 422
        [error] = refused.json()["detail"]
        assert error["loc"] == ["body", "language"] and error["msg"].startswith("language must be one of")
        assert set(openapi["components"]["schemas"]["ValidationError"]["required"]) <= set(error)
        timeline = client.get("/v1/timeline", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=auth)
        assert timeline.status_code == 422 and timeline.json()["detail"][0]["loc"] == ["query", "from"]
        broken = client.post("/v1/analyses", content=b"--b\r\nnot a part", headers={
            **auth, "Content-Type": "multipart/form-data; boundary=b"})
        assert broken.status_code == 400 and schemas.ErrorBody.model_validate(broken.json())
    for path in ("/v1/analyses", "/v1/baseline"):
        documented = openapi["paths"][path]["post"]["responses"]
        assert documented["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        assert documented["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
