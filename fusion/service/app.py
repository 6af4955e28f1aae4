"""``fusion serve``: the HTTP service an app backend uploads diary recordings to.

``create_app(config)`` builds the FastAPI app. An upload is checked on the request
path (size, format sniffed from its first bytes, declared duration), stored under a
generated name in ``[server].storage_dir`` and queued; worker threads sharing one set
of loaded models (``fusion.pipeline.analyze``) run it and keep the DiaryReport in the
database (``fusion.service.store``), the jobs by ``fusion.service.jobs``. The worker decodes through the same demuxer the check used
(``fusion.audio.open_audio``) and stops at ``max_duration_s``, whatever the header said.
Nothing a client sends ever becomes part of a file path.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable, Literal

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from swagger_ui_bundle import swagger_ui_path

from fusion.audio import container_format, declared_duration
from fusion.config import Config, ServerConfig, default_config
from fusion.errors import InputError
from fusion.report import DiaryReport
from fusion.service.jobs import Workers
from fusion.service.store import DONE, Analysis, Store, User

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Multipart framing and the small form fields around the file.
_FORM_OVERHEAD = 64 * 1024
_NO_TOKEN = "missing or unknown bearer token"
_FORMATS_HELP = "WAV, FLAC, MP3, AAC, M4A/MP4, OGG/Opus, WebM/Matroska, AIFF or CAF"


class _Gate:
    """ASGI wrapper for POST: an unknown bearer token (401) or a body over ``limit`` bytes (413) is refused
    before any of the body is read or spooled."""

    def __init__(self, app, limit: int, message: str, authorized: Callable[[bytes | None], bool]):
        self.app, self.limit, self.message, self.authorized = app, limit, message, authorized

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not await run_in_threadpool(self.authorized, headers.get(b"authorization")):
            return await _unauthorized()(scope, receive, send)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": _NO_TOKEN}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit / 1e6:.1f} MB"


def _status(row: Analysis) -> dict:
    return {
        "id": row.id, "status": row.status, "filename": row.filename, "error": row.error,
        "created": row.created.isoformat() + "Z", "updated": row.updated.isoformat() + "Z",
        "report": json.loads(row.report_json) if row.report_json else None,
    }


def create_app(config: Config | None = None, analyze: Callable[..., DiaryReport] | None = None) -> FastAPI:
    """The service for ``config`` (default: configs/default.toml); ``analyze`` defaults to the pipeline's."""
    config = config or default_config()
    server: ServerConfig = config.server
    root = storage(server)
    uploads, incoming = root / "uploads", root / "incoming"
    store = Store(server.database())
    if analyze is None:
        from fusion.pipeline import analyze
    workers = Workers(store, config, uploads, analyze)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for name in store.sync_static(server.tokens):
            log.warning("user %s: token revoked (no longer in [server.tokens])", name)
        workers.recover()
        yield
        workers.close()
        store.close()

    app = FastAPI(title="fusion", summary="Words and voice of a spoken diary, fused.", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.store, app.state.workers = store, workers
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI served from the installed bundle: the docs page works on a closed network."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="fusion API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge calling validator.swagger.io
    bearer = HTTPBearer(auto_error=False)

    def current_user(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> User:
        user = store.user_for_token(credentials.credentials) if credentials else None
        if user is None:
            raise HTTPException(401, _NO_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        return user

    def authorized(header: bytes | None) -> bool:
        scheme, _, token = (header or b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and store.user_for_token(token.strip()) is not None

    def own(analysis_id: str, user: User = Depends(current_user)) -> Analysis:
        row = store.get(analysis_id, user.id)
        if row is None:
            raise HTTPException(404, "no such analysis")
        return row

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/analyses", status_code=202)
    def create(
        request: Request,
        file: UploadFile = File(..., description=f"the recording: {_FORMATS_HELP}"),
        gender: Literal["male", "female"] | None = Form(None, description="neutral voice baseline (default: by pitch)"),
        transcript: str | None = Form(None, description="the diary's words: skips speech-to-text"),
        language: str | None = Form(None, description=f"speech-to-text language, one of {list(server.languages)}"),
        user: User = Depends(current_user),
    ) -> JSONResponse:
        if language is not None and language not in server.languages:
            raise HTTPException(422, f"language must be one of {list(server.languages)}")
        transcript = (transcript or "").strip() or None
        if transcript is not None and len(transcript) > server.max_transcript_chars:
            raise HTTPException(413, f"transcript too long: the limit is {server.max_transcript_chars} characters")
        if (open_jobs := store.open_jobs(user.id)) >= server.max_queued_per_user:
            raise HTTPException(429, f"too many analyses waiting: {open_jobs} queued or running, the limit is "
                                     f"{server.max_queued_per_user}; upload again when one is done")
        part = incoming / f"{uuid.uuid4().hex}.part"
        try:
            _receive(file, part, server.max_upload_bytes)
            _check_quota(store, user, uploads, part.stat().st_size, server.max_stored_bytes_per_user)
            try:
                seconds = declared_duration(part)
            except InputError as exc:
                raise HTTPException(415, f"not a usable recording: {exc.problem}") from exc
            if seconds > server.max_duration_s:
                raise HTTPException(413, f"recording too long: {seconds:.0f} s, the limit is {server.max_duration_s:.0f} s")
            row = store.create(user.id, (file.filename or "upload")[-200:], gender, language, transcript)
            part.replace(uploads / row.id)
        finally:
            part.unlink(missing_ok=True)
        workers.submit(row.id)
        url = str(request.url_for("status", analysis_id=row.id))
        return JSONResponse({"id": row.id, "status": row.status, "url": url}, status_code=202, headers={"Location": url})

    @app.get("/v1/analyses/{analysis_id}", name="status")
    def status(row: Analysis = Depends(own)) -> dict:
        return _status(row)

    @app.get("/v1/analyses/{analysis_id}/report.html", response_class=HTMLResponse)
    def report_html(row: Analysis = Depends(own)) -> HTMLResponse:
        from fusion.html_report import render_html

        if row.status != DONE:
            raise HTTPException(409, f"the analysis is {row.status}" + (f": {row.error}" if row.error else ""))
        return HTMLResponse(render_html(DiaryReport.model_validate_json(row.report_json)))

    @app.delete("/v1/analyses/{analysis_id}", status_code=204)
    def remove(row: Analysis = Depends(own)) -> Response:
        store.delete(row.id)
        (uploads / row.id).unlink(missing_ok=True)
        return Response(status_code=204)

    app.add_middleware(_Gate, limit=server.max_upload_bytes + 4 * server.max_transcript_chars + _FORM_OVERHEAD,
                       message=_too_large(server.max_upload_bytes), authorized=authorized)
    return app


def _receive(file: UploadFile, dest: Path, limit: int) -> None:
    """Copy the upload to ``dest`` within ``limit`` bytes; refuse it unless its first bytes name an audio container."""
    size = 0
    with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        while chunk := file.file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, _too_large(limit))
            out.write(chunk)
    if size == 0:
        raise HTTPException(422, "the uploaded file is empty")
    if container_format(dest) is None:
        raise HTTPException(415, f"not an audio recording: the content is none of {_FORMATS_HELP}")


def _check_quota(store: Store, user: User, uploads: Path, size: int, limit: int) -> None:
    """507 when this upload would take the user's stored recordings past ``limit`` bytes."""
    stored = sum(p.stat().st_size for p in (uploads / i for i in store.analysis_ids(user.id)) if p.is_file())
    if stored + size > limit:
        raise HTTPException(507, f"storage quota exceeded: {stored / 1e6:.1f} MB stored and {size / 1e6:.1f} MB more "
                                 f"would pass the limit of {limit / 1e6:.1f} MB; delete old analyses first")


def storage(server: ServerConfig) -> Path:
    """The storage folder with its uploads/ and incoming/, private to the owner (an existing folder open to
    others is tightened to 0700, with a warning)."""
    root = server.storage_path()
    for folder in (root, root / "uploads", root / "incoming"):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (mode := folder.stat().st_mode & 0o777) & 0o077:
            log.warning("%s was open to other users (mode %o); tightening it to 0700", folder, mode)
            folder.chmod(0o700)
    return root


def remove_user(config: Config, name: str) -> tuple[int, int, int]:
    """Delete a user, their analyses and their stored recordings; returns (analyses, reports, recordings) removed."""
    uploads = storage(config.server) / "uploads"
    store = Store(config.server.database())
    try:
        rows = store.remove_user(name)
    finally:
        store.close()
    recordings = [uploads / row.id for row in rows if (uploads / row.id).is_file()]
    for path in recordings:
        path.unlink()
    return len(rows), sum(row.report_json is not None for row in rows), len(recordings)


def serve(config: Config | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service with uvicorn until interrupted; the service's own log lines go out with uvicorn's."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["fusion"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", log_config=log_config)
