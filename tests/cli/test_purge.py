"""``purge-tombstones`` on a bad database: a clear error, no traceback, nothing created."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tablesync._exceptions import ServerConfigError
from tablesync.cli._commands import cli
from tablesync.server import purge_tombstones


def _purge(database: str) -> Result:
    args = ["purge-tombstones", "--database", database, "--table", "todo", "--older-than", "1d"]
    return CliRunner().invoke(cli, args)


def _assert_clean_error(result: Result, message: str) -> None:
    # click turns a ClickException into "Error: ..." and exit 1; anything else would escape
    # as result.exception (a traceback on a real terminal).
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Error: " in result.output and message in result.output
    assert "Traceback" not in result.output and "sqlalche.me" not in result.output


def test_a_mistyped_sqlite_path_is_reported_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_clean_error(_purge("sqlite:///tablesnyc.db"), "no SQLite database file")
    _assert_clean_error(_purge(f"sqlite:///{tmp_path / 'sub' / 'x.db'}"), "no SQLite database")
    assert list(tmp_path.iterdir()) == []


def test_a_read_write_uri_to_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = _purge(f"sqlite:///file:{path}?mode=rw&uri=true")
    _assert_clean_error(result, "cannot read the database")
    assert not path.exists()


def test_a_sqlite_file_that_is_not_tablesync_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    before = path.read_bytes()
    _assert_clean_error(_purge(f"sqlite:///{path}"), "is not a tablesync database")
    # Not a byte changed: no registry created, not even switched to WAL.
    assert path.read_bytes() == before


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text, not a database\n" * 10)
    before = path.read_bytes()
    _assert_clean_error(_purge(f"sqlite:///{path}"), "cannot read the SQLite database")
    assert path.read_bytes() == before


def test_an_unreachable_postgresql_is_a_clear_error() -> None:
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    result = _purge("postgresql://postgres:secret@127.0.0.1:1/nosuch")
    _assert_clean_error(result, "cannot read the database")
    assert "Connection refused" in result.output or "connection failed" in result.output
    assert "secret" not in result.output


def test_a_postgresql_database_without_tablesync_is_a_clear_error(postgres_url: str) -> None:
    _assert_clean_error(_purge(postgres_url), "is not a tablesync database")


def test_the_python_api_raises_server_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(ServerConfigError, match="no SQLite database file"):
            purge_tombstones(engine, "todo", dt.timedelta(days=1))
    finally:
        engine.dispose()
    assert not path.exists()
    with pytest.raises(ServerConfigError, match="invalid database URL"):
        purge_tombstones("::not a url::", "todo", dt.timedelta(days=1))
