"""The service's endpoints: an upload is checked on the request path, queued, then read back as JSON or HTML.

An upload is checked for size, format (sniffed from its first bytes) and declared duration, stored under a
generated name in ``[server].storage_dir`` and handed to the workers (``fusion.service.jobs``). Nothing a
client sends ever becomes part of a file path. The app (``fusion.service.app``) keeps the store, the
workers, the ``[server]`` config and the storage folders in ``app.state``; the dependencies below read them.
A new endpoint is its response model in ``schemas.py``, its function here and its test.
"""

from __future__ import annotations

import os
import uuid
from datetime import timezone
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fusion.audio import container_format, declared_duration
from fusion.errors import InputError
from fusion.report import DiaryReport
from fusion.service.schemas import AnalysisCreated, AnalysisStatus, ErrorBody, Health
from fusion.service.store import DONE, Analysis, Store, User

CHUNK = 1 << 20
NO_TOKEN = "missing or unknown bearer token"
FORMATS_HELP = "WAV, FLAC, MP3, AAC, M4A/MP4, OGG/Opus, WebM/Matroska, AIFF or CAF"

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)
_OWN = {401: {"model": ErrorBody}, 404: {"model": ErrorBody}}
# The HTML page's errors are JSON all the same (a model here would be filed under text/html).
_JSON_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit / 1e6:.1f} MB"


def _store(request: Request) -> Store:
    return request.app.state.store


def current_user(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                 store: Store = Depends(_store)) -> User:
    user = store.user_for_token(credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(401, NO_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return user


def own(analysis_id: str, user: User = Depends(current_user), store: Store = Depends(_store)) -> Analysis:
    """The caller's analysis; another user's is as absent as one that never existed."""
    row = store.get(analysis_id, user.id)
    if row is None:
        raise HTTPException(404, "no such analysis")
    return row


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health()


@router.post("/v1/analyses", status_code=202, response_model=AnalysisCreated,
             responses={code: {"model": ErrorBody} for code in (401, 413, 415, 429, 507)})
def create(
    request: Request,
    response: Response,
    file: UploadFile = File(..., description=f"the recording: {FORMATS_HELP}"),
    gender: Literal["male", "female"] | None = Form(None, description="neutral voice baseline (default: by pitch)"),
    transcript: str | None = Form(None, description="the diary's words: skips speech-to-text"),
    language: str | None = Form(None, description="speech-to-text language, one of [server] languages "
                                                  "(a 422 names them)"),
    user: User = Depends(current_user),
    store: Store = Depends(_store),
) -> AnalysisCreated:
    """Queue a recording for analysis."""
    state = request.app.state
    server = state.server
    if language is not None and language not in server.languages:
        raise HTTPException(422, f"language must be one of {list(server.languages)}")
    transcript = (transcript or "").strip() or None
    if transcript is not None and len(transcript) > server.max_transcript_chars:
        raise HTTPException(413, f"transcript too long: the limit is {server.max_transcript_chars} characters")
    if (open_jobs := store.open_jobs(user.id)) >= server.max_queued_per_user:
        raise HTTPException(429, f"too many analyses waiting: {open_jobs} queued or running, the limit is "
                                 f"{server.max_queued_per_user}; upload again when one is done")
    part = state.incoming / f"{uuid.uuid4().hex}.part"
    try:
        _receive(file, part, server.max_upload_bytes)
        _check_quota(store, user, state.uploads, part.stat().st_size, server.max_stored_bytes_per_user)
        try:
            seconds = declared_duration(part)
        except InputError as exc:
            raise HTTPException(415, f"not a usable recording: {exc.problem}") from exc
        if seconds > server.max_duration_s:
            raise HTTPException(413, f"recording too long: {seconds:.0f} s, the limit is {server.max_duration_s:.0f} s")
        row = store.create(user.id, (file.filename or "upload")[-200:], gender, language, transcript)
        part.replace(state.uploads / row.id)
    finally:
        part.unlink(missing_ok=True)
    state.workers.submit(row.id)
    url = str(request.url_for("status", analysis_id=row.id))
    response.headers["Location"] = url
    return AnalysisCreated(id=row.id, status=row.status, url=url)


@router.get("/v1/analyses/{analysis_id}", name="status", response_model=AnalysisStatus, responses=_OWN)
def status(row: Analysis = Depends(own)) -> AnalysisStatus:
    """Where an analysis stands, with its report once it is done."""
    return AnalysisStatus(
        id=row.id, status=row.status, filename=row.filename, error=row.error,
        created=row.created.replace(tzinfo=timezone.utc), updated=row.updated.replace(tzinfo=timezone.utc),
        report=DiaryReport.model_validate_json(row.report_json) if row.report_json else None,
    )


@router.get("/v1/analyses/{analysis_id}/report.html", response_class=HTMLResponse,
            responses={code: _JSON_ERROR for code in (401, 404, 409)})
def report_html(row: Analysis = Depends(own)) -> HTMLResponse:
    """The report as one self-contained HTML page (409 until the analysis is done)."""
    from fusion.html_report import render_html

    if row.status != DONE:
        raise HTTPException(409, f"the analysis is {row.status}" + (f": {row.error}" if row.error else ""))
    return HTMLResponse(render_html(DiaryReport.model_validate_json(row.report_json)))


@router.delete("/v1/analyses/{analysis_id}", status_code=204, response_class=Response, responses=_OWN)
def remove(request: Request, row: Analysis = Depends(own), store: Store = Depends(_store)) -> Response:
    """Delete an analysis with its recording and report."""
    store.delete(row.id)
    (request.app.state.uploads / row.id).unlink(missing_ok=True)
    return Response(status_code=204)


def _receive(file: UploadFile, dest: Path, limit: int) -> None:
    """Copy the upload to ``dest`` within ``limit`` bytes; refuse it unless its first bytes name an audio container."""
    size = 0
    with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        while chunk := file.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, too_large(limit))
            out.write(chunk)
    if size == 0:
        raise HTTPException(422, "the uploaded file is empty")
    if container_format(dest) is None:
        raise HTTPException(415, f"not an audio recording: the content is none of {FORMATS_HELP}")


def _check_quota(store: Store, user: User, uploads: Path, size: int, limit: int) -> None:
    """507 when this upload would take the user's stored recordings past ``limit`` bytes."""
    stored = sum(p.stat().st_size for p in (uploads / i for i in store.analysis_ids(user.id)) if p.is_file())
    if stored + size > limit:
        raise HTTPException(507, f"storage quota exceeded: {stored / 1e6:.1f} MB stored and {size / 1e6:.1f} MB more "
                                 f"would pass the limit of {limit / 1e6:.1f} MB; delete old analyses first")
