"""Schema migrations of the local store: an ordered, recorded registry.

Each migration has a unique name and runs once per database file, inside the same transaction
as the row that records it in ``__migrations``; a crash mid-migration leaves neither. A file
recording a migration this version does not know was written by a newer tablesync, and opening
it is refused rather than risking a silent downgrade.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .._exceptions import StoreError
from ..protocol import format_datetime


class Cursor(Protocol):
    """The part of a DB-API connection a migration uses (sqlite3 and sqlcipher3 both fit)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any:
        """Run one SQL statement."""
        ...


MigrationFunction = Callable[[Cursor], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One named schema change."""

    name: str
    """Unique, ordered name (``0001_system_tables``)."""
    apply: MigrationFunction
    """Runs the change on the connection; must only issue SQL (no commits)."""


class Migrations:
    """An ordered registry of migrations; register with the :meth:`__call__` decorator."""

    def __init__(self) -> None:
        self._items: list[Migration] = []

    def __call__(self, name: str) -> Callable[[MigrationFunction], MigrationFunction]:
        """Register the decorated function as the migration ``name`` (names must be unique)."""

        def register(function: MigrationFunction) -> MigrationFunction:
            if any(item.name == name for item in self._items):
                raise ValueError(f"duplicate migration name {name!r}")
            self._items.append(Migration(name, function))
            return function

        return register

    @property
    def names(self) -> tuple[str, ...]:
        """Every registered name, in order."""
        return tuple(item.name for item in self._items)

    def pending(self, applied: set[str]) -> list[Migration]:
        """The migrations not yet in ``applied``; raises ``StoreError`` for unknown ones."""
        unknown = sorted(applied - set(self.names))
        if unknown:
            raise StoreError(
                f"the store was written by a newer tablesync (unknown migrations: "
                f"{', '.join(unknown)}); upgrade tablesync to open it"
            )
        return [item for item in self._items if item.name not in applied]


MIGRATIONS_TABLE = "__migrations"
CREATE_MIGRATIONS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
    "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)


def record(cursor: Cursor, migration: Migration) -> None:
    """Record ``migration`` as applied (in the caller's transaction)."""
    now = format_datetime(dt.datetime.now(dt.UTC))
    cursor.execute(
        f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", (migration.name, now)
    )


#: The migrations of the store's system tables, in order.
STORE_MIGRATIONS = Migrations()


@STORE_MIGRATIONS("0001_system_tables")
def _system_tables(cursor: Cursor) -> None:
    # AUTOINCREMENT: a sequence number is never reused, so an operation queued during a push
    # always sorts after every operation that push has already walked past.
    cursor.execute(
        "CREATE TABLE __operations ("
        " sequence INTEGER PRIMARY KEY AUTOINCREMENT,"
        " id TEXT NOT NULL UNIQUE,"
        " kind INTEGER NOT NULL,"
        " state INTEGER NOT NULL,"
        " tableName TEXT NOT NULL,"
        " itemId TEXT NOT NULL,"
        " item TEXT,"
        " createdAt TEXT NOT NULL,"
        " version INTEGER NOT NULL,"
        " UNIQUE (tableName, itemId))"
    )
    cursor.execute(
        "CREATE TABLE __errors ("
        " id TEXT PRIMARY KEY,"
        " operationVersion INTEGER NOT NULL,"
        " operationKind INTEGER NOT NULL,"
        " tableName TEXT NOT NULL,"
        " itemId TEXT NOT NULL,"
        " httpStatus INTEGER,"
        " item TEXT,"
        " serverItem TEXT,"
        " rawResult TEXT,"
        " extra TEXT NOT NULL DEFAULT '{}')"
    )
    cursor.execute("CREATE TABLE __config (id TEXT PRIMARY KEY, value TEXT NOT NULL)")
