"""The service's endpoints: an upload is checked on the request path, queued, then read back as JSON or HTML.

An upload is checked for size, format (sniffed from its first bytes) and declared duration, stored under a
generated name in ``[server].storage_dir`` and handed to the workers (``fusion.service.jobs``). Nothing a
client sends ever becomes part of a file path. The app (``fusion.service.app``) keeps the store, the
workers, the ``[server]`` config and the storage folders in ``app.state``; the dependencies below read them.
A new endpoint is its response model in ``schemas.py``, its function here and its test.

Each diary has a recording time (``recorded_at`` with the upload, else the upload's own), which orders the
caller's timeline (``/v1/timeline``) and export (``/v1/export``); ``/v1/baseline`` shows, makes or drops the
caller's neutral voice baseline (``fusion.service.baselines``).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fusion import history
from fusion.audio import container_format, declared_duration, load_audio
from fusion.dates import parse_time, recording_problem, utc
from fusion.errors import InputError
from fusion.report import DiaryReport
from fusion.service import baselines
from fusion.service.schemas import (
    AnalysisCreated,
    AnalysisStatus,
    BaselineInfo,
    ErrorBody,
    ExportLine,
    Health,
    Timeline,
)
from fusion.service.store import DONE, PERSONAL, Store, UserGone
from fusion.service.tables import Analysis, User
from fusion.voice.prosody import BaselineError, baseline_from_stats, voice_stats

CHUNK = 1 << 20
NO_TOKEN = "missing or unknown bearer token"
FORMATS_HELP = "WAV, FLAC, MP3, AAC, M4A/MP4, OGG/Opus, WebM/Matroska, AIFF or CAF"

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)
_OWN = {401: {"model": ErrorBody}, 404: {"model": ErrorBody}}
# A POST's multipart body that cannot be parsed (malformed, too many fields or files) is a 400.
_UPLOAD_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 415)}
# The HTML page's errors are JSON all the same (a model here would be filed under text/html).
_JSON_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit / 1e6:.1f} MB"


def invalid(where: str, field: str, message: str) -> RequestValidationError:
    """A 422 of a route's own check in the body FastAPI gives its validation errors (``HTTPValidationError``),
    so every 422 has the one documented shape."""
    return RequestValidationError([{"type": "value_error", "loc": (where, field), "msg": message}])


class NDJSONResponse(StreamingResponse):
    """JSON lines, sent as they are made."""

    media_type = "application/x-ndjson"


class _JSONLines(JSONResponse):
    """Only for the documentation of a route answering ``NDJSONResponse``: its media type, and its 200 model as
    the schema of each line (FastAPI documents a model of a non-JSON response class as a string)."""

    media_type = NDJSONResponse.media_type


def _store(request: Request) -> Store:
    return request.app.state.store


def _no_token() -> HTTPException:
    return HTTPException(401, NO_TOKEN, headers={"WWW-Authenticate": "Bearer"})


def current_user(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                 store: Store = Depends(_store)) -> User:
    user = store.user_for_token(credentials.credentials) if credentials else None
    if user is None:
        raise _no_token()
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
             responses={**_UPLOAD_ERRORS, **{code: {"model": ErrorBody} for code in (429, 507)}})
def create(
    request: Request,
    response: Response,
    file: UploadFile = File(..., description=f"the recording: {FORMATS_HELP}"),
    gender: Literal["male", "female"] | None = Form(None, description="neutral voice baseline (default: by pitch)"),
    transcript: str | None = Form(None, description="the diary's words: skips speech-to-text"),
    language: str | None = Form(None, description="speech-to-text language, one of [server] languages "
                                                  "(a 422 names them)"),
    recorded_at: str | None = Form(None, description="when the diary was recorded, ISO 8601 (without a zone: UTC; "
                                                     "at most a day ahead); default: now"),
    user: User = Depends(current_user),
    store: Store = Depends(_store),
) -> AnalysisCreated:
    """Queue a recording for analysis."""
    state = request.app.state
    server = state.server
    when = _recording_time(recorded_at)
    if language is not None and language not in server.languages:
        raise invalid("body", "language", f"language must be one of {list(server.languages)}")
    transcript = (transcript or "").strip() or None
    if transcript is not None and len(transcript) > server.max_transcript_chars:
        raise HTTPException(413, f"transcript too long: the limit is {server.max_transcript_chars} characters")
    _check_queue(store.open_jobs(user.id), server.max_queued_per_user)  # early, before the body: checked again below
    analysis_id = uuid.uuid4().hex
    stored = state.uploads / analysis_id
    with _part(state.incoming) as part:
        _accept(file, part, request, server.max_upload_bytes, too_large(server.max_upload_bytes))
        size = part.stat().st_size

        def admit(open_jobs: int, ids: list[str]) -> None:
            """Under the user's lock: the limits, then the recording in place, so the next upload counts it."""
            _check_queue(open_jobs, server.max_queued_per_user)
            _check_quota(state.uploads, ids, size, server.max_stored_bytes_per_user)
            part.replace(stored)

        try:
            row = store.create(user.id, _name(file), gender, language, transcript, when,
                               analysis_id=analysis_id, admit=admit)
        except UserGone:
            raise _no_token() from None
        except BaseException:
            stored.unlink(missing_ok=True)  # placed, but the row was not written
            raise
    state.workers.submit(row.id)
    url = _link(request, "status", analysis_id=row.id)
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
def report_html(request: Request, row: Analysis = Depends(own)) -> HTMLResponse:
    """The report as an HTML page that loads plotly.js from this service (409 until the analysis is done)."""
    from fusion.html_report import PLOTLY_URL, render_html

    if row.status != DONE:
        raise HTTPException(409, f"the analysis is {row.status}" + (f": {row.error}" if row.error else ""))
    return HTMLResponse(render_html(DiaryReport.model_validate_json(row.report_json), request.app.state.config,
                                    plotly_js=PLOTLY_URL))


