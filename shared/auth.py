"""Authenticated API callers: OAuth2 bearer tokens (JWT) verified against an issuer.

Every service reads the same settings (``AuthSettings``, part of ``ServiceSettings``) and
verifies a request's ``Authorization: Bearer <token>`` with PyJWT: the signature against
the issuer's JSON Web Key Set (``AUTH_JWKS_URL``, fetched off the event loop, cached, and
fetched again when a token names a key id the cached set lacks: the issuer may rotate
its keys), then ``iss`` (``AUTH_ISSUER``), ``aud`` (``AUTH_AUDIENCE``), ``exp``, ``nbf`` and
``iat`` within ``AUTH_LEEWAY_SECONDS``. Token lifetimes and the leeway are REAL seconds
(the tokens' ``exp`` and ``iat`` are Unix times), never the simulation clock.

The caller (``Principal``) comes from the claims (docs/adr/0015):

- ``sub``: the person or client, recorded with the role it acted in
  (``operator kz-operator-1``); ``name``: for people to read (default ``sub``);
- ``roles``: ``"<SERVICE CODE>:<role>"`` strings: ``KZ:operator``,
  ``KZ:authorised-body``, ``KZ:holder``, ``ITL:administrator``, ``CDM:operator``,
  ``<CODE>:clock`` or ``*:clock`` (the simulation clock of every service; ``*`` is given
  for the clock only). Entries without a colon are an identity provider's own roles
  (Keycloak's ``offline_access``) and are ignored;
- ``accounts``: ``"<REGISTRY>:<account id>"`` strings, the accounts a holder's
  representative acts for (``KZ:1001``).

A missing, expired, wrongly signed or wrongly addressed token, or malformed claims, is
``Unauthenticated`` (HTTP 401 with ``WWW-Authenticate: Bearer ...`` and the reason); the
wrong caller is ``Forbidden`` (403 with the reason); an issuer whose keys cannot be
fetched is ``IssuerUnavailable`` (503).

``AUTH_MODE=development`` keeps the ``X-Actor`` header of earlier versions and access
without a token where no actor was needed; a token, when sent, is still verified. It is
off by default and every service warns about it in its log at start.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.audit import acting_as, person
from shared.logs import log_event
from shared.settings import comma_or_json_list

log = logging.getLogger("shared.auth")

#: The audience of every service of the network (one resource server, many services).
DEFAULT_AUDIENCE = "kyoto-registry-sim"
#: Signature algorithms of keys an issuer publishes; symmetric ones (HS256) and ``none``
#: make no sense with a public key set and are refused as settings.
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "ES512", "EdDSA"})
#: Roles of the clock endpoints; the only role given for every service at once (``*``).
CLOCK = "clock"
EVERY_SERVICE = "*"
#: The largest account id a claim may name (64-bit signed, as the store keeps it).
MAX_ACCOUNT_ID = 2**63 - 1
ROLE_ENTRY = re.compile(r"^(?P<code>[A-Z]{2}|ITL|CDM|\*):(?P<role>[a-z][a-z-]{0,39})$")
ACCOUNT_ENTRY = re.compile(r"^(?P<registry>[A-Z]{2}|CDM):(?P<account>[1-9][0-9]{0,18})$")
#: Subject recorded for a development-mode caller that names no subject.
UNAUTHENTICATED = "unauthenticated"


class AuthMode(StrEnum):
    TOKEN = "token"
    DEVELOPMENT = "development"


class AuthSettings(BaseSettings):
    """How a service authenticates API callers (environment, upper-case names)."""

    model_config = SettingsConfigDict(extra="ignore")

    auth_mode: AuthMode = Field(
        default=AuthMode.TOKEN,
        description="token (default): every endpoint but /health, /metrics, the OpenAPI "
                    "pages and the ITL's AsyncAPI pages (/asyncapi.json, /asyncapi) needs a "
                    "valid bearer token; development: the X-Actor header and access without "
                    "a token as before, with a warning in the log")
    auth_issuer: str | None = Field(
        default=None, description="the issuer's identifier, exactly as in the tokens' iss")
    auth_jwks_url: str | None = Field(
        default=None, description="where the issuer publishes its JSON Web Key Set")
    auth_audience: str = Field(default=DEFAULT_AUDIENCE,
                               description="the aud every token must name")
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256"],
        description="signature algorithms accepted (asymmetric only), JSON or comma list")
    auth_leeway_seconds: float = Field(
        default=30.0, ge=0, le=600,
        description="REAL seconds of clock skew allowed on exp, nbf and iat")
    auth_jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="REAL seconds a fetched key set is kept")
    auth_jwks_refetch_cooldown_seconds: float = Field(
        default=5.0, ge=0,
        description="REAL seconds at least between two fetches caused by an unknown key id")
    auth_token_url: str | None = Field(
        default=None, description="the issuer's token endpoint, shown in the OpenAPI "
                                  "description (OAuth2 client credentials and password)")

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _algorithms_list(cls, value: Any) -> Any:
        return comma_or_json_list(value)

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if unknown or not value:
            raise ValueError(f"AUTH_ALGORITHMS {unknown or value}: give one or more of "
                             f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}")
        return value


class Unauthenticated(Exception):
    """No valid token (HTTP 401). ``error`` is RFC 6750's code for the WWW-Authenticate
    header: ``invalid_token``, or None when the request carried no token at all."""

    def __init__(self, reason: str, error: str | None = "invalid_token") -> None:
        self.reason = reason
        self.error = error
        super().__init__(reason)


class Forbidden(Exception):
    """The caller may not do this (HTTP 403 with the reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IssuerUnavailable(Exception):
    """The issuer's key set cannot be had (HTTP 503): nothing can be verified."""


@dataclass(frozen=True)
class Principal:
    """Who calls: a verified token's claims, or a development-mode caller.

    ``roles``: (service code or ``*``, role) pairs; ``accounts``: (registry code, account
    id) pairs. ``development``: not from a token (``AUTH_MODE=development``): may do what
    needed no actor before; a registry reads its ``X-Actor`` header."""

    subject: str
    name: str = ""
    roles: frozenset[tuple[str, str]] = frozenset()
    accounts: frozenset[tuple[str, int]] = frozenset()
    development: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, code: str, role: str) -> bool:
        """Whether the caller holds ``role`` at service ``code`` (``*:clock`` counts for
        the clock of every service)."""
        return (code, role) in self.roles or (role == CLOCK and (EVERY_SERVICE, role)
                                              in self.roles)

    def roles_at(self, code: str) -> frozenset[str]:
        """The caller's roles at service ``code``."""
        return frozenset(role for service, role in self.roles
                         if service == code or (service == EVERY_SERVICE and role == CLOCK))

    def accounts_at(self, registry: str) -> frozenset[int]:
        """The account ids of ``registry`` the caller acts for."""
        return frozenset(account for code, account in self.accounts if code == registry)

    def describe(self) -> str:
        """``kz-operator-1 (roles KZ:operator)``: for the reasons of refusals."""
        roles = ", ".join(sorted(f"{c}:{r}" for c, r in self.roles)) or "none"
        text = f"{self.subject} (roles {roles}"
        if self.accounts:
            text += "; accounts " + ", ".join(sorted(f"{c}:{a}" for c, a in self.accounts))
        return text + ")"


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The caller named by a verified token's claims; ``Unauthenticated`` naming the claim
    when one is malformed (``sub`` not a non-empty string, ``roles`` or ``accounts`` not a
    list of strings in their form, an account id beyond 64 bits)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise Unauthenticated("claim sub: the token must name its subject (1-255 characters)")
    name = claims.get("name", subject)
    if not isinstance(name, str):
        raise Unauthenticated("claim name: must be a string")
    roles: set[tuple[str, str]] = set()
    for entry in _strings(claims, "roles"):
        if ":" not in entry:
            continue  # an identity provider's own role (offline_access, ...)
        match = ROLE_ENTRY.match(entry)
        if match is None:
            raise Unauthenticated(f"claim roles: {entry!r} is not '<SERVICE CODE>:<role>' "
                                  "(e.g. KZ:operator, ITL:administrator, *:clock)")
        code, role = match["code"], match["role"]
        if code == EVERY_SERVICE and role != CLOCK:
            raise Unauthenticated(f"claim roles: {entry!r}: only the clock role is given "
                                  "for every service ('*:clock')")
        roles.add((code, role))
    accounts: set[tuple[str, int]] = set()
    for entry in _strings(claims, "accounts"):
        match = ACCOUNT_ENTRY.match(entry)
        if match is None or int(match["account"]) > MAX_ACCOUNT_ID:
            raise Unauthenticated(f"claim accounts: {entry!r} is not '<REGISTRY>:<account "
                                  f"id>' with an id from 1 to {MAX_ACCOUNT_ID} (e.g. KZ:1001)")
        accounts.add((match["registry"], int(match["account"])))
    return Principal(subject=subject, name=name, roles=frozenset(roles),
                     accounts=frozenset(accounts), claims=dict(claims))


