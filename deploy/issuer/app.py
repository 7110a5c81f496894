"""The built-in issuer's HTTP API: a small OAuth2 authorization server for the local
stack, the demo and the tests (docs/adr/0015). Not for production: use an identity
provider such as Keycloak (docker-compose.yml's ``identity`` profile).

- ``POST /token``: RFC 6749 form posts (``application/x-www-form-urlencoded``) with the
  client-credentials grant (4.4) and the resource owner password grant (4.3); the
  client authenticates with HTTP Basic or ``client_id``/``client_secret`` in the form
  (2.3.1). Success: ``{"access_token", "token_type": "Bearer", "expires_in"}``; errors:
  RFC 6749 5.2 (``invalid_request``, ``invalid_client`` (401), ``invalid_grant``,
  ``unauthorized_client``, ``unsupported_grant_type``), never cached.
- ``GET /jwks.json``: the public keys (RFC 7517); ``GET /.well-known/openid-configuration``:
  the discovery document naming the token endpoint and the key set.
- ``PUT /admin/users/{username}``: create or update a user (password, name, roles,
  accounts); ``POST /admin/keys/rotate``: sign with a new key from now on. Both need an
  admin client's credentials (HTTP Basic).
- ``GET /health``.

Access tokens are RS256 JWTs with ``iss``, ``aud``, ``sub``, ``iat``, ``exp`` (REAL time,
``token_lifetime_seconds`` later), ``jti``, ``name``, ``roles``, ``accounts`` and
``client_id``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

import jwt
from fastapi import Depends, FastAPI, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic
from pydantic import BaseModel, Field, field_validator
from starlette.requests import HTTPConnection

from deploy.issuer.config import (
    NAME_PATTERN,
    ClientConfig,
    IssuerConfig,
    UserConfig,
    checked_accounts,
    checked_roles,
)
from deploy.issuer.keys import ALGORITHM, KeyStore
from shared.api_errors import document_errors

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error answer."""

    def __init__(self, error: str, description: str, status: int = 400,
                 challenge: str | None = None) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.challenge = challenge
        super().__init__(description)


class UserBody(BaseModel):
    """A user as the admin endpoint takes it (password omitted: keep the current one)."""

    password: str | None = Field(default=None, min_length=8, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    roles: list[str] = Field(default_factory=list, max_length=100,
                             examples=[["KZ:holder"]])
    accounts: list[str] = Field(default_factory=list, max_length=1000,
                                examples=[["KZ:1001", "KZ:1002"]])

    _roles = field_validator("roles")(checked_roles)
    _accounts = field_validator("accounts")(checked_accounts)


class OAuthErrorBody(BaseModel):
    """An RFC 6749 section 5.2 error answer."""

    error: str
    error_description: str


class TokenAnswer(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


#: The token request as RFC 6749 4.3 and 4.4 define it (a form post), for the OpenAPI
#: description: the handler reads the form itself, each parameter at most once.
TOKEN_FORM: dict[str, Any] = {"requestBody": {"required": True, "content": {FORM: {"schema": {
    "type": "object", "required": ["grant_type"],
    "properties": {"grant_type": {"type": "string",
                                  "enum": ["client_credentials", "password"]},
                   "username": {"type": "string"}, "password": {"type": "string"},
                   "client_id": {"type": "string"}, "client_secret": {"type": "string"}}}}}}}
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "RFC 6749 5.2: invalid_request, "
          "invalid_grant, unauthorized_client, unsupported_grant_type"},
    401: {"model": OAuthErrorBody, "description": "invalid_client: unknown client or "
          "wrong secret (WWW-Authenticate: Basic)"},
}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": OAuthErrorBody, "description": "no admin client credentials"},
    403: {"model": OAuthErrorBody, "description": "the client is not an admin client"},
}


class UserView(BaseModel):
    username: str
    name: str
    roles: list[str]
    accounts: list[str]
    created: bool


