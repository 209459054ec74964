"""The SQL schema: system tables, item tables, and columns added at run time.

Each item table has the system columns (``id``, ``createdAt``, ``updatedAt``, ``version``,
``deleted``) plus its user columns, and an index on ``(updatedAt, id)`` for incremental pulls.
User columns are recorded in ``tablesync_schema``; that registry, not a process's memory, is the
truth, so several server processes sharing one database agree on every table's columns.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .._exceptions import ServerConfigError
from ._config import ColumnType, Table
from ._engine import reader, writer
from ._types import UtcDateTime

SYSTEM_COLUMNS = ("id", "createdAt", "updatedAt", "version", "deleted")

_system = sa.MetaData()
CLOCK = sa.Table(
    "tablesync_clock",
    _system,
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("last_ms", sa.BigInteger, nullable=False),
)
REGISTRY = sa.Table(
    "tablesync_schema",
    _system,
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("column_name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
)
IDEMPOTENCY = sa.Table(
    "tablesync_idempotency",
    _system,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(600), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("etag", sa.String(300), nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False, index=True),
)
#: The registry row that marks a table as existing (every table has an ``id``).
_TABLE_MARKER = "id"


def _binary_text() -> sa.types.TypeEngine[str]:
    # Byte order on PostgreSQL too, so $orderby and paging agree with SQLite and Python.
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def sql_type(kind: ColumnType) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type that stores a column of ``kind``."""
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "string": _binary_text(),
        "integer": sa.BigInteger(),
        "number": sa.Double(),
        "boolean": sa.Boolean(),
        "datetime": UtcDateTime(),
        "json": sa.JSON(),
    }
    return types[kind]


@dataclass(frozen=True, slots=True)
class TableState:
    """A table as the server currently knows it: settings, SQL table and user column kinds."""

    config: Table
    table: sa.Table
    kinds: Mapping[str, ColumnType]

    def column_for(self, name: str) -> str | None:
        """The stored column name for a field ``name`` (exact, else case-insensitive)."""
        if name in self.kinds:
            return name
        lowered = name.lower()
        return next((col for col in self.kinds if col.lower() == lowered), None)


