"""Fixtures of the security suite: signed tokens, two users, and apps over SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from tablesync.server import Access, ApiKeyAuth, JWTAuth, Table, create_app
from tests._testclient import TestClient

SECRET = "security-suite-secret-0123456789abcdef"
ISSUER = "https://id.example.test"
AUDIENCE = "tablesync-tests"
V2 = {"ZUMO-API-VERSION": "2.0.0"}
V3 = {"ZUMO-API-VERSION": "3.0.0"}
API_KEY = "k-0123456789abcdef-device"

NOTES = Table(
    "notes",
    columns={"text": "string", "n": "integer", "owner": "string"},
    access=Access(owner_column="owner", admin_role="admin"),
    page_size=2,
)
CATALOGUE = Table(
    "catalogue",
    columns={"title": "string"},
    access=Access(read="anyone", insert="role:editor", update="role:editor", delete="role:editor"),
)
LOCKED = Table("locked", columns={"title": "string"}, access=Access(delete="nobody"))


#: Lifetime of the suite's valid tokens. Many are made when pytest collects the tests (in
#: parameter lists), and a full run on a loaded 2-core machine takes longer than 5 minutes.
SESSION_TOKEN_S = 4 * 3600


def token(
    user: str,
    *,
    roles: tuple[str, ...] = (),
    expires_in: float = SESSION_TOKEN_S,
    secret: str = SECRET,
    **claims: Any,
) -> str:
    """An HS256 token for ``user`` as the suite's issuer signs it."""
    now = int(time.time())
    payload = {
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + int(expires_in),
        "roles": list(roles),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(user: str, **kwargs: Any) -> dict[str, str]:
    """Headers of a v3 request by ``user``."""
    return {**V3, "Authorization": f"Bearer {token(user, **kwargs)}"}


def all_rows(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every row, tombstones included, following nextLinks (bounded: 1000 pages)."""
    params = {"__includedeleted": "true", "$orderby": "id"}
    page = client.get("/tables/notes", params=params, headers=headers).json()
    items: list[dict[str, Any]] = list(page["items"])
    for _ in range(1000):
        if not page["nextLink"]:
            return items
        page = client.get(page["nextLink"], headers=headers).json()
        items.extend(page["items"])
    raise AssertionError("more than 1000 pages")


@contextlib.contextmanager
def serve(app: Any, *, graceful_s: int = 2) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free port; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=graceful_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_s + 10)


def jwt_auth() -> JWTAuth:
    return JWTAuth(secret=SECRET, issuer=ISSUER, audience=AUDIENCE, leeway=0)


def auth() -> Any:
    from tablesync.server import AnyAuth

    return AnyAuth([jwt_auth(), ApiKeyAuth({API_KEY: "device"}, roles={"device": ["editor"]})])


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(db_url: str, keep_open: Any) -> MakeClient:
    """``make_client(**create_app_kwargs)``: a TestClient over a secured app on ``db_url``."""

    def make(**kwargs: Any) -> TestClient:
        kwargs.setdefault("tables", [NOTES, CATALOGUE, LOCKED])
        kwargs.setdefault("auth", auth())
        client: TestClient = keep_open(TestClient(create_app(db_url, **kwargs)))
        return client

    return make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database for one module's read-only probes (its own, never reset by other tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('security') / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_database_factory")()
    return url


@pytest.fixture(scope="module")
def module_client(module_db_url: str) -> Iterator[TestClient]:
    """A TestClient over the secured app, shared by a module's tests that write nothing."""
    with TestClient(create_app(module_db_url, tables=[NOTES, CATALOGUE, LOCKED], auth=auth())) as c:
        yield c
