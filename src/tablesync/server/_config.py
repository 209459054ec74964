"""Table and server settings: the ``Table`` value type and the TOML loader."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from .._exceptions import ServerConfigError
from ..protocol import SYSTEM_PROPERTIES
from ._access import Access, access_from_mapping
from ._config_values import (
    expect_bool,
    expect_int,
    expect_seconds,
    expect_str,
    expect_str_list,
    expect_table,
    fail,
)

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.sql.elements import ColumnElement
    from starlette.requests import Request

    from ._auth import Authenticator

#: The column types a table may declare, and their JSON shapes on the wire.
COLUMN_TYPES = ("string", "integer", "number", "boolean", "datetime", "json")

_T = TypeVar("_T")

ColumnType: TypeAlias = Literal["string", "integer", "number", "boolean", "datetime", "json"]
MergeFunction: TypeAlias = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
ConflictPolicy: TypeAlias = Literal["reject", "server_wins", "client_wins"] | MergeFunction
#: ``view(request, table)``: the rows a caller may see, ANDed into every statement.
ViewFunction: TypeAlias = Callable[["Request", "sa.Table"], "ColumnElement[bool]"]
#: ``insert_hook(request, values)``: stamps server-owned columns (e.g. an owner) on insert.
InsertHook: TypeAlias = Callable[["Request", dict[str, Any]], dict[str, Any]]
#: ``hook(request, event)``: told about one successful write (see ``WriteEvent``).
WriteHook: TypeAlias = Callable[["Request", "WriteEvent"], None]

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RESERVED_COLUMNS = frozenset({"id", "createdat", "updatedat", "version", "deleted"})
_POLICIES = ("reject", "server_wins", "client_wins")
PAGE_SIZE_RANGE = (1, 100_000)
MAX_TOP_RANGE = (1, 1_000_000)
#: The largest ``$top`` by default, which bounds a sync pull's page (tablesync's client asks for
#: 5,000 rows, so keep it at least that): SQLite's JSON path serves 5,000 rows in about 25 ms
#: of the event loop. The Node server's is 1,000, ASP.NET Datasync's 128,000.
DEFAULT_MAX_TOP = 5000


def is_valid_table_name(name: str) -> bool:
    """True for names usable as a table: a letter, then letters, digits or ``_`` (max 63)."""
    return bool(_TABLE_NAME.match(name)) and not name.lower().startswith("tablesync_")


def is_valid_column_name(name: str) -> bool:
    """True for names usable as a user column (system property names excluded)."""
    return bool(_COLUMN_NAME.match(name)) and name.lower() not in _RESERVED_COLUMNS


@dataclass(frozen=True, slots=True)
class WriteEvent:
    """One successful write, as seen by the ``before_commit`` and ``after_commit`` hooks.

    Attributes:
        table: the table key (lower-cased name).
        operation: ``"insert"``, ``"update"``, ``"delete"`` or ``"undelete"``.
        item_id: the id of the written item.
        item: the stored item as the response carries it (v3 shape for v3 requests), or
            ``None`` when the response has no body (deletes).
    """

    table: str
    operation: Literal["insert", "update", "delete", "undelete"]
    item_id: str
    item: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Table:
    """One synced table: its columns and how it behaves.

    Example:
        ```python
        Table("movies", columns={"title": "string", "year": "integer"}, page_size=100)
        ```

    Attributes:
        name: the table's name; URLs match it case-insensitively.
        columns: user columns (name → one of ``COLUMN_TYPES``); system columns are implied.
        soft_delete: DELETE keeps a tombstone (``deleted=true``) so pulls learn about it.
        page_size: rows per page; ``None`` means 50 for v2 clients and 100 for v3 clients.
        max_top: the largest ``$top`` accepted (400 above it).
        conflict_policy: ``"reject"`` (409/412), ``"server_wins"``, ``"client_wins"``, or a
            callable ``merge(server_item, client_item) -> item``.
        skip_version_check: accept requests without ``ZUMO-API-VERSION`` (v3 is assumed).
        dynamic_schema: new fields add columns; ``None`` inherits the app setting.
        view: advanced: ``view(request, table)`` → the condition selecting the rows the caller
            may see; ANDed into every statement.
        insert_hook: advanced: ``insert_hook(request, values) -> values``, applied on insert.
        before_commit: advanced: ``hook(request, event)`` run inside the writing transaction,
            after the write, just before the commit. It holds the table's clock lock, so keep
            it short; raising aborts the write and nothing is stored (raise Starlette's
            ``HTTPException(status_code, detail)`` to answer with that status; anything
            else gives a 500).
        after_commit: advanced: ``hook(request, event)`` run once the write is committed
            (notifications, cache invalidation). Errors are logged, never sent to the client:
            the write has already happened.
        access: who may read and write, and the per-user data view (see ``Access``);
            ``None``: ``Access()`` (authenticated callers) when the app has ``auth``, else
            everyone.
        indexes: more indexes, created at start-up, each a sequence of column names
            (declared columns or system properties), for the filters and orderings the
            clients send, e.g. ``[("rating", "id")]``. One no longer listed is not dropped.
    """

    name: str
    columns: Mapping[str, ColumnType] = field(default_factory=dict)
    soft_delete: bool = True
    page_size: int | None = None
    max_top: int = DEFAULT_MAX_TOP
    conflict_policy: ConflictPolicy = "reject"
    skip_version_check: bool = False
    dynamic_schema: bool | None = None
    view: ViewFunction | None = None
    insert_hook: InsertHook | None = None
    before_commit: WriteHook | None = None
    after_commit: WriteHook | None = None
    access: Access | None = None
    indexes: Sequence[Sequence[str]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not is_valid_table_name(self.name):
            raise ServerConfigError(
                f"invalid table name {self.name!r}: use a letter then letters, digits or '_' "
                "(at most 63 characters, not starting with 'tablesync_')"
            )
        self._check_types()
        for column, kind in self.columns.items():
            _check_column(self.name, column, kind)
        if not callable(self.conflict_policy) and self.conflict_policy not in _POLICIES:
            raise ServerConfigError(
                f"table {self.name!r}: conflict_policy must be one of {_POLICIES} or a callable"
            )
        object.__setattr__(self, "columns", dict(self.columns))
        object.__setattr__(self, "indexes", self._checked_indexes())
        self._check_access()

    def _check_types(self) -> None:
        # A wrong type would otherwise pass silently ("no" is truthy) or fail mid-request.
        where = f"table {self.name!r}:"
        if not isinstance(self.columns, Mapping):
            raise fail(f"{where} columns", "a mapping of column name to type", self.columns)
        expect_bool(self.soft_delete, f"{where} soft_delete")
        expect_bool(self.skip_version_check, f"{where} skip_version_check")
        if self.dynamic_schema is not None:
            expect_bool(self.dynamic_schema, f"{where} dynamic_schema")
        if self.page_size is not None:
            expect_int(self.page_size, f"{where} page_size", *PAGE_SIZE_RANGE)
        expect_int(self.max_top, f"{where} max_top", *MAX_TOP_RANGE)
        for hook in ("view", "insert_hook", "before_commit", "after_commit"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise fail(f"{where} {hook}", "a callable", value)

    def _checked_indexes(self) -> tuple[tuple[str, ...], ...]:
        where = f"table {self.name!r}: indexes"
        if isinstance(self.indexes, str | bytes) or not isinstance(self.indexes, Sequence):
            raise fail(where, "a list of lists of column names", self.indexes)
        known = {*self.columns, *_SYSTEM_COLUMNS}
        indexes: list[tuple[str, ...]] = []
        for columns in self.indexes:
            names = tuple(columns) if isinstance(columns, list | tuple) else None
            if not names or not all(isinstance(name, str) for name in names):
                raise fail(where, "non-empty lists of column names", columns)
            unknown = [name for name in names if name not in known]
            if unknown:
                raise ServerConfigError(
                    f"{where}: {unknown[0]!r} is neither a declared column nor a system property"
                )
            if any(self.columns.get(name) == "json" for name in names):
                raise ServerConfigError(f"{where}: {list(names)}: json columns cannot be indexed")
            if len(set(names)) != len(names) or names in (*indexes, _SYNC_INDEX):
                raise ServerConfigError(f"{where}: {list(names)} repeats a column or an index")
            indexes.append(names)
        return tuple(indexes)

    def _check_access(self) -> None:
        if self.access is None:
            return
        if not isinstance(self.access, Access):
            raise ServerConfigError(f"table {self.name!r}: access must be an Access")
        owner = self.access.owner_column
        if owner is not None and self.columns.get(owner) != "string":
            raise ServerConfigError(
                f"table {self.name!r}: the owner column {owner!r} must be declared as a "
                "'string' column"
            )

    @property
    def key(self) -> str:
        """The case-insensitive lookup key of the table (its lower-cased name)."""
        return self.name.lower()


def _check_column(table: str, column: str, kind: str) -> None:
    if not isinstance(column, str) or not is_valid_column_name(column):
        raise ServerConfigError(
            f"table {table!r}: invalid column name {column!r} (letters, digits, '_'; "
            "not a system property)"
        )
    if kind not in COLUMN_TYPES:
        raise ServerConfigError(
            f"table {table!r}: column {column!r} has unknown type {kind!r}; "
            f"use one of {', '.join(COLUMN_TYPES)}"
        )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings read by ``load_config``; pass it to ``create_app(config=...)``.

    Attributes:
        tables: the configured tables.
        database: the database URL, when the file names one.
        dynamic_schema: whether unknown tables and fields create tables and columns.
        max_body_bytes: the largest request body accepted (after decompression).
        cors_origins: origins allowed by CORS (empty: CORS off).
        auth: the authenticator built from ``[server.auth]``, if any.
        statement_timeout_ms: the PostgreSQL statement timeout per request, if set.
        idempotency_ttl: how long ``Idempotency-Key`` responses are remembered, if set.
        body_timeout: the longest a client may take to send a request body, if set.
    """

    tables: tuple[Table, ...] = ()
    database: str | None = None
    dynamic_schema: bool | None = None
    max_body_bytes: int | None = None
    cors_origins: tuple[str, ...] = ()
    auth: Authenticator | None = None
    statement_timeout_ms: int | None = None
    idempotency_ttl: dt.timedelta | None = None
    body_timeout: dt.timedelta | None = None


