"""Authentication and per-operation rules: every bad credential is a 401, rules give 401/403."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from tablesync._exceptions import ServerConfigError
from tablesync.server import (
    Access,
    ApiKeyAuth,
    Forbidden,
    JWTAuth,
    Table,
    WriteEvent,
    create_app,
    load_config,
    principal_of,
)

from .conftest import (
    API_KEY,
    AUDIENCE,
    CATALOGUE,
    ISSUER,
    LOCKED,
    NOTES,
    SECRET,
    SESSION_TOKEN_S,
    V3,
    auth,
    serve,
    token,
)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        f"sqlite:///{tmp_path / 'a.db'}", tables=[NOTES, CATALOGUE, LOCKED], auth=auth()
    )
    with TestClient(app) as client:
        yield client


def _raw(payload: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now + SESSION_TOKEN_S}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


BAD_HEADERS = [
    pytest.param({"Authorization": f"Bearer {token('alice', expires_in=-5)}"}, id="expired"),
    pytest.param(
        {"Authorization": f"Bearer {token('alice', secret='x' * 40)}"}, id="bad-signature"
    ),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(), None, 'none')}"}, id="alg-none"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(iss='https://evil'))}"}, id="issuer"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(aud='other'))}"}, id="audience"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(exp=None))}"}, id="no-exp"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(sub=None))}"}, id="no-sub"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(sub=''))}"}, id="empty-sub"),
    pytest.param({"Authorization": f"Bearer {_raw(_claims(sub=['a']))}"}, id="list-sub"),
    pytest.param(
        {"Authorization": f"Bearer {_raw(_claims(nbf=int(time.time()) + 3600))}"}, id="not-yet"
    ),
    pytest.param({"Authorization": "Bearer not.a.jwt"}, id="garbage"),
    pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
    pytest.param({"Authorization": "Basic YWxpY2U6cHc="}, id="basic-scheme"),
    pytest.param({"Authorization": "Bearer " + "a" * 20_000}, id="huge"),
    pytest.param({"X-ZUMO-AUTH": token("alice", expires_in=-5)}, id="zumo-expired"),
    pytest.param(
        {"Authorization": f"Bearer {token('alice')}", "X-ZUMO-AUTH": token("bob")}, id="two-tokens"
    ),
    pytest.param({"X-API-Key": "k-wrong-key-0000000000"}, id="api-key"),
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
@pytest.mark.parametrize("path", ["/tables/notes", "/tables/catalogue"])
def test_invalid_credentials_are_401_even_where_anonymous_is_allowed(
    app_client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = app_client.get(path, headers={**V3, **headers})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tablesync"'
    assert response.json()["status"] == 401
    assert SECRET not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": f"Bearer {token('alice')}"}, id="bearer"),
        pytest.param({"Authorization": f"bearer {token('alice')}"}, id="bearer-lowercase"),
        pytest.param({"X-ZUMO-AUTH": token("alice")}, id="zumo"),
        pytest.param(
            {"Authorization": f"Bearer {token('alice')}", "X-ZUMO-AUTH": token("alice")}, id="both"
        ),
    ],
)
def test_valid_tokens_in_either_header(app_client: TestClient, headers: dict[str, str]) -> None:
    response = app_client.post("/tables/notes", json={"id": "n1"}, headers={**V3, **headers})
    assert response.status_code == 201
    assert response.json()["owner"] == "alice"


def test_api_key_user_and_roles(app_client: TestClient) -> None:
    headers = {**V3, "X-API-Key": API_KEY}
    response = app_client.post("/tables/catalogue", json={"title": "T"}, headers=headers)
    assert response.status_code == 201  # the key's user has the editor role
    response = app_client.post("/tables/notes", json={"id": "d1"}, headers=headers)
    assert response.json()["owner"] == "device"


RULES = [
    pytest.param("GET", "/tables/catalogue", None, 200, id="anyone-reads"),
    pytest.param("POST", "/tables/catalogue", None, 401, id="anonymous-insert"),
    pytest.param("POST", "/tables/catalogue", (), 403, id="no-role-insert"),
    pytest.param("POST", "/tables/catalogue", ("viewer",), 403, id="other-role-insert"),
    pytest.param("POST", "/tables/catalogue", ("editor",), 201, id="editor-insert"),
    pytest.param("DELETE", "/tables/catalogue/c1", (), 403, id="no-role-delete"),
    pytest.param("PATCH", "/tables/catalogue/c1", (), 403, id="no-role-patch"),
    pytest.param("DELETE", "/tables/locked/l1", ("admin", "editor"), 403, id="nobody-deletes"),
    pytest.param("GET", "/tables/locked", (), 200, id="authenticated-reads"),
]


@pytest.mark.parametrize(("method", "path", "roles", "status"), RULES)
def test_operation_rules(
    app_client: TestClient, method: str, path: str, roles: tuple[str, ...] | None, status: int
) -> None:
    editor = {**V3, "Authorization": f"Bearer {token('ed', roles=('editor',))}"}
    assert (
        app_client.post("/tables/catalogue", json={"id": "c1"}, headers=editor).status_code == 201
    )
    assert app_client.post("/tables/locked", json={"id": "l1"}, headers=editor).status_code == 201
    headers = dict(V3)
    if roles is not None:
        headers["Authorization"] = f"Bearer {token('carol', roles=roles)}"
    body = {"title": "x"} if method in ("POST", "PATCH") else None
    before = _everything(app_client, editor)
    response = app_client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert _everything(app_client, editor) == before  # refused writes change nothing


def _everything(client: TestClient, headers: dict[str, str]) -> list[Any]:
    params = {"__includedeleted": "true"}
    return [
        client.get(f"/tables/{t}", params=params, headers=headers).json()
        for t in ("catalogue", "locked")
    ]


def _rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rs256_with_a_jwks_file_and_no_algorithm_confusion(tmp_path: Path) -> None:
    key, other = _rsa_key(), _rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    auth = JWTAuth(jwks_file=tmp_path / "jwks.json", audience=AUDIENCE)
    app = create_app(f"sqlite:///{tmp_path / 'r.db'}", tables=[NOTES], auth=auth)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = _claims()
    cases = [
        (jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"}), 200),
        (jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"}), 401),
        (jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k2"}), 401),
        # HS256 signed with the public key as the secret: the classic confusion attack.
        (_hs256_with(public_pem, claims), 401),
    ]
    with TestClient(app) as client:
        for raw, status in cases:
            response = client.get("/tables/notes", headers={**V3, "Authorization": f"Bearer {raw}"})
            assert response.status_code == status, response.text


def _hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def test_toml_configures_auth_and_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TS_TEST_JWT", SECRET)
    monkeypatch.setenv("TS_TEST_KEYS", json.dumps({API_KEY: "device"}))
    path = tmp_path / "server.toml"
    path.write_text(
        f"""
