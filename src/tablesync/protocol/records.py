"""System properties of a synced record."""

from __future__ import annotations

from typing import Any

#: Properties the server owns. Clients never set them directly (``id`` aside).
SYSTEM_PROPERTIES = ("createdAt", "updatedAt", "version", "deleted")
_DROP = frozenset(name.lower() for name in SYSTEM_PROPERTIES)
#: The system properties a client's write never carries, lower-cased: all but ``version``,
#: which says what the write edits.
STAMPED_BY_SERVER = _DROP - {"version"}


def strip_system_properties(item: dict[str, Any], *, keep_version: bool = False) -> dict[str, Any]:
    """A copy of ``item`` without system properties (``id`` is kept, and ``version`` if asked)."""
    drop = STAMPED_BY_SERVER if keep_version else _DROP
    return {key: value for key, value in item.items() if key.lower() not in drop}
