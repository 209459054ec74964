"""Authorization per table: who may read, insert, update and delete, and whose rows they see.

Modelled on the Datasync access-control provider: an operation check before anything runs,
and a per-user data view (``owner_column``) ANDed into every statement by the repository, so
a row outside the caller's view behaves as if it did not exist on every path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ColumnElement

from .._exceptions import ServerConfigError
from ._auth import Forbidden, Principal, Unauthorized

Operation: TypeAlias = Literal["read", "insert", "update", "delete"]
OPERATIONS: tuple[Operation, ...] = ("read", "insert", "update", "delete")
ANYONE, AUTHENTICATED, NOBODY = "anyone", "authenticated", "nobody"
_ROLE_PREFIX = "role:"


def _check_rule(rule: Any, where: str) -> None:
    if isinstance(rule, str) and (
        rule in (ANYONE, AUTHENTICATED, NOBODY)
        or (rule.startswith(_ROLE_PREFIX) and rule[len(_ROLE_PREFIX) :].strip())
    ):
        return
    raise ServerConfigError(
        f"{where}: access rule {rule!r} must be 'anyone', 'authenticated', 'nobody' "
        "or 'role:<name>'"
    )


@dataclass(frozen=True, slots=True)
class Access:
    """Who may do what on one table, and which rows each caller sees.

    Each operation has a rule: ``"anyone"`` (anonymous callers too), ``"authenticated"``,
    ``"role:<name>"`` (an authenticated caller with that role) or ``"nobody"``. ``update``
    covers PATCH, PUT and undelete.

    Example:
        ```python
        # Each user sees and changes only their own rows; the server stamps the owner.
        Table("todoitem", columns={"text": "string", "owner": "string"},
              access=Access(owner_column="owner"))
        # A public read-only catalogue edited by editors.
        Table("movies", columns={...}, access=Access(read="anyone", insert="role:editor",
              update="role:editor", delete="role:editor"))
        ```

    Attributes:
        read: the rule for queries, counts and reads by id.
        insert: the rule for inserts.
        update: the rule for PATCH, PUT and undelete.
        delete: the rule for DELETE.
        owner_column: a declared string column holding the owner's user id. The server
            stamps it on insert and ignores any value a client sends for it; callers see,
            count, update and delete only rows they own.
        admin_role: callers with this role see every row despite ``owner_column``.
    """

    read: str = AUTHENTICATED
    insert: str = AUTHENTICATED
    update: str = AUTHENTICATED
    delete: str = AUTHENTICATED
    owner_column: str | None = None
    admin_role: str | None = None

    def __post_init__(self) -> None:
        for operation in OPERATIONS:
            _check_rule(getattr(self, operation), f"Access.{operation}")
        if self.owner_column is not None and ANYONE in self.rules().values():
            raise ServerConfigError(
                "Access: a table with an owner_column cannot allow 'anyone' (anonymous "
                "callers own no rows)"
            )

    @classmethod
    def public(cls) -> Access:
        """Everyone may do everything (the default of an app without authentication)."""
        return cls(read=ANYONE, insert=ANYONE, update=ANYONE, delete=ANYONE)

    def rules(self) -> dict[Operation, str]:
        """The rule of each operation."""
        return {operation: getattr(self, operation) for operation in OPERATIONS}

    @property
    def needs_authentication(self) -> bool:
        """Whether some operation needs an authenticated caller."""
        return any(rule != ANYONE for rule in self.rules().values())

    def check(self, operation: Operation, principal: Principal | None) -> None:
        """Allow ``operation`` for ``principal``, or raise 401 (anonymous) / 403 (not allowed)."""
        rule: str = getattr(self, operation)
        if rule == ANYONE:
            return
        if principal is None:
            raise Unauthorized("Authentication is required: send a bearer token or API key")
        if rule == AUTHENTICATED:
            return
        if rule.startswith(_ROLE_PREFIX) and rule[len(_ROLE_PREFIX) :] in principal.roles:
            return
        raise Forbidden(f"You may not {operation} items of this table")

    def view(self, principal: Principal | None, table: sa.Table) -> ColumnElement[bool]:
        """The rows ``principal`` may see: all, or those it owns (none for anonymous)."""
        if self.owner_column is None or self.is_admin(principal):
            return sa.true()
        if principal is None:
            return sa.false()
        return owner_view(table.c[self.owner_column], principal.user_id)

    def is_admin(self, principal: Principal | None) -> bool:
        """Whether ``principal`` holds the admin role (sees every row)."""
        return (
            principal is not None
            and self.admin_role is not None
            and self.admin_role in principal.roles
        )

    def stamp(self, principal: Principal | None, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with the owner column set to the caller (whatever the client sent)."""
        if self.owner_column is None:
            return values
        if principal is None:
            raise Unauthorized("Authentication is required to insert into this table")
        return {**values, self.owner_column: principal.user_id}

    def protected_columns(self) -> frozenset[str]:
        """Columns a client can never write (the owner column)."""
        return frozenset() if self.owner_column is None else frozenset({self.owner_column})


