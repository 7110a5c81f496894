"""The built-in issuer's configuration file: who may get tokens, and what they carry.

A JSON file (``python -m deploy.issuer --config FILE``)::

    {"issuer": "http://127.0.0.1:8198",
     "audience": "kyoto-registry-sim",
     "token_lifetime_seconds": 3600,
     "clients": {"stack": {"secret": "...", "grant_types": ["password"]},
                 "stack-clock": {"secret": "...", "grant_types": ["client_credentials"],
                                 "roles": ["*:clock"]},
                 "stack-admin": {"secret": "...", "admin": true}},
     "users": {"kz-operator-1": {"password": "...", "name": "KZ operator 1",
                                 "roles": ["KZ:operator"]}}}

Roles and accounts use the claims' forms (``shared.auth``: ``KZ:operator``, ``*:clock``;
``KZ:1001``). Token lifetimes are REAL seconds. Users created at run time through the
admin endpoint are kept beside the keys in the work directory (``users.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.auth import ACCOUNT_ENTRY, CLOCK, DEFAULT_AUDIENCE, EVERY_SERVICE, ROLE_ENTRY

GrantType = Literal["client_credentials", "password"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


def checked_roles(roles: list[str]) -> list[str]:
    for role in roles:
        match = ROLE_ENTRY.match(role)
        if match is None or (match["code"] == EVERY_SERVICE and match["role"] != CLOCK):
            raise ValueError(f"role {role!r}: '<SERVICE CODE>:<role>' (KZ:operator, "
                             "ITL:administrator, CDM:operator, KZ:clock or *:clock)")
    return roles


def checked_accounts(accounts: list[str]) -> list[str]:
    for account in accounts:
        if ACCOUNT_ENTRY.match(account) is None:
            raise ValueError(f"account {account!r}: '<REGISTRY>:<account id>' (KZ:1001)")
    return accounts


class ClientConfig(BaseModel):
    """An OAuth2 client: a program. ``grant_types`` it may use; a client-credentials
    token carries ``roles``; an ``admin`` client may create users and rotate keys."""

    secret: str = Field(min_length=16, description="client secret")
    name: str | None = Field(default=None, max_length=200)
    grant_types: list[GrantType] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list, max_length=100)
    admin: bool = False

    _roles = field_validator("roles")(checked_roles)


class UserConfig(BaseModel):
    """A person who logs in with the password grant; the token carries ``roles`` and,
    for a holder's representative, ``accounts``."""

    password: str = Field(min_length=8, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    roles: list[str] = Field(default_factory=list, max_length=100)
    accounts: list[str] = Field(default_factory=list, max_length=1000)

    _roles = field_validator("roles")(checked_roles)
    _accounts = field_validator("accounts")(checked_accounts)


class IssuerConfig(BaseModel):
    """The whole file."""

    issuer: str = Field(min_length=1, description="the iss of every token; also the base "
                                                  "of the discovery document's URLs")
    audience: str = DEFAULT_AUDIENCE
    token_lifetime_seconds: int = Field(default=3600, ge=1, le=86_400,
                                        description="REAL seconds, not simulated time")
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    users: dict[str, UserConfig] = Field(default_factory=dict)

    @field_validator("clients", "users")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if re.match(NAME_PATTERN, name) is None:
                raise ValueError(f"name {name!r}: letters, digits, '.', '_', '@', '-', "
                                 "at most 64")
        return value

    @classmethod
    def load(cls, path: Path) -> IssuerConfig:
        return cls.model_validate_json(path.read_text())

    def save(self, path: Path) -> None:
        """Write the file readable by its owner only: it holds secrets."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(self.model_dump(exclude_defaults=False), indent=2))
