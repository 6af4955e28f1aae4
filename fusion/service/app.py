"""``fusion serve``: the HTTP service an app backend uploads diary recordings to.

``create_app(config)`` builds the FastAPI app around the endpoints of ``fusion.service.routes``: the
database (``fusion.service.store``), the storage folders and the worker threads (``fusion.service.jobs``)
that share one set of loaded models (``fusion.pipeline.analyze``) live for the app's lifespan in
``app.state``; a gate in front refuses an unknown token or an oversized body before any of it is read.
Its one bound holds for every POST: one recording with its form fields. A baseline's calm recordings
(``POST /v1/baseline``) must fit in it together, which the route checks again file by file.
The worker decodes through the same demuxer the upload check used (``fusion.audio.open_audio``) and stops
at ``max_duration_s``, whatever the header said.
"""

from __future__ import annotations

import copy
import fcntl
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from fusion.config import Config, ServerConfig, default_config
from fusion.errors import FusionError
from fusion.html_report import PLOTLY_URL, plotly_js_path
from fusion.report import DiaryReport
from fusion.service import baselines
from fusion.service.jobs import Workers
from fusion.service.routes import NO_TOKEN, router, too_large
from fusion.service.store import Store

log = logging.getLogger(__name__)


class StorageError(FusionError):
    """The storage folder cannot be made or used (a file by that name, no permission)."""

    kind = "storage"

# Multipart framing and the small form fields around the file.
_FORM_OVERHEAD = 64 * 1024
# How Starlette's multipart parser words (in a 400) a form field over its size limit (1 MB).
_FIELD_OVER_LIMIT = "Part exceeded maximum size"


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


async def _http_error(request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's answer to an HTTPException, but a form field over Starlette's size limit is a 413 (too large) as
    every other oversized part of a request, not its 400."""
    if exc.status_code == 400 and str(exc.detail).startswith(_FIELD_OVER_LIMIT):
        exc = StarletteHTTPException(413, f"form field too large ({exc.detail.rstrip('.')})")
    return await http_exception_handler(request, exc)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": NO_TOKEN}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def create_app(config: Config | None = None, analyze: Callable[..., DiaryReport] | None = None) -> FastAPI:
    """The service for ``config`` (default: configs/default.toml); ``analyze`` defaults to the pipeline's."""
    config = config or default_config()
    server: ServerConfig = config.server
    root = storage(server)
    store = Store(server.database())
    if analyze is None:
        from fusion.pipeline import analyze
    workers = Workers(store, config, root, analyze)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for name in store.sync_static(server.tokens):
            log.warning("user %s: token revoked (no longer in [server.tokens])", name)
        if swept := sweep_incoming(root / "incoming"):
            log.warning("removed %d unfinished uploads a stopped server left in %s", swept, root / "incoming")
        workers.recover()
        yield
        workers.close()
        store.close()

    app = FastAPI(title="fusion", summary="Words and voice of a spoken diary, fused.", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.store, app.state.workers, app.state.server, app.state.config = store, workers, server, config
    app.state.uploads, app.state.incoming = root / "uploads", root / "incoming"
    app.state.baseline_builds = baselines.Builds(server.max_baseline_builds)
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI served from the installed bundle: the docs page works on a closed network."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="fusion API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png",
                                   # no badge calling validator.swagger.io
                                   swagger_ui_parameters={"validatorUrl": None})

    def authorized(header: bytes | None) -> bool:
        scheme, _, token = (header or b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and store.user_for_token(token.strip()) is not None

    @app.get(PLOTLY_URL, include_in_schema=False)
    def plotly_js() -> FileResponse:
        """plotly.js of the installed plotly package, which the report and timeline pages load: one cached copy
        instead of 4.8 MB inside every page (no user data: served without a token)."""
        return FileResponse(plotly_js_path(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(_Gate, limit=server.max_upload_bytes + 4 * server.max_transcript_chars + _FORM_OVERHEAD,
                       message=too_large(server.max_upload_bytes), authorized=authorized)
    return app


def storage(server: ServerConfig) -> Path:
    """The storage folder with its uploads/, incoming/ and workers/ (each service process's mark), private to the
    owner (an existing folder open to others is tightened to 0700, with a warning)."""
    root = server.storage_path()
    for folder in (root, root / "uploads", root / "incoming", root / "workers"):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if (mode := folder.stat().st_mode & 0o777) & 0o077:
                log.warning("%s was open to other users (mode %o); tightening it to 0700", folder, mode)
                folder.chmod(0o700)
        except OSError as exc:
            raise StorageError(f"cannot use {folder} as [server] storage_dir folder: "
                               f"{exc.strerror or exc}") from None
    return root


def sweep_incoming(folder: Path) -> int:
    """Remove the received uploads no request holds (each request locks its own): a process killed mid-upload
    left them, the user's audio under no analysis. Returns how many went."""
    gone = 0
    for path in folder.iterdir():
        try:
            with path.open("rb") as held:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
                gone += 1
        except OSError:  # held by a request (BlockingIOError), or gone meanwhile
            continue
    return gone


def remove_user(config: Config, name: str) -> tuple[int, int, int, int]:
    """Delete a user with their token, analyses, baselines (every version) and stored recordings; returns
    (analyses, reports, recordings, baseline versions) removed. An upload of theirs in flight finds them gone
    (401) and removes its own file; parts left by a killed server go too."""
    root = storage(config.server)
    uploads = root / "uploads"
    sweep_incoming(root / "incoming")
    store = Store(config.server.database())
    try:
        rows, baselines = store.remove_user(name)
    finally:
        store.close()
    recordings = [uploads / row.id for row in rows if (uploads / row.id).is_file()]
    for path in recordings:
        path.unlink(missing_ok=True)  # a worker may drop a finished job's recording meanwhile
    return len(rows), sum(row.report_json is not None for row in rows), len(recordings), baselines


def serve(config: Config | None = None) -> None:
    """Run the service with uvicorn on ``[server]`` host and port until interrupted; the service's own log
    lines go out with uvicorn's."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["fusion"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config = config or default_config()
    uvicorn.run(create_app(config), host=config.server.host, port=config.server.port, log_level="info",
                log_config=log_config)
