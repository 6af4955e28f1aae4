"""The service's database (fusion/service/store.py) behind SQLAlchemy URLs other than the default one."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.engine import make_url

from fusion.service.store import DatabaseError, Store, engine_arguments


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
    ("postgresql://diary:s3cret-pw@db.example.org/fusion", "postgresql://diary:***@db.example.org/fusion",
     "its driver is not installed"),
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
