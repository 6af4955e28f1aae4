"""The bodies the service sends, as pydantic models: each route names its own, so /openapi.json documents it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fusion.report import DiaryReport


class Health(BaseModel):
    """The service is up and answering."""

    status: Literal["ok"] = "ok"


class ErrorBody(BaseModel):
    """Why a request was refused (every error the service raises itself has this shape)."""

    detail: str = Field(description="what was wrong, and the limit where one applies")


class AnalysisCreated(BaseModel):
    """An upload accepted and queued; poll ``url`` (also sent as the Location header) for its status."""

    id: str
    status: Literal["queued"]
    url: str


class AnalysisStatus(BaseModel):
    """One analysis: where it stands, and its report once it is done."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str = Field(description="the uploaded file's name, as the client sent it")
    error: str | None = Field(description="why the analysis failed (failed only)")
    created: datetime
    updated: datetime
    report: DiaryReport | None = Field(description="the diary's report (done only)")
