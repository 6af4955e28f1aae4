"""The service's database: users with hashed bearer tokens, one row per analysis job, and each user's baselines.

Any SQLAlchemy URL works (SQLite by default, PostgreSQL in production); SQLite's connection
options and PRAGMAs go to SQLite only, and a database that cannot be opened is a ``DatabaseError``
naming its URL with the password hidden. Users come
from ``fusion serve add-user`` or from ``[server.tokens]`` ("static": they follow the
config on every start, so a token removed there stops working). The row is
the job's truth: a server that dies mid-job finds it ``queued``/``running`` on the
next start and runs it again (or fails it with a reason). Each run claims the row
with a fresh ``claim`` token and only the holder of the current claim may finish it,
so a stale worker can never overwrite a newer result.

A done analysis keeps its compact row beside the report (``fusion.service.tables``), and every analysis its
``recorded_at``; an older database gains the columns, its rows ``created`` as their recording time and their
compact rows from their reports, once. A user's
neutral baselines are versioned rows of ``baselines``: ``personal`` (made by hand from calm recordings)
or ``personal-auto`` (built from their own diaries, with the ids of those diaries in ``sources``).

A user id is never given again (SQLite: AUTOINCREMENT, ``fusion.service.sqlite``), and every write on a
user's behalf first takes their row's write lock (``_lock_user``): a write racing ``remove_user`` either lands
before the removal, which then deletes it, or finds the user gone (``UserGone``), so nothing outlives its user.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, delete, event, func, inspect, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, load_only

from fusion.config import check_user_name
from fusion.errors import FusionError
from fusion.history import TimelineEntry, entry
from fusion.report import DiaryReport
from fusion.service import sqlite
from fusion.service.tables import Analysis, Base, Baseline, User, now

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
PERSONAL, PERSONAL_AUTO = "personal", "personal-auto"


class DatabaseError(FusionError):
    """The configured database cannot be opened; names its URL with the password hidden."""

    kind = "database"


class UserGone(FusionError):
    """The user a write was for was removed meanwhile."""

    kind = "user_gone"


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so one SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
                sqlite.private_file(parsed.database)
            self.engine = create_engine(parsed, **engine_arguments(parsed))
            if self.sqlite:
                event.listen(self.engine, "connect", sqlite.pragmas)
            Base.metadata.create_all(self.engine)
            self._add_missing_columns()
            if self.sqlite:
                sqlite.never_reuse_ids(self.engine, User.__table__, Analysis.__tablename__, Baseline.__tablename__)
        except ImportError as exc:
            raise DatabaseError(f"cannot open the database {shown}: its driver is not installed ({exc})") from None
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).partition("\n")[0]  # the driver's words, not SQLAlchemy's
            raise DatabaseError(f"cannot open the database {shown}: {reason}") from None

    def _add_missing_columns(self) -> None:
        """A database from before gains the columns and indexes added since, its rows a recording time and a compact
        row (those of other columns keep NULL or the default)."""
        added = {"users": {"static": "BOOLEAN NOT NULL DEFAULT FALSE",
                           "baseline_version": "INTEGER NOT NULL DEFAULT 0"},
                 "analyses": {"voice_stats": "TEXT", "recorded_at": "TIMESTAMP", "worker": "VARCHAR(32)",
                              "entry_json": "TEXT"}}
        for table, columns in added.items():
            have = {c["name"] for c in inspect(self.engine).get_columns(table)}
            for name, kind in columns.items():
                if name not in have:
                    with self.engine.begin() as conn:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
        for index in Analysis.__table__.indexes:
            index.create(self.engine, checkfirst=True)
        with self.session() as s, s.begin():
            s.execute(update(Analysis).where(Analysis.recorded_at.is_(None)).values(recorded_at=Analysis.created))
            for row in s.scalars(select(Analysis).where(Analysis.status == DONE, Analysis.entry_json.is_(None))):
                try:
                    row.entry_json = entry_json(row.id, DiaryReport.model_validate_json(row.report_json), row.when)
                except ValueError:  # a report that cannot be read stays without: its user's history is unreadable
                    continue

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self, within: Session | None = None) -> Iterator[Session]:
        """``within`` (whose caller commits it), or a new session in a transaction committed on leaving."""
        if within is not None:
            yield within
            return
        with self.session() as s, s.begin():
            yield s

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
        check_user_name(name)
        token = token or secrets.token_urlsafe(32)
        with self.session() as s, s.begin():
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise ValueError(f"user {name!r} exists already")
            s.add(User(name=name, token_hash=hash_token(token)))
        return token

    def sync_static(self, tokens: dict[str, str]) -> list[str]:
        """Make the static users exactly ``tokens`` (name → token); returns the names whose token was revoked."""
        for name in tokens:
            check_user_name(name)
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

    def remove_user(self, name: str) -> tuple[list[Analysis], int]:
        """Delete ``name`` with their token, all their analyses and every version of their baselines; returns the
        deleted analyses (their uploads are the caller's) and how many baseline versions went."""
        with self.session() as s, s.begin():
            # the user's write lock first: an upload or baseline of theirs in flight lands before, or finds them gone
            s.execute(update(User).where(User.name == name).values(id=User.id))
            user = s.scalar(select(User).where(User.name == name))
            if user is None:
                raise ValueError(f"no user {name!r}")
            rows = list(s.scalars(select(Analysis).where(Analysis.user_id == user.id)))
            s.execute(delete(Analysis).where(Analysis.user_id == user.id))
            baselines = s.execute(delete(Baseline).where(Baseline.user_id == user.id)).rowcount
            s.delete(user)
        self.compact()
        return rows, baselines

    def open_jobs(self, user_id: int) -> int:
        """How many of the user's analyses are queued or running."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Analysis)
                            .where(Analysis.user_id == user_id, Analysis.status.in_((QUEUED, RUNNING))))

    def user_for_token(self, token: str) -> User | None:
        with self.session() as s:
            return s.scalar(select(User).where(User.token_hash == hash_token(token)))

    def create(self, user_id: int, filename: str, gender: str | None, language: str | None,
               transcript: str | None, recorded_at: datetime | None = None, *, analysis_id: str | None = None,
               admit: Callable[[int, list[str]], None] | None = None) -> Analysis:
        """A queued analysis (``analysis_id``, default: a new one) recorded at ``recorded_at`` (aware, or naive UTC;
        default: now), written under the user's lock after ``admit(open jobs, ids of all their analyses)`` returned
        (it raises to refuse, and may place the recording), so two uploads never both take the last place of a
        quota; ``UserGone`` when the user was removed meanwhile."""
        when = now() if recorded_at is None else _naive_utc(recorded_at)
        row = Analysis(id=analysis_id or uuid.uuid4().hex, user_id=user_id, status=QUEUED, filename=filename,
                       gender=gender, language=language, transcript=transcript, recorded_at=when)
        with self.session() as s, s.begin():
            _lock_user(s, user_id)
            if admit is not None:
                mine = s.execute(select(Analysis.id, Analysis.status).where(Analysis.user_id == user_id)).all()
                admit(sum(status in (QUEUED, RUNNING) for _, status in mine), [i for i, _ in mine])
            s.add(row)
        return row

    def get(self, analysis_id: str, user_id: int | None = None) -> Analysis | None:
        with self.session() as s:
            row = s.get(Analysis, analysis_id)
        return row if row is not None and (user_id is None or row.user_id == user_id) else None

    def claim(self, analysis_id: str, worker: str | None = None) -> str | None:
        """Mark a queued job running under a new claim by the process ``worker``; None when it is gone or not queued
        (one statement: of two processes claiming a job at once, one gets it)."""
        claim = uuid.uuid4().hex
        with self.session() as s, s.begin():
            done = s.execute(update(Analysis).where(Analysis.id == analysis_id, Analysis.status == QUEUED)
                             .values(status=RUNNING, claim=claim, worker=worker, attempts=Analysis.attempts + 1))
        return claim if done.rowcount == 1 else None

    def finish(self, analysis_id: str, claim: str, *, report_json: str | None = None, error: str | None = None,
               voice_stats: str | None = None, entry_json: str | None = None,
               then: Callable[[Session], None] | None = None) -> bool:
        """Store the result of the run holding ``claim``, and run ``then`` in the same transaction once it is stored
        (so whoever sees the result sees what ``then`` wrote); False when the job was deleted or re-claimed."""
        values = ({"status": FAILED, "error": error} if error is not None
                  else {"status": DONE, "report_json": report_json, "voice_stats": voice_stats,
                        "entry_json": entry_json})
        with self.session() as s, s.begin():
            if then is not None and not self._lock_owner(s, analysis_id):
                return False
            done = s.execute(update(Analysis).where(Analysis.id == analysis_id, Analysis.claim == claim)
                             .values(claim=None, **values)).rowcount == 1
            if done and then is not None:
                then(s)
        return done

    def fail(self, left: Analysis, error: str) -> bool:
        """Fail an unfinished job still as ``left`` (same status and claim: no other process took it meanwhile)."""
        return self._if_still(left, status=FAILED, error=error, claim=None)

    def delete(self, analysis_id: str, then: Callable[[Session], None] | None = None) -> None:
        """Delete the analysis, and run ``then`` in the same transaction."""
        with self.session() as s, s.begin():
            if then is not None and not self._lock_owner(s, analysis_id):
                return
            s.execute(delete(Analysis).where(Analysis.id == analysis_id))
            if then is not None:
                then(s)
        self.compact()

    def _lock_owner(self, s: Session, analysis_id: str) -> bool:
        """Take the write lock of the analysis's user first, as every write on a user's behalf does (so a ``then``
        that writes for them cannot deadlock with ``remove_user``); False when the analysis or its user is gone.

        One write statement, no read before it: a SQLite transaction that read first could not take the write lock
        once another connection had committed meanwhile (it fails at once, without waiting)."""
        owner = select(Analysis.user_id).where(Analysis.id == analysis_id).scalar_subquery()
        return s.execute(update(User).where(User.id == owner).values(id=User.id)).rowcount == 1

    def analysis_ids(self) -> set[str]:
        """The id of every analysis of every user."""
        with self.session() as s:
            return set(s.scalars(select(Analysis.id)))

    def unfinished(self) -> list[Analysis]:
        """Jobs a previous server process left queued or running, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Analysis).where(Analysis.status.in_((QUEUED, RUNNING)))
                                  .order_by(Analysis.created)))

    def finished_before(self, moment: datetime) -> list[str]:
        """Ids of the analyses that finished (done or failed) before ``moment`` (aware, or naive UTC)."""
        with self.session() as s:
            return list(s.scalars(select(Analysis.id).where(Analysis.status.in_((DONE, FAILED)),
                                                             Analysis.updated < _naive_utc(moment))))

    def requeue(self, left: Analysis) -> bool:
        """Queue an unfinished job again if it is still as ``left`` (same status and claim)."""
        return self._if_still(left, status=QUEUED, claim=None)

    def _if_still(self, left: Analysis, **values) -> bool:
        with self.session() as s, s.begin():
            done = s.execute(update(Analysis).where(Analysis.id == left.id, Analysis.status == left.status,
                                                    Analysis.claim == left.claim).values(**values))
        return done.rowcount == 1

    def entries(self, user_id: int) -> list[TimelineEntry]:
        """The compact rows of the user's done analyses, in recording order (their reports are not read)."""
        rows = self._in_order(Analysis.user_id == user_id, Analysis.status == DONE, also=(Analysis.entry_json,))
        return [TimelineEntry.model_validate_json(row.entry_json) for row in rows]

    def entries_before(self, user_id: int, upto: datetime, days: float, usual: int, but: str) -> list[TimelineEntry]:
        """What a drift alert as of ``upto`` reads of the user's other done diaries, in recording order: those of the
        ``days`` up to it and the ``usual`` latest before those; a bounded read however long the history."""
        upto = _naive_utc(upto)
        since = upto - timedelta(days=days)
        mine = (Analysis.user_id == user_id, Analysis.status == DONE, Analysis.id != but)
        with self.session() as s:
            recent = s.scalars(select(Analysis.entry_json).where(*mine, Analysis.recorded_at > since,
                                                                  Analysis.recorded_at <= upto))
            before = s.scalars(select(Analysis.entry_json).where(*mine, Analysis.recorded_at <= since)
                               .order_by(Analysis.recorded_at.desc(), Analysis.id.desc()).limit(usual))
            found = [TimelineEntry.model_validate_json(e) for e in [*recent, *before]]
        return sorted(found, key=lambda e: (e.recorded_at, e.id))

    def analyses(self, user_id: int) -> list[tuple[str, datetime]]:
        """(id, recorded_at) of every analysis of the user, in recording order."""
        return [(row.id, row.when) for row in self._in_order(Analysis.user_id == user_id)]

    def stats_of_recent(self, user_id: int, limit: int, within: Session | None = None) -> list[Analysis]:
        """The user's ``limit`` most recently recorded done analyses that hold voice stats, oldest first (only
        their id, times and stats are read: not their reports)."""
        if limit <= 0:
            return []
        with self.transaction(within) as s:
            rows = list(s.scalars(select(Analysis).where(Analysis.user_id == user_id, Analysis.status == DONE,
                                                         Analysis.voice_stats.is_not(None))
                                  .options(load_only(Analysis.id, Analysis.recorded_at, Analysis.created,
                                                     Analysis.voice_stats))
                                  .order_by(Analysis.recorded_at.desc(), Analysis.id.desc()).limit(limit)))
        return rows[::-1]

    def _in_order(self, *where, also=()) -> list[Analysis]:
        """The analyses matching ``where`` in recording order, with their id and times (and ``also``) loaded."""
        with self.session() as s:
            rows = list(s.scalars(select(Analysis).where(*where)
                                  .options(load_only(Analysis.id, Analysis.recorded_at, Analysis.created, *also))))
        return sorted(rows, key=lambda row: (row.when, row.id))

    def lock_user(self, user_id: int, within: Session) -> None:
        """Take the user's row write lock for the rest of ``within``'s transaction; ``UserGone`` when the row is
        gone. A transaction that then reads what another one holding the lock wrote sees it committed."""
        _lock_user(within, user_id)

    def latest_baseline(self, user_id: int, kind: str, within: Session | None = None) -> Baseline | None:
        with self.transaction(within) as s:
            return s.scalar(select(Baseline).where(Baseline.user_id == user_id, Baseline.kind == kind)
                            .order_by(Baseline.version.desc()).limit(1))

    def add_baseline(self, user_id: int, kind: str, recordings: int, baseline_json: str, *,
                     since: datetime | None = None, sources: str | None = None,
                     within: Session | None = None) -> Baseline:
        """Store the user's next baseline version (one more than any they had, deleted ones included)."""
        with self.transaction(within) as s:
            # the update takes the row's write lock first, so two writers never get the same number
            if s.execute(update(User).where(User.id == user_id)
                         .values(baseline_version=User.baseline_version + 1)).rowcount != 1:
                raise UserGone(f"user {user_id} was removed")
            version = s.scalar(select(User.baseline_version).where(User.id == user_id))
            row = Baseline(user_id=user_id, version=version, kind=kind, recordings=recordings,
                           since=None if since is None else _naive_utc(since), sources=sources,
                           baseline_json=baseline_json)
            s.add(row)
            s.flush()
        return row

    def baselines(self, user_id: int, kind: str | None = None, within: Session | None = None) -> list[Baseline]:
        """The user's baseline versions (of ``kind``), oldest first."""
        with self.transaction(within) as s:
            query = select(Baseline).where(Baseline.user_id == user_id)
            if kind is not None:
                query = query.where(Baseline.kind == kind)
            return list(s.scalars(query.order_by(Baseline.version)))

    def remove_baselines(self, user_id: int, kind: str | None = None, ids: list[int] | None = None,
                         within: Session | None = None) -> int:
        """Delete the user's baselines of ``kind`` (or those of ``ids``); returns how many went (the caller of
        ``within`` compacts)."""
        with self.transaction(within) as s:
            query = delete(Baseline).where(Baseline.user_id == user_id)
            if kind is not None:
                query = query.where(Baseline.kind == kind)
            if ids is not None:
                query = query.where(Baseline.id.in_(ids))
            gone = s.execute(query).rowcount
        if gone and within is None:
            self.compact()
        return gone


def entry_json(analysis_id: str, report: DiaryReport, when: datetime) -> str:
    """A done diary's compact row: its timeline entry as JSON (no link: a request adds its own)."""
    return entry(analysis_id, report, when).model_dump_json()


def _lock_user(s: Session, user_id: int) -> None:
    """Take the user's row write lock for the rest of the transaction (SQLite: the database's); ``UserGone`` when the
    row is gone."""
    if s.execute(update(User).where(User.id == user_id).values(id=User.id)).rowcount != 1:
        raise UserGone(f"user {user_id} was removed")


def engine_arguments(url: URL) -> dict:
    """``create_engine`` options for ``url``: SQLite's connection options and a pre-ping for server databases
    (whose connections a restart of the server drops)."""
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True}


def _naive_utc(moment: datetime) -> datetime:
    """The database keeps naive UTC times (as ``created``); an aware time is converted first."""
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def _revoked() -> str:
    """A token hash no token has (not hex), unique per revoked user."""
    return "revoked-" + secrets.token_hex(28)
