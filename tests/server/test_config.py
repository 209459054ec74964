"""The TOML loader type-checks every value; ``Table`` checks the types given in Python."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tablesync._exceptions import ServerConfigError
from tablesync.server import Table, create_app, load_config


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "app.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _refusal(tmp_path: Path, text: str) -> str:
    """The message of the ``ServerConfigError`` that loading ``text`` raises."""
    with pytest.raises(ServerConfigError) as caught:
        _load(tmp_path, text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "key_path", "expected"),
    [
        pytest.param('soft_delete = "no"', "[tables.t] soft_delete", "a boolean", id="bool-str"),
        pytest.param("soft_delete = 0", "[tables.t] soft_delete", "a boolean", id="bool-int"),
        pytest.param(
            'skip_version_check = "false"',
            "[tables.t] skip_version_check",
            "a boolean",
            id="skip-str",
        ),
        pytest.param("dynamic_schema = 1", "[tables.t] dynamic_schema", "a boolean", id="dyn-1"),
        pytest.param("max_top = 2.5", "[tables.t] max_top", "an integer", id="max-top-float"),
        pytest.param("max_top = true", "[tables.t] max_top", "an integer", id="max-top-bool"),
        pytest.param("max_top = 0", "[tables.t] max_top", "1..1000000", id="max-top-range"),
        pytest.param('page_size = "10"', "[tables.t] page_size", "an integer", id="page-str"),
        pytest.param("page_size = 100001", "[tables.t] page_size", "1..100000", id="page-range"),
        pytest.param("conflict_policy = 1", "[tables.t] conflict_policy", "one of", id="policy"),
        pytest.param('columns = ["a"]', "[tables.t] columns", "a table", id="columns-list"),
        pytest.param(
            "columns = { a = 1 }", "[tables.t] columns.a", "a string", id="column-type-int"
        ),
        pytest.param('access = "anyone"', "[tables.t] access", "a table", id="access-str"),
        pytest.param('indexes = "a"', "[tables.t]", "a list of lists", id="indexes-str"),
        pytest.param("indexes = [[]]", "[tables.t]", "non-empty lists", id="indexes-empty"),
        pytest.param(
            'indexes = [["nope"]]', "[tables.t]", "neither a declared column", id="index-unknown"
        ),
    ],
)
def test_wrong_table_values_name_the_file_key_and_type(
    tmp_path: Path, text: str, key_path: str, expected: str
) -> None:
    message = _refusal(tmp_path, f"[tables.t]\n{text}\n")
    assert str(tmp_path / "app.toml") in message
    assert key_path in message and expected in message


@pytest.mark.parametrize(
    ("text", "key_path", "expected"),
    [
        pytest.param("cors_origins = [1]", "cors_origins", "holding the integer 1", id="cors-int"),
        pytest.param('cors_origins = "x"', "cors_origins", "an array of strings", id="cors-str"),
        pytest.param('dynamic_schema = "yes"', "dynamic_schema", "a boolean", id="dynamic"),
        pytest.param("max_body_bytes = 0", "max_body_bytes", "an integer >= 1", id="body-0"),
        pytest.param("max_body_bytes = 1.5", "max_body_bytes", "an integer", id="body-float"),
        pytest.param(
            "statement_timeout_ms = -1", "statement_timeout_ms", "0..2147483647", id="timeout-neg"
        ),
        pytest.param(
            "statement_timeout_ms = 2147483648", "statement_timeout_ms", "0..", id="timeout-big"
        ),
        pytest.param(
            "idempotency_ttl_seconds = 0", "idempotency_ttl_seconds", "an integer", id="ttl-0"
        ),
        pytest.param(
            'idempotency_ttl_seconds = "1h"', "idempotency_ttl_seconds", "integer", id="ttl-str"
        ),
        pytest.param(
            "body_timeout_seconds = 0", "body_timeout_seconds", "above 0", id="body-timeout-0"
        ),
        pytest.param(
            "body_timeout_seconds = nan", "body_timeout_seconds", "above 0", id="body-timeout-nan"
        ),
        pytest.param(
            "body_timeout_seconds = true", "body_timeout_seconds", "seconds", id="body-timeout-bool"
        ),
        pytest.param("auth = 1", "auth", "a table", id="auth-int"),
    ],
)
def test_wrong_server_values_name_the_file_key_and_type(
    tmp_path: Path, text: str, key_path: str, expected: str
) -> None:
    message = _refusal(tmp_path, f"[server]\n{text}\n")
    assert str(tmp_path / "app.toml") in message
    assert key_path in message and expected in message


@pytest.mark.parametrize(
    ("text", "key_path", "expected"),
    [
        pytest.param("algorithms = 'HS256'", "algorithms", "an array of strings", id="algorithms"),
        pytest.param("issuer = 1", "issuer", "a string", id="issuer"),
        pytest.param("audience = [1]", "audience", "an array of strings", id="audience"),
        pytest.param("leeway_seconds = '30'", "leeway_seconds", "0..3600", id="leeway-str"),
        pytest.param("leeway_seconds = -1", "leeway_seconds", "0..3600", id="leeway-neg"),
        pytest.param("user_claim = true", "user_claim", "a string", id="user-claim"),
        pytest.param("jwks_url = 5", "jwks_url", "a string", id="jwks-url"),
    ],
)
def test_wrong_jwt_values_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key_path: str, expected: str
) -> None:
    monkeypatch.setenv("TS_TEST_SECRET", "a-32-byte-or-longer-secret-for-hs256!")
    message = _refusal(tmp_path, f'[server.auth]\njwt_secret_env = "TS_TEST_SECRET"\n{text}\n')
    assert "app.toml: [server.auth]" in message
    assert key_path in message and expected in message


@pytest.mark.parametrize(
    ("text", "key_path", "expected"),
    [
        pytest.param("api_key_header = 1", "api_key_header", "a string", id="header"),
        pytest.param("api_key_roles = ['x']", "api_key_roles", "a table", id="roles-list"),
        pytest.param(
            "api_key_roles = { robot = 'editor' }", "api_key_roles.robot", "array", id="roles-str"
        ),
        pytest.param("api_keys_env = 1", "api_keys_env", "a string", id="env-int"),
    ],
)
def test_wrong_api_key_values_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key_path: str, expected: str
) -> None:
    monkeypatch.setenv("TS_TEST_KEYS", '{"robot-key-0123456789abcdef": "robot"}')
    source = "" if "api_keys_env" in text else 'api_keys_env = "TS_TEST_KEYS"\n'
    message = _refusal(tmp_path, f"[server.auth]\n{source}{text}\n")
    assert "app.toml: [server.auth]" in message
    assert key_path in message and expected in message


def test_well_typed_values_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TS_TEST_KEYS", '{"robot-key-0123456789abcdef": "robot"}')
    config = _load(
        tmp_path,
        """