[server]
database = "sqlite:///{tmp_path / "toml.db"}"
statement_timeout_ms = 5000

[server.auth]
jwt_secret_env = "TS_TEST_JWT"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
api_keys_env = "TS_TEST_KEYS"

[tables.todo.columns]
text = "string"
owner = "string"

[tables.todo.access]
owner_column = "owner"
delete = "role:admin"
"""
    )
    with TestClient(create_app(config=load_config(path))) as client:
        assert client.get("/tables/todo", headers=V3).status_code == 401
        alice = {**V3, "Authorization": f"Bearer {token('alice')}"}
        assert (
            client.post("/tables/todo", json={"id": "t1"}, headers=alice).json()["owner"] == "alice"
        )
        assert client.delete("/tables/todo/t1", headers=alice).status_code == 403
        device = {**V3, "X-API-Key": API_KEY}
        assert client.get("/tables/todo", headers=device).json()["items"] == []


BAD_CONFIGS = [
    pytest.param('[server.auth]\nissuer = "x"', "credential source", id="no-source"),
    pytest.param('[server.auth]\njwt_secret_env = "TS_UNSET_VAR_X"', "not set", id="unset-env"),
    pytest.param("[server.auth]\nfoo = 1", "unknown key", id="unknown-auth-key"),
    pytest.param('[tables.t.access]\nread = "everyone"', "access rule", id="bad-rule"),
    pytest.param(
        '[tables.t.access]\nowner_column = "owner"', "owner column", id="undeclared-owner"
    ),
    pytest.param(
        '[tables.t.access]\nread = "anyone"\nfoo = "x"', "unknown key", id="unknown-access"
    ),
    pytest.param('[tables.t.access]\nread = "authenticated"', "no auth", id="needs-auth"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_security_configuration_is_a_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ServerConfigError, match=message):
        create_app(f"sqlite:///{tmp_path / 'x.db'}", config=load_config(path))


def test_python_configuration_errors() -> None:
    with pytest.raises(ServerConfigError, match="anonymous"):
        Access(owner_column="owner", read="anyone")
    with pytest.raises(ServerConfigError, match="exactly one"):
        JWTAuth(secret="a", jwks_url="https://x")
    with pytest.raises(ServerConfigError, match="none"):
        JWTAuth(secret="a", algorithms=["none"])
    with pytest.raises(ServerConfigError, match="16"):
        ApiKeyAuth({"short": "u"})
    with pytest.raises(ServerConfigError, match="owner column"):
        Table("t", columns={"owner": "integer"}, access=Access(owner_column="owner"))


def test_hooks_see_the_caller_and_can_refuse_a_write(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    def before(request: Any, event: WriteEvent) -> None:
        principal = principal_of(request)
        seen.append(("before", principal.user_id if principal else None))
        if event.item and event.item.get("text") == "forbidden":
            raise Forbidden("this text is not allowed")

    def after(request: Any, event: WriteEvent) -> None:
        principal = principal_of(request)
        seen.append(("after", principal.user_id if principal else None))

    table = Table(
        "notes", columns={"text": "string", "owner": "string"},
        access=Access(owner_column="owner"), before_commit=before, after_commit=after,
    )  # fmt: skip
    with TestClient(create_app(f"sqlite:///{tmp_path / 'h.db'}", tables=[table], auth=auth())) as c:
        alice = {**V3, "Authorization": f"Bearer {token('alice')}"}
        assert (
            c.post("/tables/notes", json={"id": "1", "text": "ok"}, headers=alice).status_code
            == 201
        )
        refused = c.post("/tables/notes", json={"id": "2", "text": "forbidden"}, headers=alice)
        assert refused.status_code == 403
        assert c.get("/tables/notes/2", headers=alice).status_code == 404  # rolled back
    assert seen == [("before", "alice"), ("after", "alice"), ("before", "alice")]


def test_rs256_with_a_jwks_url_fetched_off_the_event_loop(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    key = _rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    fetches: list[int] = []

    async def jwks(_request: Any) -> JSONResponse:
        fetches.append(1)
        return JSONResponse({"keys": [{**jwk, "kid": "url-key", "use": "sig"}]})

    idp = Starlette(routes=[Route("/jwks.json", jwks)])
    with serve(idp) as idp_url:
        auth = JWTAuth(jwks_url=f"{idp_url}/jwks.json", audience=AUDIENCE)
        app = create_app(f"sqlite:///{tmp_path / 'u.db'}", tables=[NOTES], auth=auth)
        good = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "url-key"})
        forged = jwt.encode(_claims(), _rsa_key(), algorithm="RS256", headers={"kid": "url-key"})
        with TestClient(app) as client:
            for raw, status in [(good, 200), (forged, 401), (good, 200)]:
                headers = {**V3, "Authorization": f"Bearer {raw}"}
                assert client.get("/tables/notes", headers=headers).status_code == status
    assert len(fetches) == 1  # the key set is cached


def test_an_unreachable_jwks_url_is_a_503_not_a_401(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = JWTAuth(jwks_url=f"http://127.0.0.1:{port}/jwks.json", audience=AUDIENCE)
    app = create_app(f"sqlite:///{tmp_path / 'd.db'}", tables=[NOTES], auth=auth)
    raw = jwt.encode(_claims(), _rsa_key(), algorithm="RS256", headers={"kid": "k"})
    with TestClient(app) as client:
        response = client.get("/tables/notes", headers={**V3, "Authorization": f"Bearer {raw}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
