"""Authentication: who is calling. JWT bearer tokens, ``X-ZUMO-AUTH``, API keys, or a chain.

An authenticator looks at a request and returns a ``Principal``, ``None`` when the request
carries no credentials of its kind, or raises ``Unauthorized`` when it carries credentials
that are wrong (expired, badly signed, unknown key). Presented-but-wrong credentials are
always a 401, even on tables that allow anonymous callers: silently downgrading a caller
whose token expired to "anonymous" would hide the problem from its client (which refreshes
its token on 401) and show it a different set of rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from starlette.requests import Request

from .._exceptions import ServerConfigError
from ._errors import HTTPError, ServiceUnavailable

#: The header of the official clients (App Service authentication); it carries a bare token.
ZUMO_AUTH_HEADER = "X-ZUMO-AUTH"
API_KEY_HEADER = "X-API-Key"
_MAX_CREDENTIAL_CHARS = 16_384
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tablesync"'}


class Unauthorized(HTTPError):
    """Raised when credentials are missing where required, or invalid (401)."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=dict(_CHALLENGE))


class Forbidden(HTTPError):
    """Raised when an authenticated caller may not perform the operation (403)."""

    status_code = 403


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        user_id: the stable id of the user (a JWT's ``sub``, an API key's owner).
        roles: the caller's roles (a JWT's ``roles`` claim, an API key's configured roles).
        scheme: how the caller authenticated: ``"jwt"``, ``"api_key"`` or a custom name.
        claims: every verified claim of the token (empty for API keys).
    """

    user_id: str
    roles: frozenset[str] = frozenset()
    scheme: str = "custom"
    claims: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Authenticator(Protocol):
    """Anything with ``authenticate(request) -> Principal | None`` (raise ``Unauthorized``)."""

    def authenticate(self, request: Request) -> Principal | None:
        """The caller, ``None`` without credentials, or raise ``Unauthorized``."""
        ...


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller of ``request`` (``None`` for anonymous callers).

    Hooks and ``view`` functions use this to learn who is writing or reading.
    """
    value = getattr(request.state, "principal", None)
    return value if isinstance(value, Principal) else None