[server]
cors_origins = ["https://a.example"]
statement_timeout_ms = 0
idempotency_ttl_seconds = 600
body_timeout_seconds = 2.5

[server.auth]
api_keys_env = "TS_TEST_KEYS"
api_key_roles = { robot = ["editor"] }

[tables.t]
soft_delete = false
skip_version_check = true
dynamic_schema = false
page_size = 1
max_top = 1000000
columns = { title = "string" }
""",
    )
    (table,) = config.tables
    assert (table.soft_delete, table.skip_version_check, table.dynamic_schema) == (
        False,
        True,
        False,
    )
    assert (table.page_size, table.max_top, table.columns) == (1, 1_000_000, {"title": "string"})
    assert config.cors_origins == ("https://a.example",)
    assert config.statement_timeout_ms == 0
    assert config.idempotency_ttl == dt.timedelta(minutes=10)
    assert config.body_timeout == dt.timedelta(seconds=2.5)


def test_toml_timeouts_reach_the_app_and_arguments_win(tmp_path: Path) -> None:
    config = _load(tmp_path, "[server]\nidempotency_ttl_seconds = 60\nbody_timeout_seconds = 3\n")
    database = f"sqlite:///{tmp_path / 'x.db'}"
    from_file = create_app(database, config=config)
    explicit = create_app(
        database,
        config=config,
        idempotency_ttl=dt.timedelta(seconds=5),
        body_timeout=dt.timedelta(seconds=7),
    )
    default = create_app(database)
    try:
        settings = [app.state.tablesync.settings for app in (from_file, explicit, default)]
        assert [(s.idempotency_ttl_ms, s.body_timeout_s) for s in settings] == [
            (60_000, 3.0),
            (5_000, 7.0),
            (24 * 3600 * 1000, 30.0),
        ]
    finally:
        for app in (from_file, explicit, default):
            app.state.tablesync.schema.engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"soft_delete": "no"}, "soft_delete must be a boolean", id="soft-delete"),
        pytest.param({"skip_version_check": 1}, "skip_version_check", id="skip"),
        pytest.param({"dynamic_schema": "true"}, "dynamic_schema", id="dynamic"),
        pytest.param({"page_size": 2.5}, "page_size must be an integer", id="page-float"),
        pytest.param({"page_size": True}, "page_size", id="page-bool"),
        pytest.param({"max_top": 0}, r"max_top must be an integer 1\.\.1000000", id="max-top"),
        pytest.param({"columns": ["a"]}, "columns must be a mapping", id="columns-list"),
        pytest.param({"columns": {"a": 1}}, "unknown type", id="column-kind-int"),
        pytest.param({"view": "rows"}, "view must be a callable", id="view"),
        pytest.param({"after_commit": 3}, "after_commit", id="hook"),
        pytest.param({"indexes": [("a", 1)]}, "non-empty lists of column names", id="index-int"),
        pytest.param({"indexes": ["ab"]}, "non-empty lists of column names", id="index-str"),
        pytest.param({"indexes": [("id", "id")]}, "repeats a column", id="index-repeat"),
        pytest.param({"indexes": [("id",), ["id"]]}, "repeats a column or an index", id="twice"),
        pytest.param({"indexes": [("Id",)]}, "neither a declared column", id="index-case"),
        pytest.param({"indexes": [("updatedAt", "id")]}, "repeats", id="index-sync"),
        pytest.param(
            {"columns": {"meta": "json"}, "indexes": [("meta",)]},
            "cannot be indexed",
            id="index-json",
        ),
    ],
)
def test_table_in_python_checks_types(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ServerConfigError, match=message):
        Table("t", **kwargs)


def test_table_rejects_a_non_string_name() -> None:
    with pytest.raises(ServerConfigError, match="invalid table name"):
        Table(5)  # type: ignore[arg-type]
