"""What the store does for SQLite alone: a database file private to its owner, PRAGMAs that leave no deleted
text in it, and user ids that are never given again.

SQLite gives a new row of a plain ``INTEGER PRIMARY KEY`` the highest id + 1, so the id of a removed user who
had the highest one went to the next user, with any row still naming it; ``AUTOINCREMENT`` never reuses one.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, Table
from sqlalchemy.schema import CreateTable


def private_file(path: str | None) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its -wal and -shm files the same mode)."""
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def pragmas(conn, _record) -> None:
    """Every connection: write-ahead log, and freed pages overwritten so a deleted transcript is not left in the
    file."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA secure_delete=ON")


def never_reuse_ids(engine: Engine, users: Table, *named_by: str) -> None:
    """Rebuild ``users`` with ``AUTOINCREMENT`` if a database from before lacks it (its rows and indexes kept), its
    counter past every id it or the ``user_id`` of the tables ``named_by`` holds."""
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # one process migrates; another starting with it waits, then sees
        schema = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (users.name,)).scalar()
        if "AUTOINCREMENT" in schema.upper():
            conn.rollback()
            return
        new, columns = f"{users.name}_new", ", ".join(c.name for c in users.columns)
        create = str(CreateTable(users).compile(dialect=engine.dialect)).strip()
        conn.exec_driver_sql(create.replace(f"CREATE TABLE {users.name} ", f"CREATE TABLE {new} ", 1))
        conn.exec_driver_sql(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {users.name}")
        conn.exec_driver_sql(f"DROP TABLE {users.name}")
        conn.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {users.name}")
        for index in users.indexes:
            index.create(conn)
        ids = " UNION ALL ".join([f"SELECT id FROM {users.name}", *(f"SELECT user_id FROM {t}" for t in named_by)])
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (users.name,))
        conn.exec_driver_sql(f"INSERT INTO sqlite_sequence (name, seq) SELECT ?, coalesce(max(id), 0) FROM ({ids})",
                             (users.name,))
        conn.commit()
