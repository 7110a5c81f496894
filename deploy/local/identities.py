"""The identities a local stack's built-in issuer knows from the start (docs/adr/0015).

For each registry (and the CDM registry) two operators and, for each national registry,
two members of the authorised body: four-eyes approval needs two persons. One ITL
administrator; a clock client; the client people log in through; the admin client that
registers account holders' representatives at run time. Secrets are random per stack
and written to the issuer's configuration file (readable by its owner only).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from deploy.issuer.config import ClientConfig, IssuerConfig, UserConfig
from shared.auth import CLOCK, DEFAULT_AUDIENCE, EVERY_SERVICE
from shared.codes import CDM_CODE, ITL_CODE

#: The client people log in through (password grant).
LOGIN_CLIENT = "stack"
#: Client credentials with ``*:clock``: sets the simulation clock of every service.
CLOCK_CLIENT = "stack-clock"
#: Registers users (account holders' representatives) at run time.
ADMIN_CLIENT = "stack-admin"
ITL_ADMINISTRATOR = "itl-admin"
#: The same two persons of every body (four-eyes approval).
PERSONS = (1, 2)


def operator(registry: str, person: int = 1) -> str:
    """User name of a registry's operator, e.g. ``kz-operator-1``."""
    return f"{registry.lower()}-operator-{person}"


def authorised_body(registry: str, person: int = 1) -> str:
    """User name of a member of a registry's authorised body, e.g. ``kz-ab-1``."""
    return f"{registry.lower()}-ab-{person}"


def holder_representative(registry: str, account_id: int, person: int = 1) -> str:
    """User name of a representative of an account's holder: ``kz-holder-1001`` (the
    first), ``kz-holder-1001-2`` (the second, who approves what the first starts)."""
    suffix = "" if person == 1 else f"-{person}"
    return f"{registry.lower()}-holder-{account_id}{suffix}"


def _secret() -> str:
    return secrets.token_urlsafe(24)


def default_config(issuer: str, registries: Iterable[str],
                   audience: str = DEFAULT_AUDIENCE) -> IssuerConfig:
    """The issuer configuration of a stack of ``registries`` (national codes)."""
    users: dict[str, UserConfig] = {
        ITL_ADMINISTRATOR: UserConfig(password=_secret(), name="ITL administrator",
                                      roles=[f"{ITL_CODE}:administrator"])}
    for code in [*registries, CDM_CODE]:
        for person in PERSONS:
            users[operator(code, person)] = UserConfig(
                password=_secret(), name=f"{code} operator {person}",
                roles=[f"{code}:operator"])
            if code != CDM_CODE:
                users[authorised_body(code, person)] = UserConfig(
                    password=_secret(), name=f"{code} authorised body member {person}",
                    roles=[f"{code}:authorised-body"])
    clients = {
        LOGIN_CLIENT: ClientConfig(secret=_secret(), name="stack login",
                                   grant_types=["password"]),
        CLOCK_CLIENT: ClientConfig(secret=_secret(), name="stack clock",
                                   grant_types=["client_credentials"],
                                   roles=[f"{EVERY_SERVICE}:{CLOCK}"]),
        ADMIN_CLIENT: ClientConfig(secret=_secret(), name="stack admin", admin=True),
    }
    return IssuerConfig(issuer=issuer, audience=audience, clients=clients, users=users)


@dataclass(frozen=True)
class IssuerAccess:
    """Where a stack's issuer answers and what it knows: what ``StackClient`` needs to
    get tokens for the stack's identities."""

    url: str
    config: IssuerConfig

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def secret(self, client: str) -> str:
        return self.config.clients[client].secret
