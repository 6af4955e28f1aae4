"""The service's database: users with hashed bearer tokens, and one row per analysis job.

Any SQLAlchemy URL works (SQLite by default, PostgreSQL in production); SQLite's connection
options and PRAGMAs go to SQLite only, and a database that cannot be opened is a ``DatabaseError``
naming its URL with the password hidden. Users come
from ``fusion serve add-user`` or from ``[server.tokens]`` ("static": they follow the
config on every start, so a token removed there stops working). The row is
the job's truth: a server that dies mid-job finds it ``queued``/``running`` on the
next start and runs it again (or fails it with a reason). Each run claims the row
with a fresh ``claim`` token and only the holder of the current claim may finish it,
so a stale worker can never overwrite a newer result.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from fusion.errors import FusionError

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class DatabaseError(FusionError):
    """The configured database cannot be opened; names its URL with the password hidden."""

    kind = "database"


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
    static: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("FALSE"))
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
        try:
            parsed = make_url(url)
        except ArgumentError:  # not repeated: it may hold a password
            raise DatabaseError("[server] database_url is not a SQLAlchemy URL "
                                "(dialect+driver://user:password@host/database)") from None
        self.sqlite = parsed.get_backend_name() == "sqlite"
        shown = parsed.render_as_string(hide_password=True)
        try:
            if self.sqlite:
                _private_file(parsed.database)
            self.engine = create_engine(parsed, **engine_arguments(parsed))
            if self.sqlite:
                event.listen(self.engine, "connect", _sqlite_pragmas)
            _Base.metadata.create_all(self.engine)
            if "static" not in {c["name"] for c in inspect(self.engine).get_columns("users")}:  # a database from before
                with self.engine.begin() as conn:
                    conn.execute(text("ALTER TABLE users ADD COLUMN static BOOLEAN NOT NULL DEFAULT FALSE"))
        except ImportError as exc:
            raise DatabaseError(f"cannot open the database {shown}: its driver is not installed ({exc})") from None
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).partition("\n")[0]  # the driver's words, not SQLAlchemy's
            raise DatabaseError(f"cannot open the database {shown}: {reason}") from None

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Checkpoint and close every connection (SQLite then folds its WAL back and removes it)."""
        self.compact()
        self.engine.dispose()

    def compact(self) -> None:
        """SQLite: copy the write-ahead log into the (secure-deleting) database and empty it, so deleted rows
        are gone from the disk, not only from the tables."""
        if self.sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_user(self, name: str, token: str | None = None) -> str:
        """Create a user; returns the token, which is stored only hashed."""
        token = token or secrets.token_urlsafe(32)
        with self.session() as s, s.begin():
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise ValueError(f"user {name!r} exists already")
            s.add(User(name=name, token_hash=hash_token(token)))
        return token

    def sync_static(self, tokens: dict[str, str]) -> list[str]:
        """Make the static users exactly ``tokens`` (name → token); returns the names whose token was revoked."""
        with self.session() as s, s.begin():
            for name, token in tokens.items():
                user = s.scalar(select(User).where(User.name == name))
                if user is None:
                    s.add(User(name=name, token_hash=hash_token(token), static=True))
                else:
                    user.token_hash, user.static = hash_token(token), True
            gone = list(s.scalars(select(User).where(User.static, User.name.not_in(list(tokens)))))
            for user in gone:
                user.token_hash, user.static = _revoked(), False
        return [user.name for user in gone]

    def rotate_token(self, name: str) -> str:
        """A new token for ``name``; the old one stops working at once."""
        token = secrets.token_urlsafe(32)
        with self.session() as s, s.begin():
            user = s.scalar(select(User).where(User.name == name))
            if user is None:
                raise ValueError(f"no user {name!r}")
            if user.static:
                raise ValueError(f"user {name!r} has a static token from [server.tokens]: change it there")
            user.token_hash = hash_token(token)
        return token

    def remove_user(self, name: str) -> list[Analysis]:
        """Delete ``name`` and all their analyses; returns the deleted analyses (their uploads are the caller's)."""
        with self.session() as s, s.begin():
            user = s.scalar(select(User).where(User.name == name))
            if user is None:
                raise ValueError(f"no user {name!r}")
            rows = list(s.scalars(select(Analysis).where(Analysis.user_id == user.id)))
            s.execute(delete(Analysis).where(Analysis.user_id == user.id))
            s.delete(user)
        self.compact()
        return rows

    def open_jobs(self, user_id: int) -> int:
        """How many of the user's analyses are queued or running."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Analysis)
                            .where(Analysis.user_id == user_id, Analysis.status.in_((QUEUED, RUNNING))))

    def analysis_ids(self, user_id: int) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Analysis.id).where(Analysis.user_id == user_id)))

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
        values = ({"status": FAILED, "error": error} if error is not None
                  else {"status": DONE, "report_json": report_json})
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
        self.compact()

    def unfinished(self) -> list[Analysis]:
        """Jobs a previous server process left queued or running, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Analysis).where(Analysis.status.in_((QUEUED, RUNNING)))
                                  .order_by(Analysis.created)))

    def requeue(self, analysis_id: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Analysis).where(Analysis.id == analysis_id).values(status=QUEUED, claim=None))


def engine_arguments(url: URL) -> dict:
    """``create_engine`` options for ``url``: SQLite's connection options and a pre-ping for server databases
    (whose connections a restart of the server drops)."""
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(conn, _record) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # freed pages are overwritten, so a deleted transcript is not left in the file
    conn.execute("PRAGMA secure_delete=ON")


def _private_file(path: str | None) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its -wal and -shm files the same mode)."""
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _revoked() -> str:
    """A token hash no token has (not hex), unique per revoked user."""
    return "revoked-" + secrets.token_hex(28)