#: The columns every item table has, which an index may name too.
_SYSTEM_COLUMNS = ("id", *SYSTEM_PROPERTIES)
#: The index every item table has (``_schema.build_table``).
_SYNC_INDEX = ("updatedAt", "id")
_TABLE_KEYS = frozenset(
    {
        "indexes",
        "columns",
        "soft_delete",
        "page_size",
        "max_top",
        "conflict_policy",
        "skip_version_check",
        "dynamic_schema",
        "access",
    }
)
_SERVER_KEYS = frozenset(
    {
        "database",
        "dynamic_schema",
        "max_body_bytes",
        "cors_origins",
        "auth",
        "statement_timeout_ms",
        "idempotency_ttl_seconds",
        "body_timeout_seconds",
    }
)
#: PostgreSQL's statement_timeout is a 32-bit count of milliseconds.
_MAX_STATEMENT_TIMEOUT_MS = 2**31 - 1
_MAX_IDEMPOTENCY_TTL_S = 10 * 366 * 86_400
_MAX_BODY_TIMEOUT_S = 3600.0


def load_config(path: str | Path) -> ServerConfig:
    """Read server settings from a TOML file.

    Example:
        ```toml
        [server]
        database = "sqlite:///tablesync.db"

        [tables.movies]
        soft_delete = true
        page_size = 100

        [tables.movies.columns]
        title = "string"
        year = "integer"
        ```

    Raises:
        ServerConfigError: the file is missing, not TOML, or holds an unknown key or value.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ServerConfigError(f"cannot read the configuration {str(path)!r}: {exc}") from exc
    return config_from_mapping(data, source=str(path))


def config_from_mapping(data: Mapping[str, Any], *, source: str = "<config>") -> ServerConfig:
    """Build a ``ServerConfig`` from already-parsed TOML data (see ``load_config``)."""
    unknown = set(data) - {"server", "tables"}
    if unknown:
        raise ServerConfigError(f"{source}: unknown section(s) {sorted(unknown)}")
    server = expect_table(data.get("server", {}), f"{source}: [server]")
    where = f"{source}: [server]"
    _reject_unknown(server, _SERVER_KEYS, where)
    tables = expect_table(data.get("tables", {}), f"{source}: [tables]")
    ttl = _optional(server, "idempotency_ttl_seconds", where, _ttl_seconds)
    body_timeout = _optional(server, "body_timeout_seconds", where, _body_timeout_seconds)
    return ServerConfig(
        tables=tuple(_table_from_mapping(name, value, source) for name, value in tables.items()),
        database=_optional(server, "database", where, expect_str),
        dynamic_schema=_optional(server, "dynamic_schema", where, expect_bool),
        max_body_bytes=_optional(server, "max_body_bytes", where, _positive_int),
        cors_origins=tuple(_optional(server, "cors_origins", where, expect_str_list) or ()),
        auth=_auth(server, source),
        statement_timeout_ms=_optional(server, "statement_timeout_ms", where, _timeout_ms),
        idempotency_ttl=None if ttl is None else dt.timedelta(seconds=ttl),
        body_timeout=None if body_timeout is None else dt.timedelta(seconds=body_timeout),
    )


def _positive_int(value: Any, where: str) -> int:
    return expect_int(value, where, 1)


def _timeout_ms(value: Any, where: str) -> int:
    return expect_int(value, where, 0, _MAX_STATEMENT_TIMEOUT_MS)


def _ttl_seconds(value: Any, where: str) -> int:
    return expect_int(value, where, 1, _MAX_IDEMPOTENCY_TTL_S)


def _body_timeout_seconds(value: Any, where: str) -> float:
    return expect_seconds(value, where, _MAX_BODY_TIMEOUT_S)


def _optional(
    settings: Mapping[str, Any], key: str, where: str, check: Callable[[Any, str], _T]
) -> _T | None:
    """``check(settings[key])`` with the key's path in its errors; ``None`` when absent."""
    return check(settings[key], f"{where} {key}") if key in settings else None


