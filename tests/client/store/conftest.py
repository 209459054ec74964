"""Fixtures of the store tests: every test taking ``store`` runs on both store classes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tablesync.client._context import SyncContext
from tablesync.client._encrypted_store import EncryptedSQLiteStore
from tablesync.client._sqlite_store import SQLiteStore

StoreFactory = Callable[..., SQLiteStore]
# A raw key skips SQLCipher's deliberately slow key derivation: the shared suite stays fast.
# Passphrases are covered in test_encrypted_store.py.
KEY = bytes(range(32))


def _plain(path: Path) -> SQLiteStore:
    return SQLiteStore(path)


def _encrypted(path: Path) -> SQLiteStore:
    return EncryptedSQLiteStore(path, KEY)


STORES = [pytest.param(_plain, id="sqlite"), pytest.param(_encrypted, id="sqlcipher")]


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open a store of the parametrized class on a file (default ``tmp_path/store.db``)."""
    opened: list[SQLiteStore] = []
    make: Callable[[Path], SQLiteStore] = request.param

    def factory(path: Path | None = None) -> SQLiteStore:
        store = make(path or tmp_path / "store.db")
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> SQLiteStore:
    return store_factory()


@pytest.fixture
def context(store: SQLiteStore) -> SyncContext:
    return SyncContext(store)


@pytest.fixture
def memory_store() -> Iterator[SQLiteStore]:
    store = SQLiteStore(":memory:")
    yield store
    store.close()
