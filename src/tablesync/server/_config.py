"""Table and server settings: the ``Table`` value type and the TOML loader."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._exceptions import ServerConfigError
from ._access import Access, access_from_mapping

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.sql.elements import ColumnElement
    from starlette.requests import Request

    from ._auth import Authenticator

#: The column types a table may declare, and their JSON shapes on the wire.
COLUMN_TYPES = ("string", "integer", "number", "boolean", "datetime", "json")

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
    """

    name: str
    columns: Mapping[str, ColumnType] = field(default_factory=dict)
    soft_delete: bool = True
    page_size: int | None = None
    max_top: int = 1000
    conflict_policy: ConflictPolicy = "reject"
    skip_version_check: bool = False
    dynamic_schema: bool | None = None
    view: ViewFunction | None = None
    insert_hook: InsertHook | None = None
    before_commit: WriteHook | None = None
    after_commit: WriteHook | None = None
    access: Access | None = None

    def __post_init__(self) -> None:
        if not is_valid_table_name(self.name):
            raise ServerConfigError(
                f"invalid table name {self.name!r}: use a letter then letters, digits or '_' "
                "(at most 63 characters, not starting with 'tablesync_')"
            )
        for column, kind in self.columns.items():
            _check_column(self.name, column, kind)
        if self.page_size is not None and not 1 <= self.page_size <= 100_000:
            raise ServerConfigError(f"table {self.name!r}: page_size must be 1..100000")
        if not 1 <= self.max_top <= 1_000_000:
            raise ServerConfigError(f"table {self.name!r}: max_top must be 1..1000000")
        if not callable(self.conflict_policy) and self.conflict_policy not in _POLICIES:
            raise ServerConfigError(
                f"table {self.name!r}: conflict_policy must be one of {_POLICIES} or a callable"
            )
        object.__setattr__(self, "columns", dict(self.columns))
        self._check_access()

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
    if not is_valid_column_name(column):
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
    """

    tables: tuple[Table, ...] = ()
    database: str | None = None
    dynamic_schema: bool | None = None
    max_body_bytes: int | None = None
    cors_origins: tuple[str, ...] = ()
    auth: Authenticator | None = None
    statement_timeout_ms: int | None = None


_TABLE_KEYS = frozenset(
    {
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
    {"database", "dynamic_schema", "max_body_bytes", "cors_origins", "auth", "statement_timeout_ms"}
)


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
    server = _section(data, "server", source)
    _reject_unknown(server, _SERVER_KEYS, f"{source} [server]")
    tables = tuple(
        _table_from_mapping(name, _section(_section(data, "tables", source), name, source))
        for name in _section(data, "tables", source)
    )
    return ServerConfig(
        tables=tables,
        database=_typed(server, "database", str, source),
        dynamic_schema=_typed(server, "dynamic_schema", bool, source),
        max_body_bytes=_typed(server, "max_body_bytes", int, source),
        cors_origins=tuple(_typed(server, "cors_origins", list, source) or ()),
        auth=_auth(server, source),
        statement_timeout_ms=_typed(server, "statement_timeout_ms", int, source),
    )


def _auth(server: Mapping[str, Any], source: str) -> Authenticator | None:
    if "auth" not in server:
        return None
    from ._auth_config import auth_from_mapping

    return auth_from_mapping(_section(server, "auth", source), f"{source} [server.auth]")


def _table_from_mapping(name: str, settings: Mapping[str, Any]) -> Table:
    _reject_unknown(settings, _TABLE_KEYS, f"[tables.{name}]")
    values = dict(settings)
    if "access" in values:
        where = f"[tables.{name}.access]"
        values["access"] = access_from_mapping(_section(values, "access", where), where)
    try:
        return Table(name, **values)
    except TypeError as exc:
        raise ServerConfigError(f"[tables.{name}]: {exc}") from exc


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ServerConfigError(f"{source}: [{key}] must be a table")
    return value


def _reject_unknown(settings: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(settings) - allowed
    if unknown:
        raise ServerConfigError(f"{where}: unknown key(s) {sorted(unknown)}")


def _typed(settings: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    value = settings.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise ServerConfigError(f"{source}: [server] {key} must be a {kind.__name__}")
    return value


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
