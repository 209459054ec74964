"""Query options of ``GET /tables/{table}`` and the next-page link (protocol.md §4.1, §4.3).

A query ordered by ``updatedAt`` (the pull pattern) pages by keyset: its next link carries
``$skiptoken``, the opaque (updatedAt, id) of the page's last row, instead of ``$skip``, so a
page is one index range scan on ``(updatedAt, id)`` at any depth (no OFFSET). ``$skip`` keeps
working for clients that send it (the official clients page incremental pulls with it).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from starlette.requests import Request

from ..odata import parse_filter, parse_orderby, parse_select
from ..odata.ast import Expr, Member, OrderBy
from ..protocol import is_valid_id
from ._errors import BadRequest

MAX_SKIP = 2**31 - 1
SKIPTOKEN = "$skiptoken"
_OPTIONS = (
    "$filter",
    "$orderby",
    "$skip",
    "$top",
    "$select",
    "$count",
    "$inlinecount",
    SKIPTOKEN,
)
_TOKEN_VERSION = "k1"
_MAX_TOKEN_CHARS = 1024
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
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
        after: the keyset position from ``$skiptoken``: rows after it, or ``None``.
    """

    filter: Expr | None
    order_by: tuple[OrderBy, ...]
    skip: int
    top: int | None
    select: tuple[str, ...]
    count: bool
    params: tuple[tuple[str, str], ...]
    after: Keyset | None = None


@dataclass(frozen=True, slots=True)
class Keyset:
    """A position in ``(updatedAt, id)`` order: the last row of the previous page.

    Attributes:
        updated_ms: that row's ``updatedAt`` in Unix milliseconds.
        item_id: that row's id.
    """

    updated_ms: int
    item_id: str

    def token(self) -> str:
        """The opaque ``$skiptoken`` value (URL-safe base64, versioned)."""
        raw = f"{_TOKEN_VERSION}|{self.updated_ms}|{self.item_id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_skiptoken(text: str) -> Keyset:
    """Decode and validate a ``$skiptoken`` made by ``Keyset.token`` (400 otherwise)."""
    invalid = BadRequest(
        "$skiptoken is not valid: send it exactly as it came in the previous page's next link"
    )
    if not text or len(text) > _MAX_TOKEN_CHARS or not text.isascii():
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    version, _, rest = raw.partition("|")
    millis, _, item_id = rest.partition("|")
    if version != _TOKEN_VERSION or not millis.isdigit() or not millis.isascii():
        raise invalid
    if int(millis) > _MAX_MS or not is_valid_id(item_id):
        raise invalid
    return Keyset(int(millis), item_id)


def keyset_order(order_by: tuple[OrderBy, ...]) -> tuple[bool, bool] | None:
    """``(updatedAt descending, id descending)`` when the order allows keyset paging.

    That is ``updatedAt [asc|desc]``, optionally followed by ``id [asc|desc]`` (``id asc`` is
    the tie-break the server adds); any other order pages with ``$skip``.
    """
    names = [term.expr.name.lower() if isinstance(term.expr, Member) else "" for term in order_by]
    if names == ["updatedat"]:
        return order_by[0].descending, False
    if names == ["updatedat", "id"]:
        return order_by[0].descending, order_by[1].descending
    return None


def parse_options(request: Request, *, max_top: int) -> QueryOptions:
    """Parse and validate the OData options of ``request`` (400 with a clear message)."""
    params = tuple(parse_qsl(request.url.query, keep_blank_values=True))
    options: dict[str, str] = {}
    for key, value in params:
        if key in _OPTIONS:
            if key in options:
                raise BadRequest(f"The query option {key} is given more than once")
            options[key] = value
    order_by = _order_by(options.get("$orderby"))
    token = options.get(SKIPTOKEN)
    if token is not None and keyset_order(order_by) is None:
        raise BadRequest("$skiptoken needs the $orderby=updatedAt it was issued for")
    return QueryOptions(
        filter=_filter(options.get("$filter")),
        order_by=order_by,
        skip=_count_option("$skip", options.get("$skip"), MAX_SKIP) or 0,
        top=_count_option("$top", options.get("$top"), max_top),
        select=_select(options.get("$select")),
        count=_wants_count(options),
        params=params,
        after=None if token is None else parse_skiptoken(token.strip()),
    )


# Parsed options by their exact text. Clients repeat the same texts (a pull's next links keep
# its $filter and $orderby), and parsing in Python costs more than the rest of a small page.
# The trees are frozen values, so sharing them between requests and threads is safe; a text
# that fails to parse raises and is not cached.
_PARSED_CACHE_SIZE = 1024


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _filter(text: str | None) -> Expr | None:
    if text is None or not text.strip():
        return None
    return parse_filter(_LOST_PLUS.sub(r"\1+\2", text))


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _order_by(text: str | None) -> tuple[OrderBy, ...]:
    if text is None or not text.strip():
        return ()
    return parse_orderby(text)


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
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
    request: Request,
    options: QueryOptions,
    skip: int,
    top: int | None,
    *,
    path_only: bool,
    after: Keyset | None = None,
) -> str:
    """The original query with ``$skip``/``$top`` replaced: absolute, or the path only.

    With ``after`` the link continues by keyset: ``$skiptoken`` replaces ``$skip``.
    """
    params = [(k, v) for k, v in options.params if k not in ("$skip", "$top", SKIPTOKEN)]
    if after is None:
        params.append(("$skip", str(skip)))
    else:
        params.append((SKIPTOKEN, after.token()))
    if top is not None:
        params.append(("$top", str(top)))
    query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_LINK_SAFE)}" for k, v in params)
    path = quote(request.url.path, safe="/:@!$&'()*+,;=")
    if path_only:
        return f"{path}?{query}"
    return f"{origin(request)}{path}?{query}"


_ORIGIN = "tablesync.origin"
"""Scope key of the request's origin, once computed: a ``$batch`` computes it before it
copies its scope into each operation's request, which then need not parse the URL again."""


def origin(request: Request) -> str:
    """``scheme://host[:port]`` of the request, from its Host header, default port dropped."""
    known = request.scope.get(_ORIGIN)
    if isinstance(known, str):
        return known
    request.scope[_ORIGIN] = computed = _origin_of(request)
    return computed


#: A Host header of a name or IPv4 address and an optional port: read without building
#: ``request.url`` (Starlette parses the whole URL for it: 3% of an insert's CPU).
_PLAIN_HOST = re.compile(r"([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?", re.ASCII)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(request: Request) -> str:
    scheme = request.scope.get("scheme", "http")
    host_header = request.headers.get("host")
    plain = _PLAIN_HOST.fullmatch(host_header) if host_header else None
    number = int(plain[2]) if plain is not None and plain[2] else None
    if plain is not None and (number is None or number <= 65535):
        port = "" if number in (None, _DEFAULT_PORTS.get(scheme)) else f":{number}"
        return f"{scheme}://{plain[1].lower()}{port}"
    url = request.url
    default = _DEFAULT_PORTS.get(url.scheme)
    host = url.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{host}{port}"
