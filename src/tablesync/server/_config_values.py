"""Type checks for configuration values, with errors that name where the value came from.

TOML gives ``"no"`` as a (truthy) string and ``1`` as an int: a setting must have exactly the
type it documents, so a typo stops the server instead of silently meaning something else.
``where`` is the key's path, e.g. ``"app.toml: [tables.movies] soft_delete"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import ServerConfigError


def shown(value: Any) -> str:
    """How ``value`` is named in an error: its TOML type and a short repr."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    kinds = {str: "the string", int: "the integer", float: "the float"}
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{kinds.get(type(value), f'a {type(value).__name__},')} {text}"


def fail(where: str, expected: str, value: Any) -> ServerConfigError:
    """The error for ``value`` at ``where`` not being ``expected``."""
    return ServerConfigError(f"{where} must be {expected}, not {shown(value)}")


def expect_bool(value: Any, where: str) -> bool:
    """``value`` if it is a boolean (``true``/``false``; not a string or a number)."""
    if not isinstance(value, bool):
        raise fail(where, "a boolean (true or false)", value)
    return value


def expect_str(value: Any, where: str) -> str:
    """``value`` if it is a string."""
    if not isinstance(value, str):
        raise fail(where, "a string", value)
    return value


def expect_int(value: Any, where: str, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool or float) in ``low..high``."""
    expected = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail(where, expected, value)
    if value < low or (high is not None and value > high):
        raise fail(where, expected, value)
    return value


def expect_seconds(value: Any, where: str, high: float) -> float:
    """``value`` if it is a number of seconds (int or float) above 0 and at most ``high``."""
    expected = f"a number of seconds above 0, at most {high:g}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise fail(where, expected, value)
    if not 0 < value <= high:  # also rejects nan
        raise fail(where, expected, value)
    return float(value)


def expect_str_list(value: Any, where: str) -> list[str]:
    """``value`` if it is an array of strings."""
    if not isinstance(value, list | tuple):
        raise fail(where, "an array of strings", value)
    for item in value:
        if not isinstance(item, str):
            raise ServerConfigError(
                f"{where} must be an array of strings, not an array holding {shown(item)}"
            )
    return list(value)


def expect_table(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a table (``[section]`` or ``{ inline = "table" }``)."""
    if not isinstance(value, Mapping):
        raise fail(where, "a table", value)
    return value