@router.delete("/v1/analyses/{analysis_id}", status_code=204, response_class=Response, responses=_OWN)
def remove(request: Request, row: Analysis = Depends(own), store: Store = Depends(_store)) -> Response:
    """Delete an analysis with its recording and report (and the automatic baselines built from it)."""
    store.delete(row.id, then=partial(baselines.forget_diary, store=store, user_id=row.user_id, analysis_id=row.id,
                                      config=request.app.state.config))
    (request.app.state.uploads / row.id).unlink(missing_ok=True)
    return Response(status_code=204)


_FROM = Query(None, alias="from", description="first recording time shown, ISO 8601 (without a zone: UTC; a date "
                                             "alone: its midnight)")
_TO = Query(None, alias="to", description="last recording time shown, ISO 8601 (inclusive; a date alone: its midnight)")


@router.get("/v1/timeline", response_model=Timeline, responses={401: {"model": ErrorBody}})
def timeline(request: Request, start: datetime | None = _FROM, end: datetime | None = _TO,
             user: User = Depends(current_user), store: Store = Depends(_store)) -> Timeline:
    """The caller's done diaries in recording order (each linking its report page), their ISO weeks, and the drift
    alert as of the last one shown; ``voice_lower_than_usual`` marks the diaries where it was raised."""
    start, end = (None if t is None else utc(t) for t in (start, end))
    if start is not None and end is not None and start > end:
        raise invalid("query", "from", "from is later than to")
    cfg = request.app.state.config.history
    entries = history.timeline((e.model_copy(update={"url": _link(request, "report_html", analysis_id=e.id)})
                                for e in store.entries(user.id)), cfg)
    upto = [e for e in entries if end is None or e.recorded_at <= end]
    shown = [e for e in upto if start is None or e.recorded_at >= start]
    return Timeline(entries=shown, weeks=history.weekly(shown),
                    trend=history.trend_alert(upto, cfg) if shown else None)


