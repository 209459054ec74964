"""Query options of ``GET /tables/{table}`` and the next-page link (protocol.md §4.1, §4.3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from starlette.requests import Request

from ..odata import parse_filter, parse_orderby, parse_select
from ..odata.ast import Expr, OrderBy
from ._errors import BadRequest

MAX_SKIP = 2**31 - 1
_OPTIONS = ("$filter", "$orderby", "$skip", "$top", "$select", "$count", "$inlinecount")
# In a query string "+" means a space, so a raw "+" in a datetime offset arrives as " hh:mm";
# a space can never stand there, so it is restored (protocol.md §10: never a space).
_LOST_PLUS = re.compile(r"(datetime(?:offset)?'[^']*?\d) (\d{2}:?\d{2}')", re.IGNORECASE)
_LINK_SAFE = "$'(),:*!@/"


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """The parsed OData options of one query request.

    Attributes:
        filter: the ``$filter`` tree, or ``None``.
        order_by: the ``$orderby`` terms (``id`` is added as a tie-break when compiled).
        skip: rows to skip.
        top: the most rows wanted overall, or ``None``.
        select: the ``$select`` fields (empty: all).
        count: whether the filtered total is wanted (``$count=true`` / ``$inlinecount=allpages``).
        params: every query parameter as received (decoded once), for building links.
    """

    filter: Expr | None
    order_by: tuple[OrderBy, ...]
    skip: int
    top: int | None
    select: tuple[str, ...]
    count: bool
    params: tuple[tuple[str, str], ...]


def parse_options(request: Request, *, max_top: int) -> QueryOptions:
    """Parse and validate the OData options of ``request`` (400 with a clear message)."""
    params = tuple(parse_qsl(request.url.query, keep_blank_values=True))
    options: dict[str, str] = {}
    for key, value in params:
        if key in _OPTIONS:
            if key in options:
                raise BadRequest(f"The query option {key} is given more than once")
            options[key] = value
    return QueryOptions(
        filter=_filter(options.get("$filter")),
        order_by=_order_by(options.get("$orderby")),
        skip=_count_option("$skip", options.get("$skip"), MAX_SKIP) or 0,
        top=_count_option("$top", options.get("$top"), max_top),
        select=_select(options.get("$select")),
        count=_wants_count(options),
        params=params,
    )


def _filter(text: str | None) -> Expr | None:
    if text is None or not text.strip():
        return None
    return parse_filter(_LOST_PLUS.sub(r"\1+\2", text))


def _order_by(text: str | None) -> tuple[OrderBy, ...]:
    if text is None or not text.strip():
        return ()
    return parse_orderby(text)


def _select(text: str | None) -> tuple[str, ...]:
    if text is None or not text.strip():
        return ()
    return parse_select(text)


def _count_option(name: str, text: str | None, maximum: int) -> int | None:
    if text is None:
        return None
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii():
        raise BadRequest(f"{name} must be a whole number of 0 or more, got {text[:40]!r}")
    value = int(stripped)
    if value > maximum:
        raise BadRequest(f"{name} must be at most {maximum}; you cannot request more records")
    return value


def _wants_count(options: dict[str, str]) -> bool:
    count = options.get("$count")
    if count is not None and count.strip().lower() not in ("true", "false"):
        raise BadRequest(f"$count must be true or false, got {count[:40]!r}")
    inline = options.get("$inlinecount")
    if inline is not None and inline.strip().lower() not in ("allpages", "none"):
        raise BadRequest(f"$inlinecount must be allpages or none, got {inline[:40]!r}")
    return (count or "").strip().lower() == "true" or (inline or "").strip().lower() == "allpages"


def next_page(options: QueryOptions, returned: int, more: bool) -> tuple[int, int | None] | None:
    """``($skip, $top)`` of the next page, or ``None`` when this page is the last one.

    The AMA rule (protocol.md §4.3): ``skip' = skip + n``; with a ``$top``, ``top' = top - n``
    and no next page once ``top' <= 0``; never past the last matching row.
    """
    if not more:
        return None
    skip = options.skip + returned
    if options.top is None:
        return skip, None
    top = options.top - returned
    return (skip, top) if top > 0 else None


def link_url(
    request: Request, options: QueryOptions, skip: int, top: int | None, *, path_only: bool
) -> str:
    """The original query with ``$skip``/``$top`` replaced: absolute, or the path only."""
    params = [(k, v) for k, v in options.params if k not in ("$skip", "$top")]
    params.append(("$skip", str(skip)))
    if top is not None:
        params.append(("$top", str(top)))
    query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_LINK_SAFE)}" for k, v in params)
    path = quote(request.url.path, safe="/:@!$&'()*+,;=")
    if path_only:
        return f"{path}?{query}"
    return f"{origin(request)}{path}?{query}"


def origin(request: Request) -> str:
    """``scheme://host[:port]`` of the request, from its Host header, default port dropped."""
    url = request.url
    default = {"http": 80, "https": 443}.get(url.scheme)
    host = url.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{host}{port}"
