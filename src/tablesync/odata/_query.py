"""The :class:`Query` value: a filter, ordering, paging and flags, for both ends of the wire."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .._exceptions import QueryError, UnsupportedQueryError
from ..protocol.headers import API_VERSION_HEADER, ApiVersion
from ._builder import Term
from ._parser import parse_filter, parse_orderby, parse_select
from ._printer import to_odata
from .ast import Binary, Call, Expr, In, Literal, Member, OrderBy, Unary

__all__ = ["Query"]

_EXPR_TYPES = (Literal, Member, Unary, Binary, Call, In)
_FILTER_OPTION = "$filter"
_RESERVED = frozenset({"__includedeleted", API_VERSION_HEADER.lower()})
# Options a client may send that change nothing the server does.
_IGNORED_OPTIONS = frozenset({"$format"})

FilterInput = Expr | Term | str | None
OrderByInput = str | OrderBy | Term | Iterable[OrderBy | Term | str] | None
SelectInput = str | Iterable[str] | None
ParametersInput = Mapping[str, str] | Iterable[tuple[str, str]] | None


@dataclass(frozen=True, slots=True, init=False)
class Query:
    """A table query: ``$filter``, ``$orderby``, ``$skip``, ``$top``, ``$select`` and flags.

    The constructor takes friendly values and normalises them; text is parsed, so bad input
    fails here with a :class:`~tablesync.QueryError` rather than at the server:

    ```python
    from tablesync.odata import F, Query

    q = Query("rating eq 'PG'", order_by="title desc, year", top=5, select=["id", "title"])
    q = Query(F.rating == "PG", order_by=["title", "-year"])
    q.to_params(ApiVersion.V3)  # [("$filter", "rating eq 'PG'"), ("$orderby", ...), ...]
    ```
    """

    filter: Expr | None
    """The condition rows must meet, or ``None`` for every row."""
    order_by: tuple[OrderBy, ...]
    """Sort terms, most significant first."""
    skip: int | None
    """Rows to skip, or ``None``."""
    top: int | None
    """The most rows to return, or ``None`` for the server's default."""
    select: tuple[str, ...]
    """The properties to return; empty means all of them."""
    include_deleted: bool
    """Also return soft-deleted rows."""
    include_count: bool
    """Ask for the filtered total (``$count`` / ``$inlinecount``)."""
    parameters: tuple[tuple[str, str], ...]
    """Extra user query parameters, sent as they are."""

    def __init__(
        self,
        filter: FilterInput = None,
        *,
        order_by: OrderByInput = None,
        skip: int | None = None,
        top: int | None = None,
        select: SelectInput = None,
        include_deleted: bool = False,
        include_count: bool = False,
        parameters: ParametersInput = None,
    ) -> None:
        values = {
            "filter": _normalise_filter(filter),
            "order_by": _normalise_order_by(order_by),
            "skip": _normalise_count("skip", skip),
            "top": _normalise_count("top", top),
            "select": _normalise_select(select),
            "include_deleted": _normalise_flag("include_deleted", include_deleted),
            "include_count": _normalise_flag("include_count", include_count),
            "parameters": _normalise_parameters(parameters),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Query:
        """Return a copy with some fields changed (friendly values are accepted, as above).

        Raises:
            TypeError: when a name is not a field of :class:`Query`.
        """
        unknown = set(changes) - {field.name for field in fields(self)}
        if unknown:
            raise TypeError(f"Query has no field(s) {', '.join(sorted(unknown))}")
        current = {field.name: getattr(self, field.name) for field in fields(self)}
        current.update(changes)
        filter_ = current.pop("filter")
        return Query(filter_, **current)

    def to_params(self, version: ApiVersion = ApiVersion.V3) -> list[tuple[str, str]]:
        """The query parameters for the wire, unencoded (the HTTP client encodes them).

        v2 asks for a count with ``$inlinecount=allpages`` and for deleted rows with
        ``__includeDeleted=true``; v3 uses ``$count=true`` and ``__includedeleted=true``.
        """
        params: list[tuple[str, str]] = []
        if self.filter is not None:
            params.append((_FILTER_OPTION, to_odata(self.filter, version)))
        if self.order_by:
            params.append(("$orderby", format_order_by(self.order_by, version)))
        if self.skip is not None:
            params.append(("$skip", str(self.skip)))
        if self.top is not None:
            params.append(("$top", str(self.top)))
        if self.select:
            params.append(("$select", ",".join(self.select)))
        params.extend(_flag_params(self, version))
        params.extend(self.parameters)
        return params

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> Query:
        """Read a query from decoded request parameters, as a server receives them.

        Accepts both dialects: ``$count`` or ``$inlinecount``, ``__includedeleted`` in any
        case. Other parameters not starting with ``$`` become :attr:`parameters`, except
        ``ZUMO-API-VERSION``.

        Raises:
            QueryError: for a malformed or repeated option, a negative or non-numeric
                ``$skip``/``$top``; ``UnsupportedQueryError`` for an unknown ``$`` option.
        """
        options: dict[str, str] = {}
        extra: list[tuple[str, str]] = []
        for name, value in params:
            key = name.lower()
            if key.startswith("$") or key in _RESERVED:
                if key in options:
                    raise QueryError(f"the query option {name} is given more than once")
                options[key] = value
            else:
                extra.append((name, value))
        return cls(**_options_to_fields(options), parameters=extra)


def format_order_by(terms: Iterable[OrderBy], version: ApiVersion = ApiVersion.V3) -> str:
    """Print ``$orderby`` terms: ``title desc,year``."""
    return ",".join(to_odata(t.expr, version) + (" desc" if t.descending else "") for t in terms)


def _flag_params(query: Query, version: ApiVersion) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if query.include_count:
        params.append(
            ("$inlinecount", "allpages") if version is ApiVersion.V2 else ("$count", "true")
        )
    if query.include_deleted:
        name = "__includeDeleted" if version is ApiVersion.V2 else "__includedeleted"
        params.append((name, "true"))
    return params


def _options_to_fields(options: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "filter": options.pop("$filter", None),
        "order_by": options.pop("$orderby", None),
        "skip": _parse_count("$skip", options.pop("$skip", None)),
        "top": _parse_count("$top", options.pop("$top", None)),
        "select": options.pop("$select", None),
        "include_count": _parse_count_flag(options),
        "include_deleted": _parse_bool("__includedeleted", options.pop("__includedeleted", None)),
    }
    options.pop(API_VERSION_HEADER.lower(), None)
    unknown = sorted(set(options) - _IGNORED_OPTIONS)
    if unknown:
        raise UnsupportedQueryError(f"the query option {unknown[0]} is not supported")
    return result


def _parse_count(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise QueryError(f"{name} must be a non-negative integer, got {value!r}")
    if len(text) > 18:
        raise QueryError(f"{name} is too large: {value!r}")
    return int(text)


def _parse_count_flag(options: dict[str, str]) -> bool:
    count = options.pop("$count", None)
    inline = options.pop("$inlinecount", None)
    if inline is not None and inline.strip().lower() not in ("allpages", "none"):
        raise QueryError(f"$inlinecount must be 'allpages' or 'none', got {inline!r}")
    wants_inline = inline is not None and inline.strip().lower() == "allpages"
    return _parse_bool("$count", count) or wants_inline


def _parse_bool(name: str, value: str | None) -> bool:
    if value is None:
        return False
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise QueryError(f"{name} must be 'true' or 'false', got {value!r}")
    return text == "true"


def _normalise_filter(value: FilterInput) -> Expr | None:
    if value is None or isinstance(value, _EXPR_TYPES):
        return value
    if isinstance(value, Term):
        return value.expr
    if isinstance(value, str):
        return parse_filter(value) if value.strip() else None
    raise QueryError(f"a filter must be OData text or an expression, not {type(value).__name__}")


def _normalise_order_by(value: OrderByInput) -> tuple[OrderBy, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_orderby(value)
    if isinstance(value, OrderBy | Term):
        return _order_by_item(value)
    if not isinstance(value, Iterable):
        raise QueryError(f"order_by must be text, terms or a list, not {type(value).__name__}")
    terms: list[OrderBy] = []
    for item in value:
        terms.extend(_order_by_item(item))
    return tuple(terms)


def _order_by_item(item: OrderBy | Term | str) -> tuple[OrderBy, ...]:
    if isinstance(item, OrderBy):
        return (item,)
    if isinstance(item, Term):
        return (item.asc(),)
    if isinstance(item, str):
        # "-year" is the friendly spelling of "year desc".
        if item.startswith("-"):
            return (OrderBy(Member(item[1:].strip()), descending=True),)
        return parse_orderby(item)
    raise QueryError(f"an order_by term must be text or an OrderBy, not {type(item).__name__}")


def _normalise_count(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QueryError(f"{name} must be a non-negative integer or None, got {value!r}")
    return value


def _normalise_select(value: SelectInput) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_select(value)
    if not isinstance(value, Iterable):
        raise QueryError(f"select must be text or a list of names, not {type(value).__name__}")
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise QueryError(f"select names must be strings, not {type(name).__name__}")
    return parse_select(",".join(names)) if names else ()


def _normalise_flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise QueryError(f"{name} must be True or False, got {value!r}")
    return value


def _normalise_parameters(value: ParametersInput) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping | Iterable) or isinstance(value, str):
        raise QueryError(f"parameters must be a mapping or (name, value) pairs, not {value!r}")
    pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    result: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise QueryError(f"parameters must be (name, value) pairs, got {pair!r}")
        name, val = pair
        if not isinstance(name, str) or not isinstance(val, str) or not name:
            raise QueryError(f"parameter names and values must be strings, got {pair!r}")
        if name.startswith("$") or name.lower() in _RESERVED:
            raise QueryError(f"{name} is a reserved query option; use the Query field instead")
        result.append((name, val))
    return tuple(result)