def access_from_mapping(settings: Mapping[str, Any], where: str) -> Access:
    """An ``Access`` from a TOML table such as ``[tables.todo.access]``."""
    allowed = {*OPERATIONS, "owner_column", "admin_role"}
    unknown = set(settings) - allowed
    if unknown:
        raise ServerConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key, value in settings.items():
        if not isinstance(value, str):
            raise ServerConfigError(f"{where}: {key} must be a string")
    return Access(**dict(settings))


_METHOD_OPERATIONS: dict[tuple[bool, str], Operation] = {
    (False, "get"): "read",
    (False, "post"): "insert",
    (True, "get"): "read",
    (True, "patch"): "update",
    (True, "put"): "update",
    (True, "post"): "update",
    (True, "delete"): "delete",
}
_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "zumoAuth": {"type": "apiKey", "in": "header", "name": "X-ZUMO-AUTH"},
}
_UNAUTHORIZED = {"description": "Missing or invalid credentials", "content": {}}
_FORBIDDEN = {"description": "The caller may not do this", "content": {}}


def secure_openapi(
    document: dict[str, Any], access_of: Mapping[str, Access], api_key_header: str | None
) -> dict[str, Any]:
    """``document`` with security schemes, and per-operation requirements from ``access_of``.

    ``access_of`` maps each path's table name to its access; operations open to ``anyone``
    list no requirement.
    """
    schemes = dict(_SCHEMES)
    if api_key_header is not None:
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": api_key_header}
    requirement: list[dict[str, list[str]]] = [{name: []} for name in schemes]
    document.setdefault("components", {})["securitySchemes"] = schemes
    for path, methods in document.get("paths", {}).items():
        parts = path.split("/")
        access = access_of.get(parts[2]) if len(parts) > 2 and parts[1] == "tables" else None
        if access is None:
            continue
        for method, operation in methods.items():
            kind = _METHOD_OPERATIONS.get((len(parts) > 3, method))
            if kind is None or getattr(access, kind) == ANYONE:
                continue
            operation["security"] = requirement
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", _UNAUTHORIZED)
            responses.setdefault("403", _FORBIDDEN)
    return document


#: The named parameter of an owner view: the caller's user id.
_OWNER = "ts_owner"


def owner_view(column: sa.Column[Any], user_id: str) -> ColumnElement[bool]:
    """The rows ``user_id`` owns: ``column`` holds it.

    The id is a named parameter, so that a statement holding this view can be kept for
    every caller (``_repository.kept``); a statement built for one request carries it.
    """
    return column == sa.bindparam(_OWNER, user_id, type_=column.type)


def owned_by(view: ColumnElement[bool]) -> tuple[ColumnElement[bool], dict[str, Any]] | None:
    """An :func:`owner_view` as the one view shared by all owners and its values to bind.

    ``None`` for any other view.
    """
    if not isinstance(view, BinaryExpression) or view.operator is not operators.eq:
        return None
    column, owner = view.left, view.right
    if not isinstance(owner, BindParameter) or owner.key != _OWNER:
        return None
    assert isinstance(column, sa.Column)
    return _any_owner(column), {_OWNER: owner.value}


@functools.lru_cache(maxsize=256)
def _any_owner(column: sa.Column[Any]) -> ColumnElement[bool]:
    return column == sa.bindparam(_OWNER, type_=column.type, required=True)