def build_table(
    name: str,
    kinds: Mapping[str, ColumnType],
    owner_column: str | None = None,
    indexes: Sequence[Sequence[str]] = (),
) -> sa.Table:
    """The Core ``Table`` for an item table with the given user columns.

    Its indexes: ``(updatedAt, id)`` for incremental pulls; with an ``owner_column``
    (``Access``), ``(owner, updatedAt, id)``: every statement of such a table holds its
    caller's owner, and a caller's pull then reads the caller's rows alone, where the sync
    index made it step over every other user's rows changed since (docs/benchmarks.md);
    and the table's own ``indexes`` (``Table.indexes``), each named by its columns.
    """
    id_type = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
    suffix = f"{zlib.crc32(name.encode()):08x}"
    owner_index = (
        [sa.Index(f"ix_{name[:40]}_{suffix}_owner", owner_column, "updatedAt", "id")]
        if owner_column is not None and owner_column in kinds
        else []
    )
    own_indexes = [
        sa.Index(
            f"ix_{name[:40]}_{suffix}_{zlib.crc32(repr(list(columns)).encode()):08x}", *columns
        )
        for columns in indexes
    ]
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", id_type, primary_key=True),
        sa.Column("createdAt", UtcDateTime(), nullable=False),
        sa.Column("updatedAt", UtcDateTime(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        *(sa.Column(col, sql_type(kind), nullable=True) for col, kind in kinds.items()),
        sa.Index(f"ix_{name[:40]}_{suffix}_sync", "updatedAt", "id"),
        *owner_index,
        *own_indexes,
    )


class Schema:
    """Creates and tracks the item tables of one app (thread-safe; shared by all requests)."""

    def __init__(self, engine: Engine, tables: Mapping[str, Table], *, dynamic: bool) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._writer = writer(engine)
        self._configured = dict(tables)
        self._dynamic = dynamic
        self._states: dict[str, TableState] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine the tables live in."""
        return self._engine

    @property
    def reader(self) -> Engine:
        """The engine for statements that only read (autocommit on PostgreSQL)."""
        return self._reader

    @property
    def writer(self) -> Engine:
        """The engine whose transactions take SQLite's write lock at BEGIN (``IMMEDIATE``)."""
        return self._writer

    def is_dynamic(self, key: str) -> bool:
        """Whether new fields of table ``key`` create columns."""
        config = self._configured.get(key)
        if config is None or config.dynamic_schema is None:
            return self._dynamic
        return config.dynamic_schema

    @property
    def allows_new_tables(self) -> bool:
        """Whether unknown table names create tables (dynamic schema)."""
        return self._dynamic

    def setup(self) -> None:
        """Create the system tables and every configured table (idempotent, multi-process safe)."""
        with self._ddl() as conn:
            _system.create_all(conn, checkfirst=True)
        for config in self._configured.values():
            self._create(config)

    def states(self) -> list[TableState]:
        """Every table known to this process (configured first)."""
        return list(self._states.values())

    def cached(self, key: str) -> TableState | None:
        """The state of table ``key`` this process knows, without touching the database."""
        return self._states.get(key)

    def get(self, key: str) -> TableState | None:
        """The known state of table ``key``, or ``None`` when it does not exist (yet)."""
        state = self._states.get(key)
        if state is None and self._dynamic and key not in self._configured:
            with self._engine.connect() as conn:
                state = self.refresh(conn, key)
        return state

    def refresh(self, conn: Connection, key: str) -> TableState | None:
        """Re-read the registry for table ``key`` (another process may have added columns)."""
        rows = conn.execute(
            sa.select(REGISTRY.c.column_name, REGISTRY.c.kind).where(REGISTRY.c.table_name == key)
        ).all()
        if not rows:
            return self._states.get(key)
        kinds = {name: kind for name, kind in rows if name != _TABLE_MARKER}
        state = self._states.get(key)
        if state is not None and dict(state.kinds) == kinds:
            return state
        config = self._configured.get(key) or Table(key, dynamic_schema=True)
        return self._remember(key, config, kinds)

    def create_table(self, key: str) -> TableState:
        """Create a dynamic table named ``key`` (no user columns yet)."""
        return self._create(Table(key, dynamic_schema=True))

    def add_columns(self, key: str, new: Mapping[str, ColumnType]) -> TableState:
        """Add user columns to table ``key``; columns another process added first are kept."""
        with self._ddl() as conn:
            state = self.refresh(conn, key)
            assert state is not None, f"table {key!r} must exist before adding columns"
            kinds = dict(state.kinds)
            for name, kind in new.items():
                if state.column_for(name) is None:
                    _add_column(conn, state.table.name, name, kind)
                    _register(conn, key, name, kind)
                    kinds[name] = kind
        return self._remember(key, state.config, kinds)

    def _create(self, config: Table) -> TableState:
        with self._ddl() as conn:
            recorded = _recorded_kinds(conn, config.key)
            kinds = {**recorded, **config.columns}
            table = build_table(config.name, kinds, _owner_column(config), config.indexes)
            table.create(conn, checkfirst=True)
            inspector = sa.inspect(conn)
            present = {col["name"].lower() for col in inspector.get_columns(config.name)}
            for name, kind in kinds.items():
                if name.lower() not in present:
                    _add_column(conn, config.name, name, kind)
            # A table made by an earlier version (or configuration) may lack an index.
            indexed = {index["name"] for index in inspector.get_indexes(config.name)}
            for index in table.indexes:
                if index.name not in indexed:
                    index.create(conn)
            for name, kind in config.columns.items():
                if recorded.get(name, kind) != kind:
                    raise ServerConfigError(
                        f"table {config.name!r}: column {name!r} is stored as "
                        f"{recorded[name]!r} but configured as {kind!r}"
                    )
            for name, kind in {_TABLE_MARKER: "string", **config.columns}.items():
                _register(conn, config.key, name, kind)
            _ensure_clock(conn, config.key)
        return self._remember(config.key, config, kinds)

    def _remember(self, key: str, config: Table, kinds: Mapping[str, ColumnType]) -> TableState:
        table = build_table(config.name, kinds, _owner_column(config), config.indexes)
        state = TableState(config=config, table=table, kinds=kinds)
        with self._lock:
            self._states[key] = state
        return state

    def _ddl(self) -> Any:
        return _DDLTransaction(self._writer)


class _DDLTransaction:
    """A write transaction that serializes schema changes across processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._context: Any = None

    def __enter__(self) -> Connection:
        self._context = self._engine.begin()
        conn: Connection = self._context.__enter__()
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7400291)"))
        return conn

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)


def _owner_column(config: Table) -> str | None:
    return None if config.access is None else config.access.owner_column


def _recorded_kinds(conn: Connection, key: str) -> dict[str, ColumnType]:
    rows = conn.execute(
        sa.select(REGISTRY.c.column_name, REGISTRY.c.kind).where(REGISTRY.c.table_name == key)
    ).all()
    return {name: kind for name, kind in rows if name != _TABLE_MARKER}


def _register(conn: Connection, key: str, name: str, kind: str) -> None:
    exists = conn.execute(
        sa.select(REGISTRY.c.kind).where(
            REGISTRY.c.table_name == key, REGISTRY.c.column_name == name
        )
    ).first()
    if exists is None:
        conn.execute(REGISTRY.insert().values(table_name=key, column_name=name, kind=kind))


def _add_column(conn: Connection, table: str, name: str, kind: ColumnType) -> None:
    # Names were validated against a strict pattern and are quoted; the type is ours.
    preparer = conn.dialect.identifier_preparer
    type_sql = sql_type(kind).compile(dialect=conn.dialect)
    conn.exec_driver_sql(
        f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(name)} {type_sql}"
    )


def _ensure_clock(conn: Connection, key: str) -> None:
    exists = conn.execute(sa.select(CLOCK.c.last_ms).where(CLOCK.c.table_name == key)).first()
    if exists is None:
        conn.execute(CLOCK.insert().values(table_name=key, last_ms=0))
