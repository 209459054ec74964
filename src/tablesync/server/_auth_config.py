"""``[server.auth]`` in the TOML configuration: build the authenticator it describes.

Secrets never sit in the file itself: the JWT secret and the API keys are read from
environment variables (or, for keys, a separate JSON file) named by the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ServerConfigError
from ._auth import API_KEY_HEADER, AnyAuth, ApiKeyAuth, Authenticator, JWTAuth
from ._config_values import expect_str, expect_str_list, expect_table, fail

_JWT_KEYS = {
    "jwt_secret_env": "secret",
    "jwt_public_key_file": "public_key",
    "jwks_file": "jwks_file",
    "jwks_url": "jwks_url",
    "algorithms": "algorithms",
    "issuer": "issuer",
    "audience": "audience",
    "leeway_seconds": "leeway",
    "user_claim": "user_claim",
    "roles_claim": "roles_claim",
}
_KEY_KEYS = ("api_keys_env", "api_keys_file", "api_key_header", "api_key_roles")
_JWT_SOURCES = ("jwt_secret_env", "jwt_public_key_file", "jwks_file", "jwks_url")


def auth_from_mapping(settings: Mapping[str, Any], where: str) -> Authenticator:
    """The authenticator of a ``[server.auth]`` table.

    Example:
        ```toml
        [server.auth]
        jwt_secret_env = "TABLESYNC_JWT_SECRET"   # HS256 secret, from the environment
        issuer = "https://id.example.org"
        audience = "tablesync"
        api_keys_env = "TABLESYNC_API_KEYS"       # JSON {"<key>": "<user id>"}
        ```

    Raises:
        ServerConfigError: unknown keys, no credential source, an unset variable.
    """
    unknown = set(settings) - set(_JWT_KEYS) - set(_KEY_KEYS)
    if unknown:
        raise ServerConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    found: list[Authenticator] = []
    if any(key in settings for key in _JWT_SOURCES):
        found.append(_jwt(settings, where))
    if "api_keys_env" in settings or "api_keys_file" in settings:
        found.append(_api_keys(settings, where))
    if not found:
        raise ServerConfigError(
            f"{where}: name a credential source ({', '.join(_JWT_SOURCES)}, api_keys_env "
            "or api_keys_file)"
        )
    return found[0] if len(found) == 1 else AnyAuth(found)


def _jwt(settings: Mapping[str, Any], where: str) -> JWTAuth:
    kwargs: dict[str, Any] = {}
    for key, argument in _JWT_KEYS.items():
        if key in settings:
            check: Callable[[Any, str], Any] = _JWT_CHECKS.get(key, expect_str)
            kwargs[argument] = check(settings[key], f"{where} {key}")
    if "secret" in kwargs:
        kwargs["secret"] = _env(kwargs["secret"], where)
    if "public_key" in kwargs:
        kwargs["public_key"] = _read(kwargs["public_key"], where)
    try:
        return JWTAuth(**kwargs)
    except TypeError as exc:
        raise ServerConfigError(f"{where}: {exc}") from exc


def _api_keys(settings: Mapping[str, Any], where: str) -> ApiKeyAuth:
    if "api_keys_env" in settings:
        text = _env(expect_str(settings["api_keys_env"], f"{where} api_keys_env"), where)
    else:
        text = _read(expect_str(settings["api_keys_file"], f"{where} api_keys_file"), where)
    try:
        keys = json.loads(text)
    except ValueError as exc:
        raise ServerConfigError(f"{where}: the API keys are not JSON: {exc}") from exc
    if not isinstance(keys, dict):
        raise ServerConfigError(f'{where}: the API keys must be a JSON object {{"key": "user"}}')
    roles = _roles(settings.get("api_key_roles", {}), f"{where} api_key_roles")
    header = expect_str(settings.get("api_key_header", API_KEY_HEADER), f"{where} api_key_header")
    return ApiKeyAuth(keys, header=header, roles=roles)


def _roles(value: Any, where: str) -> dict[str, list[str]]:
    roles = expect_table(value, where)
    return {user: expect_str_list(names, f"{where}.{user}") for user, names in roles.items()}


def _audience(value: Any, where: str) -> str | list[str]:
    return value if isinstance(value, str) else expect_str_list(value, where)


def _leeway(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 3600:
        raise fail(where, "a number of seconds 0..3600", value)
    return float(value)


#: Checks of the JWT keys that are not plain strings.
_JWT_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "algorithms": expect_str_list,
    "audience": _audience,
    "leeway_seconds": _leeway,
}


def _env(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise ServerConfigError(f"{where}: environment variable names are strings")
    value = os.environ.get(name)
    if not value:
        raise ServerConfigError(f"{where}: the environment variable {name} is not set")
    return value


def _read(path: Any, where: str) -> str:
    if not isinstance(path, str):
        raise ServerConfigError(f"{where}: file paths are strings")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ServerConfigError(f"{where}: cannot read {path!r}: {exc}") from exc
