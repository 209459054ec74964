"""Header and query-parameter names, API versions and ETags."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

API_VERSION_HEADER = "ZUMO-API-VERSION"
AUTH_HEADER = "X-ZUMO-AUTH"
OPTIONS_HEADER = "X-ZUMO-Options"
#: tablesync's retry-safety extension (docs/protocol-extensions.md): servers that do not
#: know it ignore it.
IDEMPOTENCY_HEADER = "Idempotency-Key"
INCLUDE_DELETED_PARAM = "__includedeleted"

_API_VERSION = re.compile(r"^(?P<major>[23])\.0(?:\.\d+)?$")


class ApiVersion(enum.IntEnum):
    """The two protocol generations tablesync speaks."""

    V2 = 2
    """Azure Mobile Apps: OData v3 syntax, PATCH updates, ``Link`` paging."""
    V3 = 3
    """Datasync: OData v4 syntax, PUT updates, ``nextLink`` paging."""

    @property
    def header_value(self) -> str:
        """The value a client sends in ``ZUMO-API-VERSION``."""
        return f"{self.value}.0.0"


def parse_api_version(query: Mapping[str, str], headers: Mapping[str, str]) -> ApiVersion | None:
    """Read ``ZUMO-API-VERSION``: the query parameter (any case) wins over the header.

    Returns ``None`` when it is missing; raises ``ValueError`` when it is present but invalid.
    """
    raw: str | None = None
    for key, value in query.items():
        if key.lower() == API_VERSION_HEADER.lower():
            raw = value
            break
    if raw is None:
        raw = headers.get(API_VERSION_HEADER.lower()) or headers.get(API_VERSION_HEADER)
    if raw is None:
        return None
    match = _API_VERSION.match(raw.strip())
    if match is None:
        raise ValueError(f"invalid {API_VERSION_HEADER} {raw!r}: expected 2.0.0 or 3.0.0")
    return ApiVersion(int(match["major"]))


def etag_from_version(version: str) -> str:
    """Quote a version as an ETag, escaping inner quotes."""
    return '"' + version.replace('"', '\\"') + '"'


def version_from_etag(etag: str) -> str:
    """Strip the quotes and escapes of an ETag; raises ``ValueError`` for weak tags."""
    etag = etag.strip()
    if etag.startswith("W/"):
        raise ValueError("weak ETags are not accepted")
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        etag = etag[1:-1]
    return etag.replace('\\"', '"')


def parse_etag_list(header: str) -> list[str]:
    """Split an ``If-Match`` / ``If-None-Match`` value into versions; ``*`` stays ``*``.

    Raises ``ValueError`` for weak or malformed tags.
    """
    tags = re.findall(r'\s*(W/)?("(?:[^"\\]|\\.)*"|\*|[^,\s]+)\s*(?:,|$)', header)
    if not tags:
        raise ValueError(f"malformed entity tag list {header!r}")
    versions: list[str] = []
    for weak, tag in tags:
        if weak:
            raise ValueError("weak ETags are not accepted")
        versions.append("*" if tag == "*" else version_from_etag(tag))
    return versions