def _auth(server: Mapping[str, Any], source: str) -> Authenticator | None:
    if "auth" not in server:
        return None
    from ._auth_config import auth_from_mapping

    settings = expect_table(server["auth"], f"{source}: [server] auth")
    return auth_from_mapping(settings, f"{source}: [server.auth]")


def _table_from_mapping(name: str, settings: Any, source: str) -> Table:
    where = f"{source}: [tables.{name}]"
    settings = expect_table(settings, where)
    _reject_unknown(settings, _TABLE_KEYS, where)
    values: dict[str, Any] = {}
    for key, check in _TABLE_CHECKS.items():
        value = _optional(settings, key, where, check)
        if value is not None:
            values[key] = value
    if "columns" in settings:
        values["columns"] = _columns(settings["columns"], f"{where} columns")
    if "indexes" in settings:
        values["indexes"] = settings["indexes"]  # checked by Table, with the columns
    if "access" in settings:
        access = expect_table(settings["access"], f"{where} access")
        values["access"] = access_from_mapping(access, f"{source}: [tables.{name}.access]")
    try:
        return Table(name, **values)
    except ServerConfigError as exc:
        raise ServerConfigError(f"{where}: {exc}") from exc


def _columns(value: Any, where: str) -> dict[str, str]:
    columns = expect_table(value, where)
    return {name: expect_str(kind, f"{where}.{name}") for name, kind in columns.items()}


