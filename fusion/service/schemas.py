"""The bodies the service sends, as pydantic models: each route names its own, so /openapi.json documents it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fusion.history import TimelineEntry, WeekSummary
from fusion.report import DiaryReport, TrendAlert


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
    url: str = Field(description="the analysis: under [server] public_url, else a path from the API root")


class AnalysisStatus(BaseModel):
    """One analysis: where it stands, and its report once it is done."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str = Field(description="the uploaded file's name, as the client sent it")
    error: str | None = Field(description="why the analysis failed (failed only)")
    created: datetime
    updated: datetime
    report: DiaryReport | None = Field(description="the diary's report (done only)")


class BaselineInfo(BaseModel):
    """A neutral voice baseline of the caller: the one their next diary (uploaded without ``gender``) is measured
    against, or one just made."""

    kind: Literal["personal", "personal-auto", "reference"] = Field(
        description="personal: made from calm recordings (POST /v1/baseline); personal-auto: built from the "
                    "caller's own diaries; reference: the service's default")
    name: str = Field(description="what a report calls it (voice.baseline); a reference named auto is male or "
                                  "female by each diary's pitch")
    version: int | None = Field(description="the caller's baseline version (reference: none)")
    diaries: int | None = Field(description="personal-auto: how many diaries built it")
    clips: int | None = Field(description="personal: how many calm recordings built it")
    since: datetime | None = Field(description="personal-auto: when the earliest of its diaries was recorded")
    created: datetime | None = Field(description="when this version was stored (reference: none)")
    pitch_hz: float | None = Field(description="its reference pitch (median F0), where it has one")
    energy_db: float | None = Field(description="its reference level (dBFS), where it has one")


class Timeline(BaseModel):
    """The caller's done diaries in recording order, their ISO weeks and the drift alert as of the last one."""

    entries: list[TimelineEntry]
    weeks: list[WeekSummary]
    trend: TrendAlert | None = Field(description="voice_lower_than_usual as of the last entry, over every diary up "
                                                 "to it (also those before from=)")


class ExportLine(BaseModel):
    """One line of GET /v1/export: one analysis of the caller, whatever its status."""

    id: str
    filename: str
    recorded_at: datetime
    status: Literal["queued", "running", "done", "failed"]
    error: str | None
    report: DiaryReport | None
