"""The console's way to the services: their operator APIs over HTTP with the signed-in
principal's bearer token, and the issuer's token endpoint for signing in.

The console holds no rights of its own: every read and every change is the API's answer
to the token of the person (or client) signed in, so a page shows what that person may
see and a form does only what that person may do (docs/adr/0041)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

#: A session ends this many REAL seconds before its token expires.
TOKEN_MARGIN_SECONDS = 30.0
#: Sessions kept at most (the oldest go first): a local tool, few people at once.
MAX_SESSIONS = 1000


#: Why the browser is sent to sign in, by the key the sign-in page is given (a fixed text:
#: the page never shows text from its address).
SIGN_IN_REASONS = {
    "required": "Sign in to continue.",
    "expired": "Your token has expired: sign in again.",
    "refused": "A service refused your token (expired, revoked or from another issuer): "
               "sign in again.",
}


class SignInRequired(Exception):
    """No session, an expired one, or a token the service refused with 401: the page
    sends the browser to sign in again, saying why (``reason``, a key of
    ``SIGN_IN_REASONS``; ``detail`` for the log)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    """A service's answer: HTTP ``status``, the JSON ``body`` (None when it is not JSON)
    and the ``text``."""

    status: int
    body: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """The reason of a refusal, as the API gives it (``detail``, with the response
        code when there is one), for showing; '' for a success."""
        if self.ok:
            return ""
        if isinstance(self.body, dict):
            detail = self.body.get("detail", self.body.get("error_description", ""))
            if isinstance(detail, list):
                detail = "; ".join(field_error_text(item) for item in detail)
            code = self.body.get("response_code")
            return f"{self.status}: {detail}" + (f" (response code {code})" if code else "")
        return f"{self.status}: {self.text[:500]}"

    def field_errors(self, values: Mapping[str, str] | None = None) -> dict[str, str]:
        """A 422's errors by the request field they name (``{"quantity": "Input should
        be greater than or equal to 1"}``, from FastAPI's ``loc``); for a 404 naming
        what it did not find by its id (``decision D9 not found``, ``account 5000 in
        registry KZ not found``), the field of ``values`` (a form's, as typed) that gave
        that id: one whose name ends in ``<thing>_id`` (``decision_id``,
        ``transferring_account_id``); empty otherwise."""
        errors: dict[str, str] = {}
        if (self.status == 404 and values and isinstance(self.body, dict)
                and isinstance(self.body.get("detail"), str)):
            detail = self.body["detail"]
            for name, value in values.items():
                thing = name.removesuffix("_id").rsplit("_", 1)[-1]
                if (name.endswith("_id") and value.strip() and re.search(
                        rf"\b{re.escape(thing)} {re.escape(value.strip())}(\s|$)", detail)):
                    errors[name] = detail
            return errors
        if not isinstance(self.body, dict) or not isinstance(self.body.get("detail"), list):
            return errors
        for item in self.body["detail"]:
            loc = [str(part) for part in item.get("loc", [])]
            name = loc[1] if len(loc) > 1 and loc[0] == "body" else (loc[-1] if loc else "")
            if name:
                errors.setdefault(name, str(item.get("msg", "")))
        return errors


def field_error_text(item: Any) -> str:
    """One FastAPI validation error as ``field: message``."""
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc", []) if part != "body"]
    return f"{'.'.join(loc)}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))


@dataclass
class Session:
    """A signed-in principal: its name (``sub``), display name, roles and accounts as its
    token says (read without checking: the services check it), and the token."""

    principal: str
    name: str
    roles: list[str]
    accounts: list[str]
    token: str
    expires_at: float
    created_at: float = field(default_factory=time.monotonic)

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.expires_at - TOKEN_MARGIN_SECONDS