def _credential(request: Request, header: str) -> str | None:
    value = request.headers.get(header)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_CREDENTIAL_CHARS or not value.isprintable():
        raise Unauthorized(f"The {header} header is empty, too long or not printable")
    return value


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <t>`` or of ``X-ZUMO-AUTH: <t>``, if any.

    Raises:
        Unauthorized: a header is present but malformed (another scheme, no token), or both
            headers carry different tokens.
    """
    tokens: list[str] = []
    authorization = _credential(request, "Authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <token>'")
        tokens.append(token.strip())
    zumo = _credential(request, ZUMO_AUTH_HEADER)
    if zumo is not None:
        tokens.append(zumo)
    if len(set(tokens)) > 1:
        raise Unauthorized(f"Authorization and {ZUMO_AUTH_HEADER} carry different tokens")
    return tokens[0] if tokens else None


class JWTAuth:
    """Verify JWT bearer tokens (``Authorization: Bearer`` or ``X-ZUMO-AUTH``) with PyJWT.

    Example:
        ```python
        JWTAuth(secret=os.environ["JWT_SECRET"], issuer="https://id.example.org",
                audience="tablesync")
        JWTAuth(jwks_url="https://id.example.org/.well-known/jwks.json", algorithms=["RS256"])
        ```

    Args:
        secret: the shared key of HS256/HS384/HS512 tokens.
        public_key: a PEM public key for RS*/ES*/PS* tokens.
        jwks_file: a JSON Web Key Set file; the token's ``kid`` picks the key.
        jwks_url: a JWKS URL (fetched, then cached); the token's ``kid`` picks the key.
        algorithms: the accepted algorithms (never ``none``); default ``HS256`` with a
            secret, else ``RS256``.
        issuer: the required ``iss``, if any.
        audience: the required ``aud`` (one of them), if any.
        leeway: seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
        user_claim: the claim holding the user id.
        roles_claim: the claim holding the roles (a list or a space-separated string).
    """

    #: Fetching a JWKS URL blocks: authenticate in a worker thread, not on the event loop.
    blocking: bool

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        jwks_file: str | Path | None = None,
        jwks_url: str | None = None,
        algorithms: Sequence[str] | None = None,
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 30.0,
        user_claim: str = "sub",
        roles_claim: str = "roles",
    ) -> None:
        import jwt

        sources = [s for s in (secret, public_key, jwks_file, jwks_url) if s is not None]
        if len(sources) != 1:
            raise ServerConfigError(
                "JWTAuth needs exactly one of secret, public_key, jwks_file, jwks_url"
            )
        self.algorithms = list(algorithms or (["HS256"] if secret is not None else ["RS256"]))
        if not self.algorithms or any(a.lower() == "none" for a in self.algorithms):
            raise ServerConfigError("JWTAuth: algorithms must be listed and exclude 'none'")
        self.issuer, self.audience, self.leeway = issuer, audience, leeway
        self.user_claim, self.roles_claim = user_claim, roles_claim
        self._key: Any = secret if secret is not None else public_key
        self._jwks: Any = None
        if jwks_file is not None:
            self._jwks = _load_jwks(Path(jwks_file))
        elif jwks_url is not None:
            self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, timeout=10)
        self.blocking = jwks_url is not None

    def authenticate(self, request: Request) -> Principal | None:
        """The token's subject, ``None`` without a token; 401 for an invalid token."""
        token = bearer_token(request)
        if token is None:
            return None
        claims = self.verify(token)
        user = claims.get(self.user_claim)
        if not isinstance(user, str | int) or isinstance(user, bool) or str(user) == "":
            raise Unauthorized(f"The token has no usable {self.user_claim!r} claim")
        return Principal(str(user), _roles(claims.get(self.roles_claim)), "jwt", claims)

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``.

        Raises:
            Unauthorized: bad signature, wrong algorithm/issuer/audience, expired, malformed.
        """
        import jwt

        try:
            key = self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired") from exc
        except jwt.PyJWKClientConnectionError as exc:
            # Our identity provider is down, not the caller's token wrong: a 401 would make
            # clients throw away good tokens; a 503 makes them retry.
            raise ServiceUnavailable(
                "The signing keys cannot be fetched; retry shortly", headers={"Retry-After": "5"}
            ) from exc
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # The reason is safe to show (it names a claim or the signature, never the key).
            raise Unauthorized(f"The token is not valid: {exc}") from exc
        return claims

    def _signing_key(self, token: str) -> Any:
        import jwt

        if self._jwks is None:
            return self._key
        if isinstance(self._jwks, jwt.PyJWKClient):
            return self._jwks.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        keys: dict[str | None, Any] = self._jwks
        if kid not in keys and not (kid is None and len(keys) == 1):
            raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the key set")
        return keys[kid] if kid in keys else next(iter(keys.values()))


def _load_jwks(path: Path) -> dict[str | None, Any]:
    import jwt

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        key_set = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise ServerConfigError(f"cannot read the JWKS file {str(path)!r}: {exc}") from exc
    return {key.key_id: key.key for key in key_set.keys}


def _roles(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(str(role) for role in value if isinstance(role, str))
    return frozenset()


class ApiKeyAuth:
    """Static API keys sent in a header (default ``X-API-Key``), each owned by a user.

    Keys are compared by their SHA-256 digest, so the lookup takes the same time whatever
    prefix of a valid key is guessed.

    Example:
        ```python
        ApiKeyAuth({"k-3f9...": "device-fleet"}, roles={"device-fleet": ["ingest"]})
        ```

    Args:
        keys: API key → user id.
        header: the header carrying the key.
        roles: user id → roles.
    """

    blocking: ClassVar[bool] = False

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        header: str = API_KEY_HEADER,
        roles: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if not keys:
            raise ServerConfigError("ApiKeyAuth needs at least one key")
        for key, user in keys.items():
            if not isinstance(key, str) or len(key) < 16 or not isinstance(user, str) or not user:
                raise ServerConfigError("API keys must be strings of 16+ characters with a user")
        self.header = header
        self._users = {_digest(key): user for key, user in keys.items()}
        self._roles = {user: frozenset(r) for user, r in (roles or {}).items()}

    def authenticate(self, request: Request) -> Principal | None:
        """The key's user, ``None`` without the header; 401 for an unknown key."""
        key = _credential(request, self.header)
        if key is None:
            return None
        user = self._users.get(_digest(key))
        if user is None:
            raise Unauthorized(f"The {self.header} is not a valid API key")
        return Principal(user, self._roles.get(user, frozenset()), "api_key")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class AnyAuth:
    """Try several authenticators in order; the first that recognises credentials decides.

    Args:
        authenticators: e.g. ``[JWTAuth(...), ApiKeyAuth(...)]``.
    """

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ServerConfigError("AnyAuth needs at least one authenticator")
        self.authenticators = tuple(authenticators)
        self.blocking = any(getattr(a, "blocking", False) for a in self.authenticators)

    def authenticate(self, request: Request) -> Principal | None:
        """The first principal found; an invalid credential of any kind is a 401."""
        for authenticator in self.authenticators:
            found = authenticator.authenticate(request)
            if found is not None:
                return found
        return None


def api_key_header(auth: Authenticator) -> str | None:
    """The API-key header ``auth`` reads (for the OpenAPI document), if it takes API keys."""
    if isinstance(auth, ApiKeyAuth):
        return auth.header
    if isinstance(auth, AnyAuth):
        return next(filter(None, map(api_key_header, auth.authenticators)), None)
    return None