class Issuer:
    """Configuration, keys and run-time users of one issuer process."""

    def __init__(self, config: IssuerConfig, workdir: Path) -> None:
        self.config = config
        self.keys = KeyStore(workdir / "keys")
        self.users_path = workdir / "users.json"
        self.users: dict[str, UserConfig] = dict(config.users)
        if self.users_path.exists():
            saved = json.loads(self.users_path.read_text())
            self.users.update({n: UserConfig.model_validate(u) for n, u in saved.items()})

    def put_user(self, username: str, body: UserBody) -> tuple[UserConfig, bool]:
        """Create or update ``username``; kept in ``users.json`` across restarts."""
        current = self.users.get(username)
        password = body.password or (current.password if current else None)
        if password is None:
            raise OAuthError("invalid_request", "a new user needs a password")
        user = UserConfig(password=password, name=body.name, roles=body.roles,
                          accounts=body.accounts)
        self.users[username] = user
        made_here = {n: u.model_dump() for n, u in self.users.items()
                     if self.config.users.get(n) != u}
        self.users_path.touch(mode=0o600, exist_ok=True)
        self.users_path.write_text(json.dumps(made_here))
        return user, current is None

    def client(self, request: Request, form: dict[str, str]) -> tuple[str, ClientConfig]:
        """The authenticated client of a token request (RFC 6749 2.3.1)."""
        header = request.headers.get("authorization")
        in_form = "client_secret" in form
        if header and in_form:
            raise OAuthError("invalid_request", "authenticate the client one way: HTTP Basic "
                                                "or client_id and client_secret, not both")
        if header:
            client_id, secret = _basic(header)
        elif "client_id" in form:
            client_id, secret = form["client_id"], form.get("client_secret", "")
        else:
            raise OAuthError("invalid_client", "client authentication is required (HTTP "
                                               "Basic or client_id and client_secret)", 401,
                             'Basic realm="issuer"')
        return client_id, self._known_client(client_id, secret, "issuer")

    def _known_client(self, client_id: str, secret: str, realm: str) -> ClientConfig:
        client = self.config.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise OAuthError("invalid_client", f"unknown client {client_id!r} or wrong "
                                               "secret", 401, f'Basic realm="{realm}"')
        return client

    def admin(self, request: Request) -> None:
        """An admin client's HTTP Basic credentials, or an OAuth-style 401/403."""
        header = request.headers.get("authorization")
        if not header:
            raise OAuthError("invalid_client", "the admin endpoints need an admin client's "
                                               "credentials (HTTP Basic)", 401,
                             'Basic realm="issuer admin"')
        client_id, secret = _basic(header)
        if not self._known_client(client_id, secret, "issuer admin").admin:
            raise OAuthError("unauthorized_client", f"client {client_id!r} is not an admin "
                                                    "client", 403)

    def token(self, client_id: str, client: ClientConfig, form: dict[str, str]
              ) -> dict[str, Any]:
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant not in ("client_credentials", "password"):
            raise OAuthError("unsupported_grant_type",
                             f"grant_type {grant!r}: client_credentials or password")
        if grant not in client.grant_types:
            raise OAuthError("unauthorized_client",
                             f"client {client_id!r} may not use the {grant} grant")
        claims: dict[str, Any]
        if grant == "client_credentials":
            claims = {"sub": client_id, "name": client.name or client_id,
                      "roles": client.roles, "accounts": []}
        else:
            username, password = form.get("username"), form.get("password")
            if not username or password is None:
                raise OAuthError("invalid_request", "the password grant needs username and "
                                                    "password")
            user = self.users.get(username)
            if user is None or not hmac.compare_digest(user.password.encode(),
                                                       password.encode()):
                raise OAuthError("invalid_grant", "unknown user or wrong password")
            claims = {"sub": username, "name": user.name or username, "roles": user.roles,
                      "accounts": user.accounts}
        now = int(time.time())
        lifetime = self.config.token_lifetime_seconds
        claims |= {"iss": self.config.issuer, "aud": self.config.audience, "iat": now,
                   "exp": now + lifetime, "jti": uuid.uuid4().hex, "client_id": client_id}
        signing = self.keys.active
        token = jwt.encode(claims, signing.private_key, algorithm=ALGORITHM,
                           headers={"kid": signing.kid})
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}

    def discovery(self) -> dict[str, Any]:
        base = self.config.issuer.rstrip("/")
        return {
            "issuer": self.config.issuer,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks.json",
            "grant_types_supported": ["client_credentials", "password"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": ["iss", "aud", "sub", "iat", "exp", "jti", "name", "roles",
                                 "accounts", "client_id"],
        }