class SignInRefused(Exception):
    """The issuer refused the credentials: ``field`` is the form field to blame
    (``username`` or ``password``), ``reason`` the issuer's words."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


class Backend:
    """HTTP to the services (by code: ``ITL``, ``KZ``, ``CDM``) and to the issuer, and
    the sessions of the people signed in (in memory: a restart signs everyone out)."""

    def __init__(self, services: dict[str, str], token_url: str, login_client: str,
                 login_secret: Any, timeout: float) -> None:
        self.services = services
        self.token_url = token_url
        self.login_client = login_client
        #: () -> the login client's secret, read when someone signs in
        self.login_secret = login_secret
        self.http = httpx.AsyncClient(timeout=timeout)
        self.sessions: dict[str, Session] = {}

    async def close(self) -> None:
        await self.http.aclose()

    # signing in

    async def sign_in(self, username: str, password: str, kind: str) -> tuple[str, Session]:
        """A token for a person (``kind`` ``person``: the password grant through the
        login client) or a client (``client``: its client-credentials grant, the password
        being its secret); returns the new session's id and the session.
        ``SignInRefused`` naming the field when the issuer says no."""
        if kind not in ("person", "client"):
            raise SignInRefused("kind", f"sign in as a person or a client, not {kind!r}")
        if not username:
            raise SignInRefused("username", "a user or client name is required")
        if not password:
            raise SignInRefused("password", "a password or secret is required")
        if kind == "client":
            form = {"grant_type": "client_credentials"}
            auth = (username, password)
        else:
            form = {"grant_type": "password", "username": username, "password": password}
            auth = (self.login_client, self.login_secret())
        try:
            response = await self.http.post(self.token_url, data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise SignInRefused("username", f"the issuer at {self.token_url} does not "
                                            f"answer: {exc}") from exc
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            reason = (body.get("error_description") or error if isinstance(body, dict)
                      else response.text[:300]) or f"HTTP {response.status_code}"
            blame = "password" if error in ("invalid_grant", "invalid_client") else "username"
            raise SignInRefused(blame, f"{error}: {reason}" if error else reason)
        token = str(body["access_token"])
        claims = jwt.decode(token, options={"verify_signature": False})
        session = Session(
            principal=str(claims.get("sub", username)),
            name=str(claims.get("name", username)),
            roles=[str(r) for r in claims.get("roles", [])],
            accounts=[str(a) for a in claims.get("accounts", [])],
            token=token,
            expires_at=time.monotonic() + float(body.get("expires_in", 300)))
        self._forget_expired()
        session_id = secrets.token_urlsafe(32)
        self.sessions[session_id] = session
        return session_id, session

    def session(self, session_id: str | None) -> Session:
        """The live session of ``session_id``; ``SignInRequired`` otherwise."""
        session = self.sessions.get(session_id or "")
        if session is None:
            raise SignInRequired("required")
        if session.expired:
            self.sessions.pop(session_id or "", None)
            raise SignInRequired("expired")
        return session

    def sign_out(self, session_id: str | None) -> None:
        self.sessions.pop(session_id or "", None)

    def _forget_expired(self) -> None:
        for key in [k for k, s in self.sessions.items() if s.expired]:
            del self.sessions[key]
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[min(self.sessions, key=lambda k: self.sessions[k].created_at)]

    # the services

    async def call(self, session: Session, service: str, method: str, path: str,
                   json_body: Any = None, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        """One request to ``service``'s API as ``session``'s principal. A service that
        does not answer is a 503 answer naming it; a 401 (the token refused) raises
        ``SignInRequired``."""
        base = self.services.get(service)
        if base is None:
            return Answer(404, {"detail": f"no service {service} in this stack"}, "")
        try:
            response = await self.http.request(
                method, f"{base}{path}", json=json_body, params=params,
                headers={"Authorization": f"Bearer {session.token}", **(headers or {})})
        except httpx.HTTPError as exc:
            return Answer(503, {"detail": f"{service} at {base} does not answer: "
                                          f"{exc.__class__.__name__} {exc}"}, "")
        if response.status_code == 401:
            raise SignInRequired("refused", f"{service} refused the token: "
                                            f"{_json(response) or response.text}")
        return Answer(response.status_code, _json(response), response.text)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