def _page_size(value: Any, where: str) -> int:
    return expect_int(value, where, *PAGE_SIZE_RANGE)


def _max_top(value: Any, where: str) -> int:
    return expect_int(value, where, *MAX_TOP_RANGE)


def _policy(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in _POLICIES:
        raise fail(where, f"one of {', '.join(_POLICIES)}", value)
    return value


#: The scalar ``[tables.X]`` keys and their checks (``columns``/``access`` are tables).
_TABLE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "soft_delete": expect_bool,
    "page_size": _page_size,
    "max_top": _max_top,
    "conflict_policy": _policy,
    "skip_version_check": expect_bool,
    "dynamic_schema": expect_bool,
}


def _reject_unknown(settings: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(settings) - allowed
    if unknown:
        raise ServerConfigError(f"{where}: unknown key(s) {sorted(unknown)}")


def resolve_tables(tables: Sequence[Table]) -> dict[str, Table]:
    """Index tables by their case-insensitive key; two tables with one key are an error."""
    index: dict[str, Table] = {}
    for table in tables:
        if not isinstance(table, Table):
            raise ServerConfigError(f"tables must hold Table objects, got {type(table).__name__}")
        if table.key in index:
            raise ServerConfigError(f"table {table.name!r} is configured twice")
        index[table.key] = table
    return index