def _basic(header: str) -> tuple[str, str]:
    """Client id and secret of an HTTP Basic header (form-encoded, RFC 6749 2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        client_id, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "the Authorization header must be HTTP Basic "
                                           "client credentials", 401,
                         'Basic realm="issuer"') from exc
    if not sep:
        raise OAuthError("invalid_client", "HTTP Basic credentials need id:secret", 401,
                         'Basic realm="issuer"')
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def _form(request: Request) -> dict[str, str]:
    """The token request's parameters; each at most once (RFC 6749 3.2)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise OAuthError("invalid_request", f"the token request is a form post ({FORM})")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True,
                          strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "the form is not UTF-8") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is given more than once")
        form[name] = value
    return form


class _DescribedBasic(HTTPBasic):
    """HTTP Basic in the OpenAPI description only: ``Issuer.admin`` reads the header
    itself and answers as RFC 6749 5.2 says (FastAPI's own check answers otherwise)."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


#: The admin endpoints' HTTP Basic client credentials, in the OpenAPI description.
ADMIN_BASIC = _DescribedBasic(scheme_name="adminClient", auto_error=False,
                              description="an admin client's id and secret (RFC 6749 2.3.1)")


async def admin_client(request: Request,
                       _credentials: Annotated[None, Security(ADMIN_BASIC)]) -> None:
    """Dependency of the admin endpoints: an admin client's credentials (401/403 before
    anything else of the request is looked at)."""
    issuer: Issuer = request.app.state.issuer
    issuer.admin(request)


def create_app(config: IssuerConfig, workdir: Path) -> FastAPI:
    """The issuer's app; keys and run-time users live in ``workdir``."""
    issuer = Issuer(config, workdir)
    app = FastAPI(title="issuer", description=__doc__)
    app.state.issuer = issuer
    document_errors(app)

    @app.exception_handler(OAuthError)
    async def oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        headers = dict(NO_STORE)
        if exc.challenge:
            headers["WWW-Authenticate"] = exc.challenge
        return JSONResponse(status_code=exc.status, headers=headers,
                            content={"error": exc.error, "error_description": exc.description})

    @app.post("/token", tags=["oauth2"], openapi_extra=TOKEN_FORM,
              responses={200: {"model": TokenAnswer}, **OAUTH_ERRORS})
    async def token(request: Request) -> JSONResponse:
        """RFC 6749 token endpoint: client credentials or password grant."""
        form = await _form(request)
        client_id, client = issuer.client(request, form)
        return JSONResponse(issuer.token(client_id, client, form), headers=NO_STORE)

    @app.get("/jwks.json", tags=["oauth2"])
    async def jwks() -> dict[str, Any]:
        """The public keys tokens are signed with (RFC 7517)."""
        return issuer.keys.jwks()

    @app.get("/.well-known/openid-configuration", tags=["oauth2"])
    async def discovery() -> dict[str, Any]:
        """Where the token endpoint and the key set are."""
        return issuer.discovery()

    @app.put("/admin/users/{username}", tags=["admin"],
             responses={200: {"model": UserView}, 201: {"model": UserView},
                        400: {"model": OAuthErrorBody,
                              "description": "invalid_request: a new user needs a password"},
                        **ADMIN_ERRORS}, dependencies=[Depends(admin_client)])
    async def put_user(username: Annotated[str, PathParam(pattern=NAME_PATTERN)],
                       body: UserBody) -> JSONResponse:
        """Create (201) or update (200) a user: roles and accounts in the claims' forms
        (``KZ:holder``; ``KZ:1001``); 422 naming a malformed one."""
        user, created = issuer.put_user(username, body)
        view = UserView(username=username, name=user.name or username, roles=user.roles,
                        accounts=user.accounts, created=created)
        return JSONResponse(view.model_dump(), status_code=201 if created else 200)

    @app.post("/admin/keys/rotate", tags=["admin"], responses=ADMIN_ERRORS,
              dependencies=[Depends(admin_client)])
    async def rotate() -> dict[str, str]:
        """Sign with a new key from now on; earlier keys stay in the key set."""
        return {"kid": issuer.keys.rotate().kid}

    @app.get("/health", tags=["admin"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "issuer": config.issuer}

    return app
