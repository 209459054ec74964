"""SQLCipher specifics: the file is unreadable without the key; wrong keys fail clearly."""

from __future__ import annotations

import builtins
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tablesync import StoreError, UsageError
from tablesync.client._context import SyncContext
from tablesync.client._encrypted_store import EncryptedSQLiteStore


def test_the_file_is_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "secret.db"
    with EncryptedSQLiteStore(path, "k1") as store:
        SyncContext(store).insert("t", {"text": "top secret text"})
        wal = (tmp_path / "secret.db-wal").read_bytes()  # the commit is here, not yet in the file
        assert len(wal) > 1000 and b"top secret" not in wal
    data = path.read_bytes()
    assert b"top secret" not in data
    assert not data.startswith(b"SQLite format 3")
    with sqlite3.connect(path) as plain, pytest.raises(sqlite3.DatabaseError):
        plain.execute("SELECT * FROM sqlite_master").fetchall()
    plain.close()


def test_reopen_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.db"
    with EncryptedSQLiteStore(path, "pass'word") as store:
        item = SyncContext(store).insert("t", {"text": "x"})
    with EncryptedSQLiteStore(path, "pass'word") as store:
        assert SyncContext(store).get("t", item["id"]) == item


def test_raw_32_byte_keys(tmp_path: Path) -> None:
    key = bytes(range(32))
    with EncryptedSQLiteStore(tmp_path / "raw.db", key) as store:
        store.set_config("k", "v")
    with EncryptedSQLiteStore(tmp_path / "raw.db", key) as store:
        assert store.get_config("k") == "v"
    with pytest.raises(StoreError, match="wrong key"):
        EncryptedSQLiteStore(tmp_path / "raw.db", bytes(32))


@pytest.mark.parametrize(
    "path_kind", [pytest.param("encrypted", id="wrong-key"), pytest.param("plain", id="plain-file")]
)
def test_a_wrong_key_is_a_clear_store_error(tmp_path: Path, path_kind: str) -> None:
    path = tmp_path / "secret.db"
    if path_kind == "encrypted":
        EncryptedSQLiteStore(path, "right").close()
    else:
        sqlite3.connect(path).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(StoreError, match="wrong key, or not an encrypted tablesync store"):
        EncryptedSQLiteStore(path, "wrong")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param(b"short", id="short-bytes"),
        pytest.param(None, id="none"),
    ],
)
def test_unusable_keys_are_usage_errors(tmp_path: Path, key: Any) -> None:
    with pytest.raises(UsageError):
        EncryptedSQLiteStore(tmp_path / "k.db", key)
    assert not (tmp_path / "k.db").exists()


def test_missing_sqlcipher_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def without_sqlcipher(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("sqlcipher3"):
            raise ImportError("No module named 'sqlcipher3'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_sqlcipher)
    with pytest.raises(StoreError, match=r"tablesync\[encrypted\]"):
        EncryptedSQLiteStore(tmp_path / "x.db", "key")