@router.get("/v1/timeline.html", response_class=HTMLResponse, responses={401: _JSON_ERROR})
def timeline_html(request: Request, start: datetime | None = _FROM, end: datetime | None = _TO,
                  user: User = Depends(current_user), store: Store = Depends(_store)) -> HTMLResponse:
    """The caller's timeline as a page: words against voice over the days, alert markers, the weeks, and each
    diary linking its report page (plotly.js loads from this service)."""
    from fusion.history_html import render_timeline
    from fusion.html_report import PLOTLY_URL

    shown = timeline(request, start, end, user, store)
    return HTMLResponse(render_timeline(shown.entries, shown.weeks, shown.trend, plotly_js=PLOTLY_URL,
                                        config=request.app.state.config))


@router.get("/v1/export", response_class=_JSONLines,
            responses={200: {"model": ExportLine, "description": "one ExportLine per line, in recording order"},
                       401: _JSON_ERROR})
def export(user: User = Depends(current_user), store: Store = Depends(_store)) -> NDJSONResponse:
    """Every analysis of the caller with its report, one JSON line each (``application/x-ndjson``), streamed."""
    ids = [analysis_id for analysis_id, _ in store.analyses(user.id)]

    def lines() -> Iterator[str]:
        for analysis_id in ids:
            row = store.get(analysis_id, user.id)
            if row is None:
                continue  # deleted while the export ran
            line = ExportLine(id=row.id, filename=row.filename, recorded_at=row.when, status=row.status,
                              error=row.error,
                              report=DiaryReport.model_validate_json(row.report_json) if row.report_json else None)
            yield line.model_dump_json() + "\n"

    return NDJSONResponse(lines())


@router.get("/v1/baseline", response_model=BaselineInfo, responses={401: {"model": ErrorBody}})
def baseline(request: Request, user: User = Depends(current_user), store: Store = Depends(_store)) -> BaselineInfo:
    """The baseline the caller's next diary (uploaded without ``gender``) will be measured against: their latest
    hand-made one, else the one built from their own diaries, else the service's reference."""
    config = request.app.state.config
    return baselines.describe(*baselines.current(store, user.id, config), config)


@router.post("/v1/baseline", status_code=201, response_model=BaselineInfo,
             responses=_UPLOAD_ERRORS)
def make_baseline(
    request: Request,
    files: list[UploadFile] = File(..., description=f"2 or more calm recordings of the caller (at most [server] "
                                                    f"max_baseline_files, together no larger than one upload): "
                                                    f"{FORMATS_HELP}"),
    user: User = Depends(current_user),
    store: Store = Depends(_store),
) -> BaselineInfo:
    """Make the caller's own baseline from calm recordings; their diaries are measured against it from now on
    (a new version each time; the recordings themselves are not kept)."""
    state = request.app.state
    server, config = state.server, state.config
    if not 2 <= len(files) <= server.max_baseline_files:
        raise invalid("body", "files",
                      f"a baseline takes 2 to {server.max_baseline_files} recordings, got {len(files)}")
    message = f"baseline recordings too large: together the limit is {server.max_upload_bytes / 1e6:.1f} MB"
    with ExitStack() as held:
        held.enter_context(state.baseline_builds.hold(user.id))
        parts = [held.enter_context(_part(state.incoming)) for _ in files]
        used, seconds = 0, 0.0
        for file, part in zip(files, parts):
            try:
                seconds += _accept(file, part, request, server.max_upload_bytes - used, message,
                                   server.max_duration_s - seconds)
            except HTTPException as exc:
                raise HTTPException(exc.status_code, f"{_name(file)}: {exc.detail}") from exc
            used += part.stat().st_size
        stats = []  # what build_baseline does, one decoded recording in memory at a time
        decoded = 0.0
        for file, part in zip(files, parts):
            try:
                audio = load_audio(part, max_duration_s=server.max_duration_s - decoded)
            except InputError as exc:
                raise HTTPException(415, f"{_name(file)}: not a usable recording: {exc.problem}") from exc
            decoded += audio.duration
            stats.append(voice_stats(audio.samples, config.audio, audio.sample_rate))
            del audio
        try:
            built = baseline_from_stats(stats, PERSONAL, sources=[_name(f) for f in files])
        except BaselineError as exc:
            raise invalid("body", "files", str(exc)) from exc
    try:
        row = store.add_baseline(user.id, PERSONAL, len(stats), built.to_json())
    except UserGone:
        raise _no_token() from None
    return baselines.describe(built, row, config)