def _strings(claims: Mapping[str, Any], claim: str) -> list[str]:
    value = claims.get(claim, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unauthenticated(f"claim {claim}: must be a list of strings")
    return value


class TokenVerifier:
    """Verifies bearer JWTs against one issuer (PyJWT, its ``PyJWKClient`` for the key
    set). A key found in the cached set is used at once; otherwise the set is fetched in
    a worker thread (never on the event loop), once more when the token's ``kid`` is
    unknown (after ``AUTH_JWKS_REFETCH_COOLDOWN_SECONDS`` since the last fetch)."""

    def __init__(self, settings: AuthSettings) -> None:
        if not settings.auth_issuer or not settings.auth_jwks_url:
            raise ValueError("bearer tokens need AUTH_ISSUER and AUTH_JWKS_URL (the issuer "
                             "and its key set); for a stack without an issuer set "
                             "AUTH_MODE=development")
        self.issuer = settings.auth_issuer
        self.audience = settings.auth_audience
        self.algorithms = list(settings.auth_algorithms)
        self.leeway = settings.auth_leeway_seconds
        self.jwks = jwt.PyJWKClient(
            settings.auth_jwks_url, cache_jwk_set=True,
            lifespan=settings.auth_jwks_cache_seconds, timeout=10,
            cooldown_duration=settings.auth_jwks_refetch_cooldown_seconds)

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``Unauthenticated`` with the reason otherwise,
        ``IssuerUnavailable`` when the key set cannot be fetched."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise Unauthenticated(f"the bearer token is not a JWT: {exc}") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token's header names no signing key (kid)")
        key = await self._signing_key(kid)
        try:
            claims = jwt.decode(
                token, key, algorithms=self.algorithms, audience=self.audience,
                issuer=self.issuer, leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired (exp, real time)") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(f"the token is not for audience {self.audience!r}: "
                                  f"{exc}") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(f"the token is not from issuer {self.issuer!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from exc
        return principal_from_claims(claims)

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        cache = self.jwks.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is not None:
            for key in cached.keys:
                if key.key_id == kid and key.public_key_use in ("sig", None):
                    return key
        try:
            return await asyncio.to_thread(self.jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise IssuerUnavailable(f"the issuer's key set could not be fetched: {exc}"
                                    ) from exc
        except jwt.PyJWKSetError as exc:
            raise IssuerUnavailable(f"the issuer's key set is unusable: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"the token is signed with key {kid!r}, which the issuer "
                                  "does not publish") from exc


class Authenticator:
    """The caller of each request to one service (code ``code``)."""

    def __init__(self, settings: AuthSettings, code: str) -> None:
        self.code = code
        self.settings = settings
        self.development = settings.auth_mode == AuthMode.DEVELOPMENT
        configured = bool(settings.auth_issuer and settings.auth_jwks_url)
        self.verifier = (TokenVerifier(settings) if configured or not self.development
                         else None)

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send the token as 'Authorization: Bearer <token>'")
            if self.verifier is None:
                raise Unauthenticated("this service has no issuer (AUTH_ISSUER, "
                                      "AUTH_JWKS_URL) to verify bearer tokens against")
            return await self.verifier.verify(token.strip())
        if self.development:
            return Principal(subject=UNAUTHENTICATED, development=True)
        raise Unauthenticated("a bearer token is required: 'Authorization: Bearer <token>' "
                              "from the issuer", error=None)

    def log_mode(self) -> None:
        """Say at start how callers are authenticated; development mode as a warning."""
        if self.development:
            log_event(log, "auth_development_mode", logging.WARNING, service=self.code,
                      detail="AUTH_MODE=development: the X-Actor header is trusted and "
                             "requests without a token are served; never in production")
        else:
            log_event(log, "auth_token_mode", service=self.code,
                      issuer=self.settings.auth_issuer, audience=self.settings.auth_audience)


BEARER = HTTPBearer(
    scheme_name="bearer", bearerFormat="JWT", auto_error=False,
    description="An OAuth2 access token (JWT) from the issuer, for audience "
                f"{DEFAULT_AUDIENCE!r} by default; roles and accounts in its claims "
                "(docs/adr/0015)")


async def principal_of(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    """FastAPI dependency: the caller of this request (401 without a valid token); kept
    in the request's state (``principal``) for the recording of the command
    (``shared.recording.capture``, docs/adr/0034)."""
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(request)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(principal_of)]
#: ``include_router(..., dependencies=AUTHENTICATED)``: every route needs a valid token.
AUTHENTICATED = [Depends(principal_of)]


def _missing_role(principal: Principal, wanted: str, what: str) -> Forbidden:
    return Forbidden(f"{what} needs the role {wanted}, which {principal.describe()} does "
                     "not hold")


def require_role(role: str, what: str) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency: the caller, who must hold ``<this service's code>:<role>``
    (``*:clock`` for the clock); ``what`` names the action in the 403 reason. A
    development-mode caller passes: these actions needed no actor before. The caller
    becomes the actor of what the request changes (``shared.audit``)."""

    async def dependency(request: Request, principal: PrincipalDep) -> Principal:
        code = request.app.state.authenticator.code
        if not principal.development and not principal.has_role(code, role):
            raise _missing_role(principal, f"{code}:{role}", what)
        acting_as(person(role, principal.subject))
        return principal

    return dependency


READ_METHODS = frozenset({"GET", "HEAD"})


def require_roles_by_method(change_role: str, read_roles: Iterable[tuple[str | None, str]],
                            what: str) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency for a router: a change (any method but GET and HEAD) needs
    ``<this service's code>:<change_role>``; a read one of ``read_roles``, each (service
    code, role) where a code of None means any service (e.g. every registry's
    operator), or only a valid token when ``read_roles`` is empty. ``what`` names the
    service in the 403 reason. A development-mode caller passes (no actor needed). The
    caller of a change becomes the actor of what it changes (``shared.audit``)."""
    readers = tuple(read_roles)

    async def dependency(request: Request, principal: PrincipalDep) -> Principal:
        if request.method not in READ_METHODS:
            acting_as(person(change_role, principal.subject))
        if principal.development:
            return principal
        code = request.app.state.authenticator.code
        if request.method not in READ_METHODS:
            if not principal.has_role(code, change_role):
                raise _missing_role(principal, f"{code}:{change_role}", f"changing {what}")
        elif readers and not any(role == wanted and service in (None, held)
                                 for held, role in principal.roles
                                 for service, wanted in readers):
            names = " or ".join(f"{service or '<CODE>'}:{role}" for service, role in readers)
            raise _missing_role(principal, names, f"reading {what}")
        return principal

    return dependency


def install(app: FastAPI, settings: AuthSettings, code: str) -> Authenticator:
    """Give ``app`` its authenticator, the 401/403/503 answers and, with
    ``AUTH_TOKEN_URL``, the OAuth2 flows in its OpenAPI description."""
    authenticator = Authenticator(settings, code)
    app.state.authenticator = authenticator
    realm = settings.auth_audience

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        challenge = f'Bearer realm="{realm}"'
        if exc.error:
            description = exc.reason.replace('"', "'").replace("\\", "/")
            challenge += f', error="{exc.error}", error_description="{description}"'
        return JSONResponse(status_code=401, content={"detail": exc.reason},
                            headers={"WWW-Authenticate": challenge})

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": exc.reason})

    @app.exception_handler(IssuerUnavailable)
    async def issuer_unavailable(_: Request, exc: IssuerUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    if settings.auth_token_url:
        _declare_oauth2(app, settings.auth_token_url)
    return authenticator


#: What the OpenAPI description says every authenticated operation may answer.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token: missing, expired, wrongly signed, for "
                         "another audience or issuer, or malformed claims (reason in "
                         "detail and WWW-Authenticate)"},
    403: {"description": "the caller's roles or accounts do not allow this (reason)"},
}


def _declare_oauth2(app: FastAPI, token_url: str) -> None:
    """Add the issuer's OAuth2 flows as an alternative to the bearer scheme of every
    secured operation of ``app``'s OpenAPI description."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        flows = {"tokenUrl": token_url, "scopes": {}}
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["oauth2"] = {
            "type": "oauth2",
            "description": "The issuer's token endpoint: client credentials (services, "
                           "the clock) or password (people)",
            "flows": {"clientCredentials": flows, "password": dict(flows)},
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and "security" in operation:
                    operation["security"] = [*operation["security"], {"oauth2": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
