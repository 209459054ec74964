"""Engines: pooled PostgreSQL connections pinged only after sitting idle; autocommit reads."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from tablesync.server import _engine
from tablesync.server._engine import make_engine, reader


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_an_idle_connection_killed_by_the_server_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(engine)
        _terminate(postgres_url, pid)  # a restart or an idle timeout, while it sat in the pool
        monkeypatch.setattr(_engine, "PING_AFTER_IDLE_S", 0.0)
        assert _backend_pid(engine) != pid  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()


def test_only_connections_idle_past_the_threshold_are_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    try:
        for _ in range(3):
            _backend_pid(engine)
        assert pings == []  # in steady use: no extra round trip
        monkeypatch.setattr(_engine, "PING_AFTER_IDLE_S", 0.0)
        _backend_pid(engine)
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_postgres_reads_run_without_a_transaction(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        with reader(engine).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_sqlite_reads_keep_their_transaction(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/r.db")
    try:
        assert reader(engine) is engine  # BEGIN DEFERRED: a page and its count share a snapshot
    finally:
        engine.dispose()


def test_sqlite_connections_are_set_up_for_the_server(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    try:
        with engine.connect() as conn:
            settings = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "synchronous", "cache_size", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert settings == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "cache_size": -_engine.SQLITE_CACHE_KIB,  # negative: KiB, not pages
        "busy_timeout": _engine.SQLITE_BUSY_TIMEOUT_MS,
    }


def test_statements_held_back_go_with_the_commit_in_one_query(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    writes = _engine.writer(engine)
    try:
        with writes.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE held (x integer)")
            conn.commit()
            tx = conn.begin()
            conn.exec_driver_sql("INSERT INTO held VALUES (1)")
            _engine.defer(conn, "INSERT INTO held VALUES (2)")
            _engine.commit_deferred(conn)
            # Committed by that one query: another connection sees both rows already.
            with psycopg.connect(postgres_url) as other:
                assert other.execute("SELECT x FROM held ORDER BY x").fetchall() == [(1,), (2,)]
            tx.commit()  # finds the transaction committed
            tx = conn.begin()
            conn.exec_driver_sql("INSERT INTO held VALUES (3)")
            _engine.defer(conn, "SELECT 1 / 0")
            with pytest.raises(sa.exc.DataError):  # raised as SQLAlchemy raises it
                _engine.commit_deferred(conn)
            tx.rollback()
            assert conn.exec_driver_sql("SELECT x FROM held ORDER BY x").all() == [(1,), (2,)]
            conn.rollback()
    finally:
        engine.dispose()
