"""The service's database: users with hashed bearer tokens, and one row per analysis job.

Any SQLAlchemy URL works (SQLite by default, PostgreSQL in production). The row is
the job's truth: a server that dies mid-job finds it ``queued``/``running`` on the
next start and runs it again (or fails it with a reason). Each run claims the row
with a fresh ``claim`` token and only the holder of the current claim may finish it,
so a stale worker can never overwrite a newer result.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timezone

from sqlalchemy import ForeignKey, Integer, String, Text, create_engine, delete, event, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so one SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _Base(DeclarativeBase):
    pass


class User(_Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created: Mapped[datetime] = mapped_column(default=_now)


class Analysis(_Base):
    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    transcript: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    report_json: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=_now)
    updated: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class Store:
    """Short transactions over one engine; safe to share between the request and worker threads."""

    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.engine, "connect", lambda conn, _: conn.execute("PRAGMA journal_mode=WAL"))
        _Base.metadata.create_all(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def add_user(self, name: str, token: str | None = None) -> str:
        """Create (or, with ``token``, upsert) a user; returns the token, which is stored only hashed."""
        given, token = token, token or secrets.token_urlsafe(32)
        with self.session() as s, s.begin():
            user = s.scalar(select(User).where(User.name == name))
            if user is not None and given is None:
                raise ValueError(f"user {name!r} exists already")
            if user is None:
                s.add(User(name=name, token_hash=hash_token(token)))
            else:
                user.token_hash = hash_token(token)
        return token

    def user_for_token(self, token: str) -> User | None:
        with self.session() as s:
            return s.scalar(select(User).where(User.token_hash == hash_token(token)))

    def create(self, user_id: int, filename: str, gender: str | None, language: str | None,
               transcript: str | None) -> Analysis:
        row = Analysis(id=uuid.uuid4().hex, user_id=user_id, status=QUEUED, filename=filename,
                       gender=gender, language=language, transcript=transcript)
        with self.session() as s, s.begin():
            s.add(row)
        return row

    def get(self, analysis_id: str, user_id: int | None = None) -> Analysis | None:
        with self.session() as s:
            row = s.get(Analysis, analysis_id)
        return row if row is not None and (user_id is None or row.user_id == user_id) else None

    def claim(self, analysis_id: str) -> str | None:
        """Mark a queued job running under a new claim; None when it is gone or not queued."""
        claim = uuid.uuid4().hex
        with self.session() as s, s.begin():
            done = s.execute(update(Analysis).where(Analysis.id == analysis_id, Analysis.status == QUEUED)
                             .values(status=RUNNING, claim=claim, attempts=Analysis.attempts + 1))
        return claim if done.rowcount == 1 else None

    def finish(self, analysis_id: str, claim: str, *, report_json: str | None = None, error: str | None = None) -> bool:
        """Store the result of the run holding ``claim``; False when the job was deleted or re-claimed."""
        values = {"status": FAILED, "error": error} if error is not None else {"status": DONE, "report_json": report_json}
        with self.session() as s, s.begin():
            done = s.execute(update(Analysis).where(Analysis.id == analysis_id, Analysis.claim == claim)
                             .values(claim=None, **values))
        return done.rowcount == 1

    def fail(self, analysis_id: str, error: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Analysis).where(Analysis.id == analysis_id).values(status=FAILED, error=error, claim=None))

    def delete(self, analysis_id: str) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(Analysis).where(Analysis.id == analysis_id))

    def unfinished(self) -> list[Analysis]:
        """Jobs a previous server process left queued or running, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Analysis).where(Analysis.status.in_((QUEUED, RUNNING)))
                                  .order_by(Analysis.created)))

    def requeue(self, analysis_id: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Analysis).where(Analysis.id == analysis_id).values(status=QUEUED, claim=None))
