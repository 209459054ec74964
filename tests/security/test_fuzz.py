"""Fuzzing, bounded in time: schemathesis over /openapi.json (in-process ASGI) and hypothesis
OData filters and JSON bodies. Zero 5xx, zero unhandled exceptions, and a rejected request
writes nothing (the table is compared before and after).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tablesync.server import create_app

from .conftest import NOTES, all_rows, auth, bearer

ALICE = bearer("alice")
# Large pages: the before/after snapshots then cost one query.
FUZZ_NOTES = dataclasses.replace(NOTES, page_size=1000, max_top=1000)
# One token for the whole run: tokens expire in 5 minutes, the fuzz runs well under that.
FUZZ_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _app(db: Path) -> Any:
    return create_app(f"sqlite:///{db}", tables=[FUZZ_NOTES], auth=auth(), max_body_bytes=64 * 1024)


def _snapshot(client: TestClient) -> Any:
    return all_rows(client, bearer("root", roles=("admin",)))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, TestClient]]:
    app = _app(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    with TestClient(app, raise_server_exceptions=True) as client:
        for n in range(3):
            body = {"id": f"seed{n}", "text": f"t{n}", "n": n}
            assert client.post("/tables/notes", json=body, headers=ALICE).status_code == 201
        yield app, client


def _operations(app: Any) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.timeout(90)
def test_openapi_fuzz_never_5xx_and_rejections_write_nothing(
    fuzz_app: tuple[Any, TestClient],
) -> None:
    """Every operation of /openapi.json, with schemathesis-generated requests, as Alice."""
    app, client = fuzz_app
    operations = _operations(app)
    assert len(operations) >= 7  # query, insert, read, patch, put, delete, undelete (+ health)
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            before = _snapshot(client)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                response = case.call(headers={"Authorization": ALICE["Authorization"]})
            where = (case.method, case.formatted_path, response.status_code)
            assert response.status_code < 500, (*where, response.text[:300])
            if response.status_code >= 400:
                assert _snapshot(client) == before, where

        run()


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def backend_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A seeded secured app on SQLite or PostgreSQL for the hypothesis fuzzers."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-b') / 'b.db'}"
    else:
        url = request.getfixturevalue("postgres_database_factory")()
    app = create_app(url, tables=[FUZZ_NOTES], auth=auth(), max_body_bytes=64 * 1024)
    with TestClient(app) as client:
        for n in range(3):
            body = {"id": f"seed{n}", "text": f"t{n}", "n": n}
            assert client.post("/tables/notes", json=body, headers=ALICE).status_code == 201
        yield client


MORE = settings(FUZZ_SETTINGS, max_examples=120)


# -- hypothesis: OData filters ---------------------------------------------------------------

_FIELDS = st.sampled_from(["id", "text", "n", "owner", "updatedAt", "deleted", "version", "nope"])
_LITERALS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["null", "true", "false", "datetimeoffset'2024-01-01T00:00:00Z'", "1e999"]),
)
_ATOMS = st.one_of(_FIELDS, _LITERALS)


_TWO_ARGS = st.sampled_from(["startswith", "contains", "endswith", "indexof"])


_TWO_ARGS = st.sampled_from(["startswith", "contains", "endswith", "indexof"])


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "and", "or", "add", "sub", "mul",
                           "div", "mod"])  # fmt: skip
    funcs = st.sampled_from(["tolower", "toupper", "length", "trim", "year", "round", "not "])
    return st.one_of(
        st.tuples(children, ops, children).map(" ".join),
        st.tuples(funcs, children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(_TWO_ARGS, children, children).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        children.map(lambda c: f"({c})"),
    )


FILTERS = st.one_of(
    st.recursive(_ATOMS, _combine, max_leaves=12),
    st.text(max_size=60),
)


@pytest.mark.timeout(60)
@settings(FUZZ_SETTINGS, max_examples=250)
@given(text=FILTERS, order=st.sampled_from(["", "n desc", "text,id", "updatedAt"]))
def test_filter_fuzz(backend_client: TestClient, text: str, order: str) -> None:
    client = backend_client
    params = {"$filter": text, "$count": "true"}
    if order:
        params["$orderby"] = order
    for user in ("alice", "eve"):  # eve never writes: her count is always 0
        response = client.get("/tables/notes", params=params, headers=bearer(user))
        assert response.status_code in (200, 400), (text, response.text[:300])
        if response.status_code == 200:
            items = response.json()["items"]
            assert all(item["owner"] == user for item in items)
            if user == "eve":
                assert response.json()["count"] == 0


# -- hypothesis: JSON bodies -----------------------------------------------------------------

_JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)  # fmt: skip
_KEYS = st.sampled_from(
    ["id", "text", "n", "owner", "version", "deleted", "updatedAt", "createdAt", "x"]
)
BODIES = st.one_of(st.dictionaries(_KEYS, _JSON, max_size=6), _JSON)


@pytest.mark.timeout(60)
@MORE
@given(
    body=BODIES,
    method=st.sampled_from(["POST", "PATCH", "PUT", "DELETE"]),
    target=st.sampled_from(["seed0", "seed1", "nope"]),
    version=st.sampled_from(["2.0.0", "3.0.0"]),
)
def test_body_fuzz(
    backend_client: TestClient, body: Any, method: str, target: str, version: str
) -> None:
    client = backend_client
    headers = {**ALICE, "ZUMO-API-VERSION": version}
    path = "/tables/notes" if method == "POST" else f"/tables/notes/{target}"
    mallory = {**bearer("mallory"), "ZUMO-API-VERSION": version}
    before = _snapshot(client)
    probe = client.request(method, path, json=body, headers=mallory)
    assert probe.status_code < 500, probe.text[:300]
    if method != "POST" or probe.status_code >= 400:
        # Mallory's writes on Alice's items never land; her own inserts may.
        assert [r for r in _snapshot(client) if r["owner"] == "alice"] == [
            r for r in before if r["owner"] == "alice"
        ]
    before = _snapshot(client)
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        assert _snapshot(client) == before
