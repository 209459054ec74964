"""Item ids: opaque strings, validated by the rules every official SDK shares."""

from __future__ import annotations

import re
import uuid

MAX_ID_LENGTH = 255
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f"+?\\/`]')


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


def new_id() -> str:
    """A new client-generated id: 32 lowercase hex digits, as the official clients make."""
    return uuid.uuid4().hex
