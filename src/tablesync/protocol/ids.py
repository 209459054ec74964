"""Item ids: opaque strings, validated by the rules every official SDK shares."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

MAX_ID_LENGTH = 255
# What no id may hold: control characters (C0, DEL and C1) and ``" + ? \ / ` ``.
_FORBIDDEN_CHARACTERS = frozenset(map(chr, [*range(0x20), *range(0x7F, 0xA0)])) | set('"+?\\/`')


def _character_class(characters: frozenset[str]) -> re.Pattern[str]:
    return re.compile("[" + "".join(sorted(map(re.escape, characters))) + "]")


_FORBIDDEN = _character_class(_FORBIDDEN_CHARACTERS)


def is_valid_id(value: object) -> bool:
    r"""True when ``value`` is a usable item id.

    That is a non-empty string of at most 255 characters, without control characters or any of
    ``" + ? \ / ` ``, and not ``.`` or ``..``.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value not in (".", "..")
        and _FORBIDDEN.search(value) is None
    )


# Every forbidden character but the newline, which joins the ids checked at once; as bytes,
# the ASCII ones (for ASCII text).
_FORBIDDEN_JOINED_CHARACTERS = _FORBIDDEN_CHARACTERS - {"\n"}
_FORBIDDEN_JOINED = _character_class(_FORBIDDEN_JOINED_CHARACTERS)
_FORBIDDEN_BYTES = bytes(sorted(ord(c) for c in _FORBIDDEN_JOINED_CHARACTERS if c.isascii()))


def all_valid_ids(values: Sequence[object]) -> bool:
    """Whether every value is a valid id (:func:`is_valid_id`), checked in a few C-level calls.

    For a page of a thousand pulled rows, one call per id cost more than storing the row (and
    one regular expression matching the ids line by line cost a tenth of a pulled row).
    """
    if not values or set(map(type, values)) != {str}:
        return False
    ids: Sequence[str] = values  # type: ignore[assignment]
    if "." in ids or ".." in ids:
        return False
    lengths = list(map(len, ids))
    if min(lengths) < 1 or max(lengths) > MAX_ID_LENGTH:
        return False
    joined = "\n".join(ids)
    # A newline inside an id would make two lines of it; the count catches that.
    return joined.count("\n") == len(ids) - 1 and _clean(joined)


def _clean(joined: str) -> bool:
    """No forbidden character but newlines (ASCII text: deleting them from the bytes)."""
    if joined.isascii():
        data = joined.encode("ascii")
        return len(data.translate(None, _FORBIDDEN_BYTES)) == len(data)
    return _FORBIDDEN_JOINED.search(joined) is None


def new_id() -> str:
    """A new client-generated id: 32 lowercase hex digits, as the official clients make."""
    return uuid.uuid4().hex
