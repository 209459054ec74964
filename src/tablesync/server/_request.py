"""Reading requests: API version, path ids, options, preconditions and (gzip) JSON bodies."""

from __future__ import annotations

import datetime as dt
import email.utils
import zlib
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from ..protocol import ApiVersion, is_valid_id, loads, parse_api_version, parse_etag_list
from ..protocol.headers import API_VERSION_HEADER, OPTIONS_HEADER
from ._errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ._items import invalid_id_message
from ._repository import Preconditions


def api_version(request: Request, *, skip_check: bool) -> ApiVersion:
    """The request's protocol version; 400 when missing or invalid (unless checks are off)."""
    try:
        version = parse_api_version(request.query_params, request.headers)
    except ValueError as exc:
        if skip_check:
            return ApiVersion.V3
        raise BadRequest(
            f"An invalid API version was specified: {exc}. Send {API_VERSION_HEADER}: 2.0.0 "
            "or 3.0.0 (header or query parameter)"
        ) from exc
    if version is None:
        if skip_check:
            return ApiVersion.V3
        raise BadRequest(
            f"No API version was specified: send {API_VERSION_HEADER}: 2.0.0 or 3.0.0 "
            "(header or query parameter)"
        )
    return version


def path_segments(request: Request) -> tuple[str, str | None]:
    """The table name and item id of ``/tables/{table}[/{id}]``, each decoded exactly once.

    Read from the raw path when the server provides it, so an id holding ``%2F`` is seen as
    an id with a slash (and rejected), not as two path segments.
    """
    raw: bytes | None = request.scope.get("raw_path")
    root = request.scope.get("root_path", "")
    if raw is not None:
        text = raw.decode("latin-1")[len(root) :].split("?", 1)[0]
        parts = text.split("/", 3)
        if len(parts) >= 3 and parts[1] == "tables":
            return _decode_once(parts[2]), _decode_once(parts[3]) if len(parts) == 4 else None
    params = request.path_params
    return str(params["table"]), params.get("item_id")


def _decode_once(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequest("The URL path is not valid percent-encoded UTF-8") from exc


def checked_id(item_id: str) -> str:
    """``item_id`` if it follows the id rules, else 400."""
    if not is_valid_id(item_id):
        raise BadRequest(invalid_id_message(item_id))
    return item_id


def zumo_options(request: Request) -> set[str]:
    """The lower-cased ``X-ZUMO-Options`` flags (``include:deleted``, ``nextlink=path``)."""
    flags: set[str] = set()
    for header in request.headers.getlist(OPTIONS_HEADER):
        flags.update(part.strip().lower() for part in header.replace(";", ",").split(","))
    flags.discard("")
    return flags


def include_deleted(request: Request) -> bool:
    """Whether tombstones are requested (``__includedeleted=true`` any case, or the option)."""
    for key, value in request.query_params.multi_items():
        if key.lower() == "__includedeleted" and value.strip().lower() == "true":
            return True
    return "include:deleted" in zumo_options(request)


def preconditions(request: Request) -> Preconditions:
    """The conditional headers of ``request`` (400 for malformed or weak entity tags)."""
    return Preconditions(
        if_match=_etags(request, "if-match"),
        if_none_match=_etags(request, "if-none-match"),
        if_modified_since=_http_date(request.headers.get("if-modified-since")),
        if_unmodified_since=_http_date(request.headers.get("if-unmodified-since")),
    )


def _etags(request: Request, name: str) -> tuple[str, ...] | None:
    header = request.headers.get(name)
    if header is None:
        return None
    try:
        return tuple(parse_etag_list(header))
    except ValueError as exc:
        raise BadRequest(f"Invalid {name} header: {exc}") from exc


def _http_date(value: str | None) -> dt.datetime | None:
    # RFC 9110: a recipient ignores an invalid date in these headers.
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not 1970 <= parsed.year <= 9000:
        return None  # not a plausible modification time; comparisons near the limits overflow
    return parsed.astimezone(dt.UTC)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, gunzipped if ``Content-Encoding: gzip``; 413 beyond ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return _decode(b"".join(chunks), request.headers.get("content-encoding", ""), max_bytes)


def _decode(body: bytes, encoding: str, max_bytes: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding"
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"The gzip request body is corrupt: {exc}") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise _too_large(max_bytes)
    if not inflater.eof:
        raise BadRequest("The gzip request body is truncated")
    return data


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {max_bytes} bytes")


def parse_json(request: Request, body: bytes, *, allow_empty: bool = False) -> Any:
    """Decode a JSON body (415 for a non-JSON content type, 400 when malformed).

    An empty body is ``{}`` when ``allow_empty`` (DELETE, undelete), else 400.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and not content_type.endswith(("/json", "+json")):
        raise UnsupportedMediaType(f"Send the body as application/json, not {content_type!r}")
    if content_type == "application/json-patch+json":
        raise UnsupportedMediaType("JSON Patch bodies are not supported; send a merge patch")
    if not body.strip():
        if allow_empty:
            return {}
        raise BadRequest("The request body is empty: send a JSON object")
    try:
        return loads(body)
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
