"""The service's tables: users, one row per analysis job, and each user's versioned baselines.

A done analysis keeps, beside its full report, the compact row that later work reads instead: its
``TimelineEntry`` (time, duration, words' and voice's valence-arousal, prosody, alert kinds) and its
``VoiceStats``, so a job or a timeline never parses a report again.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fusion.config import USER_NAME_MAX


def now() -> datetime:
    """The current time as the database keeps times: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}  # a removed user's id is never given to the next one

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_MAX), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    static: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("FALSE"))
    # the user's latest baseline version: versions only count up, also past deleted ones
    baseline_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created: Mapped[datetime] = mapped_column(default=now)


class Analysis(Base):
    __tablename__ = "analyses"
    # a user's diaries by recording time: what a job's drift alert and automatic baseline read, however many
    __table_args__ = (Index("ix_analyses_user_recorded", "user_id", "recorded_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    transcript: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(32))  # the service process that claimed it last
    error: Mapped[str | None] = mapped_column(Text)
    report_json: Mapped[str | None] = mapped_column(Text)
    voice_stats: Mapped[str | None] = mapped_column(Text)  # VoiceStats.to_dict() as JSON (done only)
    entry_json: Mapped[str | None] = mapped_column(Text)  # the diary's history.TimelineEntry as JSON (done only)
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)  # UTC; None in rows from before
    created: Mapped[datetime] = mapped_column(default=now)
    updated: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    @property
    def when(self) -> datetime:
        """When the diary was recorded, as an aware UTC time (rows from before the column: their upload time)."""
        return (self.recorded_at or self.created).replace(tzinfo=timezone.utc)


class Baseline(Base):
    """One version of a user's neutral baseline (versions count up per user over both kinds, never reused)."""

    __tablename__ = "baselines"
    __table_args__ = (UniqueConstraint("user_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # PERSONAL or PERSONAL_AUTO
    recordings: Mapped[int] = mapped_column(Integer)  # diaries (personal-auto) or calm clips (personal)
    since: Mapped[datetime | None] = mapped_column(DateTime)  # personal-auto: the earliest diary's recorded_at (UTC)
    sources: Mapped[str | None] = mapped_column(Text)  # personal-auto: JSON list of the diaries' ids, sorted
    baseline_json: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=now)