@router.delete("/v1/baseline", status_code=204, response_class=Response, responses={401: {"model": ErrorBody}})
def drop_baseline(user: User = Depends(current_user), store: Store = Depends(_store)) -> Response:
    """Remove the caller's hand-made baselines (every version): their diaries go back to the automatic one."""
    store.remove_baselines(user.id, PERSONAL)
    return Response(status_code=204)


def _link(request: Request, name: str, **params: str) -> str:
    """The URL of the route ``name``: under ``[server] public_url``, else a path from the API root; never built from
    the Host header, which is the client's to choose."""
    base = request.app.state.server.public_url.rstrip("/") or request.scope.get("root_path", "")
    return base + request.app.url_path_for(name, **params)


def _recording_time(value: str | None) -> datetime:
    """``recorded_at`` as given (aware UTC; a time without a zone is UTC), or now; 422 when unreadable, before 1970 or
    more than a day ahead."""
    if value is None or not value.strip():
        return datetime.now(timezone.utc)
    try:
        moment = parse_time(value)
    except ValueError:
        raise invalid("body", "recorded_at", f"recorded_at is not an ISO 8601 time: {value[:40]!r}") from None
    if problem := recording_problem(moment):
        raise invalid("body", "recorded_at", f"recorded_at {problem}")
    return moment


@contextmanager
def _part(folder: Path) -> Iterator[Path]:
    """A new file in ``folder`` for one received upload, locked while this request holds it (so a start's sweep,
    ``fusion.service.app.sweep_incoming``, removes only the parts of killed processes) and removed after."""
    path = folder / f"{uuid.uuid4().hex}.part"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _accept(file: UploadFile, part: Path, request: Request, limit: int, message: str,
            max_seconds: float | None = None) -> float:
    """Receive ``file`` into ``part`` and check it as a recording: at most ``limit`` bytes (else 413 ``message``),
    an audio container by its first bytes, declaring no more than ``max_seconds`` (default ``[server]
    max_duration_s``); returns the seconds it declares."""
    max_seconds = request.app.state.server.max_duration_s if max_seconds is None else max_seconds
    _receive(file, part, limit, message)
    try:
        seconds = declared_duration(part)
    except InputError as exc:
        raise HTTPException(415, f"not a usable recording: {exc.problem}") from exc
    if seconds > max_seconds:
        raise HTTPException(413, f"recording too long: {seconds:.0f} s, the limit is {max_seconds:.0f} s")
    return seconds


def _name(file: UploadFile) -> str:
    """An upload's file name as an error message may quote it."""
    return (file.filename or "upload")[-200:]


def _receive(file: UploadFile, dest: Path, limit: int, message: str) -> None:
    """Copy the upload to ``dest`` within ``limit`` bytes (else 413 ``message``); refuse it unless its first bytes
    name an audio container."""
    size = 0
    with dest.open("wb") as out:
        while chunk := file.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, message)
            out.write(chunk)
    if size == 0:
        raise invalid("body", "file", "the uploaded file is empty")
    if container_format(dest) is None:
        raise HTTPException(415, f"not an audio recording: the content is none of {FORMATS_HELP}")


def _check_queue(open_jobs: int, limit: int) -> None:
    """429 when the user has ``limit`` analyses queued or running already."""
    if open_jobs >= limit:
        raise HTTPException(429, f"too many analyses waiting: {open_jobs} queued or running, the limit is {limit}; "
                                 "upload again when one is done")


def _check_quota(uploads: Path, ids: list[str], size: int, limit: int) -> None:
    """507 when ``size`` more bytes would take the stored recordings of the analyses ``ids`` past ``limit``."""
    stored = sum(p.stat().st_size for p in (uploads / i for i in ids) if p.is_file())
    if stored + size > limit:
        raise HTTPException(507, f"storage quota exceeded: {stored / 1e6:.1f} MB stored and {size / 1e6:.1f} MB more "
                                 f"would pass the limit of {limit / 1e6:.1f} MB; delete old analyses first")
