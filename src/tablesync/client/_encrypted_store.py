"""``EncryptedSQLiteStore``: the SQLite store in a SQLCipher-encrypted file.

It is :class:`SQLiteStore` with a different connection; everything else is shared. Needs the
``encrypted`` extra (``pip install tablesync[encrypted]``, which installs ``sqlcipher3-binary``).
"""

from __future__ import annotations

import os
from typing import Any

from .._exceptions import StoreError, UsageError
from ._sqlite_store import SQLiteStore


def _sqlcipher() -> Any:
    try:
        from sqlcipher3 import dbapi2
    except ImportError as exc:
        raise StoreError(
            "EncryptedSQLiteStore needs SQLCipher: install the 'encrypted' extra "
            "(pip install 'tablesync[encrypted]')"
        ) from exc
    return dbapi2


class EncryptedSQLiteStore(SQLiteStore):
    """A :class:`SQLiteStore` whose file is encrypted with SQLCipher.

    ```python
    from tablesync import Client, EncryptedSQLiteStore

    store = EncryptedSQLiteStore("app.db", key=load_key_from_keychain())
    with Client("https://example.org", store=store) as client:
        ...
    ```

    Args:
        path: the database file, created (encrypted with ``key``) if missing.
        key: the passphrase (``str``), or a raw 32-byte key (``bytes``).
        timeout: seconds to wait for another connection's write lock before failing.

    Raises:
        StoreError: SQLCipher is not installed, the key is wrong, or the file is not a store.
        UsageError: the key is empty or a raw key is not 32 bytes.
    """

    def __init__(
        self, path: str | os.PathLike[str], key: str | bytes, *, timeout: float = 5.0
    ) -> None:
        self._key_pragma = _key_pragma(key)
        super().__init__(path, timeout=timeout)

    def _connect(self) -> Any:
        dbapi = _sqlcipher()
        self._dbapi = dbapi
        conn = dbapi.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # SQLCipher logs a failed key check to stderr; the StoreError below says it all.
            conn.execute("PRAGMA cipher_log_level = NONE")
            conn.execute(self._key_pragma)
            # SQLCipher only checks the key on the first read: do it now for a clear error.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except dbapi.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"cannot open the encrypted store {self._path!r}: wrong key, or not an "
                f"encrypted tablesync store ({exc})"
            ) from exc
        return conn


def _key_pragma(key: str | bytes) -> str:
    if isinstance(key, bytes):
        if len(key) != 32:
            raise UsageError(f"a raw SQLCipher key must be 32 bytes, not {len(key)}")
        return f"PRAGMA key = \"x'{key.hex()}'\""
    if not isinstance(key, str) or not key:
        raise UsageError("the encryption key must be a non-empty str or 32 raw bytes")
    # The passphrase is a string literal in the PRAGMA: double any single quote.
    return "PRAGMA key = '" + key.replace("'", "''") + "'"
