"""The service's database (fusion/service/store.py) behind SQLAlchemy URLs other than the default one."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fusion.history import TimelineEntry, entry
from fusion.service.store import PERSONAL, DatabaseError, Store, engine_arguments


def test_a_sqlite_url_with_its_driver_named_is_still_sqlite(tmp_path):
    path = tmp_path / "named.db"
    store = Store(f"sqlite+pysqlite:///{path}")
    try:
        token = store.add_user("alice")
        assert store.user_for_token(token).name == "alice"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.db"], "no stray file named after the URL"


def test_sqlite_connection_options_stay_with_sqlite():
    """Other drivers refuse SQLite's connect_args; a server database's connections are checked before use."""
    for url in ("sqlite:///x.db", "sqlite+pysqlite:///x.db", "sqlite://"):
        assert engine_arguments(make_url(url))["connect_args"]["check_same_thread"] is False
    for url in ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db", "mysql+pymysql://u:p@h/db"):
        assert engine_arguments(make_url(url)) == {"pool_pre_ping": True}


@pytest.mark.parametrize("url, shown, reason", [
    ("postgresql+psycopg2://diary:s3cret-pw@db.example.org/fusion",
     "postgresql+psycopg2://diary:***@db.example.org/fusion", "its driver is not installed"),
    ("postgresql+nodriver://diary:s3cret-pw@db.example.org/fusion", "postgresql+nodriver://diary:***@db.example.org/fusion",
     "Can't load plugin"),
], ids=["driver-missing", "unknown-driver"])
def test_a_database_that_cannot_be_opened_is_named_without_its_password(url, shown, reason):
    with pytest.raises(DatabaseError) as caught:
        Store(url)
    message = str(caught.value)
    assert message.startswith(f"cannot open the database {shown}: ") and reason in message
    assert "s3cret-pw" not in message and "\n" not in message


def test_an_unreachable_sqlite_file_is_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'fusion.db'}"
    with pytest.raises(DatabaseError,
                       match=re.escape(f"cannot open the database {url}: ") + ".*No such file or directory"):
        Store(url)


def test_a_database_url_that_is_no_url_is_refused_without_repeating_it():
    with pytest.raises(DatabaseError, match=r"database_url is not a SQLAlchemy URL") as caught:
        Store("s3cret-pw at the usual host")
    assert "s3cret-pw" not in str(caught.value)


def test_a_database_from_before_gains_the_new_columns_and_its_rows_keep_their_upload_time(tmp_path, flagship_report):
    """A database made before diaries had a recording time and a compact row (and users a baseline version):
    opening it adds the columns; its analyses are dated by their upload, and a done one gets its compact row
    from its report, which later reads of the history use instead."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE, token_hash VARCHAR(64) UNIQUE,
                                static BOOLEAN NOT NULL DEFAULT FALSE, created DATETIME);
            CREATE TABLE analyses (id VARCHAR(32) PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                                   status VARCHAR(16), filename VARCHAR(200), gender VARCHAR(16), language VARCHAR(16),
                                   transcript TEXT, attempts INTEGER, claim VARCHAR(32), error TEXT, report_json TEXT,
                                   created DATETIME, updated DATETIME);
            INSERT INTO users VALUES (1, 'alice', 'h', FALSE, '2026-01-02 03:04:05.000000');
        """)
        db.execute("INSERT INTO analyses VALUES ('a1', 1, 'done', 'd.flac', NULL, NULL, NULL, 1, NULL, NULL, ?, "
                   "'2026-01-02 03:04:05.000000', '2026-01-02 03:04:06.000000')", (flagship_report.to_json(None),))
    uploaded = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    store = Store(f"sqlite:///{path}")
    try:
        row = store.get("a1")
        assert row.voice_stats is None and row.when == uploaded
        assert store.entries(1) == [entry("a1", flagship_report, uploaded)] and store.analyses(1)[0][0] == "a1"
        assert store.entries_before(1, uploaded, 7.0, 10, but="other") == store.entries(1)
        assert store.add_baseline(1, PERSONAL, 2, "{}").version == 1
    finally:
        store.close()
    columns = {table: {c[1] for c in sqlite3.connect(path).execute(f"PRAGMA table_info({table})")}
               for table in ("users", "analyses", "baselines")}
    assert {"baseline_version"} <= columns["users"]
    assert {"recorded_at", "voice_stats", "entry_json"} <= columns["analyses"]
    assert {"version", "kind", "sources", "baseline_json"} <= columns["baselines"]


def test_a_removed_user_s_id_is_never_given_again(tmp_path, database_url):
    store = Store(database_url or f"sqlite:///{tmp_path / 'fusion.db'}")
    try:
        store.add_user("alice")
        bob = store.user_for_token(store.add_user("bob")).id
        store.remove_user("bob")
        assert store.user_for_token(store.add_user("carol")).id > bob
    finally:
        store.close()


def test_an_older_sqlite_users_table_stops_reusing_ids_past_every_id_still_named(tmp_path):
    """Before AUTOINCREMENT, SQLite gave a removed highest id to the next user, with the rows that still named it
    (here an analysis of a removed user 7): the table is rebuilt, its users and their tokens kept."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE users (id INTEGER NOT NULL, name VARCHAR(100), token_hash VARCHAR(64), static BOOLEAN
                                DEFAULT FALSE NOT NULL, baseline_version INTEGER DEFAULT 0 NOT NULL, created DATETIME,
                                PRIMARY KEY (id), UNIQUE (name));
            CREATE UNIQUE INDEX ix_users_token_hash ON users (token_hash);
            CREATE TABLE analyses (id VARCHAR(32) PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                                   status VARCHAR(16), filename VARCHAR(200), gender VARCHAR(16), language VARCHAR(16),
                                   transcript TEXT, attempts INTEGER, claim VARCHAR(32), error TEXT, report_json TEXT,
                                   created DATETIME, updated DATETIME);
            INSERT INTO users VALUES (1, 'alice', 'h', FALSE, 0, '2026-01-02 03:04:05.000000');
            INSERT INTO analyses VALUES ('a7', 7, 'done', 'd.flac', NULL, NULL, NULL, 1, NULL, NULL, '{}',
                                         '2026-01-02 03:04:05.000000', '2026-01-02 03:04:06.000000');
        """)
    for _ in range(2):  # the second start finds the table rebuilt already
        store = Store(f"sqlite:///{path}")
        try:
            assert store.user_for_token("h") is None and store.get("a7").user_id == 7
            with store.session() as s:
                assert s.execute(text("SELECT name FROM users WHERE token_hash = 'h'")).scalar() == "alice"
        finally:
            store.close()
    store = Store(f"sqlite:///{path}")
    try:
        assert store.user_for_token(store.add_user("dave")).id == 8
    finally:
        store.close()
    schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master WHERE name = 'users'").fetchone()[0]
    assert "AUTOINCREMENT" in schema
    assert "ix_users_token_hash" in {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}


@pytest.mark.parametrize("name", ["", " alice", "a" * 101, "bob\n", "tab\there"])
def test_a_user_name_is_one_to_a_hundred_printable_characters(tmp_path, name):
    store = Store(f"sqlite:///{tmp_path / 'fusion.db'}")
    try:
        with pytest.raises(ValueError, match="a user name is 1 to 100 printable characters"):
            store.add_user(name)
        with pytest.raises(ValueError, match="a user name is 1 to 100 printable characters"):
            store.sync_static({name: "a-static-token"})
        assert store.add_user("a" * 100)
    finally:
        store.close()


def test_a_drift_alert_reads_the_recent_days_and_the_usual_diaries_before_them_only(tmp_path):
    """Compact rows of 40 daily diaries: as of day 30, the 7 days up to it (this diary left out) and the 10 diaries
    before those, in recording order; later diaries and the rest of the history are not read."""
    store = Store(f"sqlite:///{tmp_path / 'fusion.db'}")
    try:
        user_id = store.user_for_token(store.add_user("gus")).id
        first = datetime(2026, 1, 1, 9, tzinfo=timezone.utc)
        ids = []
        for day in range(40):
            when = first + timedelta(days=day)
            row = store.create(user_id, "d.flac", None, None, None, when)
            row_entry = TimelineEntry(id=row.id, recorded_at=when, duration_s=60.0, words_va=None, voice_va=None,
                                      text_top=None, voice_top=None, pitch_hz=200.0 + day, energy_db=-20.0,
                                      baseline="male", alerts=[])
            assert store.finish(row.id, store.claim(row.id), report_json="{}", entry_json=row_entry.model_dump_json())
            ids.append(row.id)
        read = store.entries_before(user_id, first + timedelta(days=30), 7.0, 10, but=ids[30])
        assert [e.id for e in read] == ids[14:30]
        assert [e.pitch_hz for e in store.entries(user_id)] == [200.0 + day for day in range(40)]
    finally:
        store.close()
