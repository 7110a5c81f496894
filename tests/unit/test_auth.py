"""Claims of a bearer token read into the caller (shared.auth), the settings of token
verification, and a registry's actor built from them (services.registry.permissions):
each rule at its boundary values. Verification runs against a key set placed in the
verifier's cache, as a fetch would leave it; an unreachable issuer is 503."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import ValidationError

from services.registry.domain import Account
from services.registry.permissions import (
    Actor,
    Forbidden,
    Operation,
    Role,
    authorise,
    authorise_read,
    authorise_registry_read,
    parse_actor,
    readable_accounts,
)
from shared.auth import (
    AuthSettings,
    IssuerUnavailable,
    Principal,
    TokenVerifier,
    Unauthenticated,
    principal_from_claims,
)
from shared.codes import AccountType

ISSUER = "http://issuer.test"
ALICE = Account("KZ", AccountType.PERSON_HOLDING, 1001, "Alice Energy LLP", 2)
BOB = Account("KZ", AccountType.PERSON_HOLDING, 1002, "Bob Cement JSC", 2)
PARTY = Account("KZ", AccountType.PARTY_HOLDING, 1, "Kazakhstan", 2)


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "kz-operator-1", **extra}


# claims


def test_roles_and_accounts_are_read_from_their_claims() -> None:
    principal = principal_from_claims(claims(
        name="Operator One", roles=["KZ:operator", "KZ:holder", "ITL:administrator",
                                    "*:clock", "offline_access", "default-roles-kyoto"],
        accounts=["KZ:1001", "CH:1001", "CDM:1100", "KZ:9223372036854775807"]))
    assert principal.name == "Operator One"
    assert principal.roles == {("KZ", "operator"), ("KZ", "holder"), ("ITL", "administrator"),
                               ("*", "clock")}
    assert principal.accounts_at("KZ") == {1001, 2**63 - 1}
    assert principal.accounts_at("CH") == {1001}
    assert principal.roles_at("KZ") == {"operator", "holder", "clock"}
    assert principal.roles_at("JP") == {"clock"}
    assert principal.has_role("CDM", "clock") and principal.has_role("KZ", "operator")
    assert not principal.has_role("CH", "operator")
    assert not principal.has_role("CDM", "operator")


def test_absent_roles_accounts_and_name_are_empty_and_the_subject() -> None:
    principal = principal_from_claims(claims())
    assert (principal.name, principal.roles, principal.accounts) == (
        "kz-operator-1", frozenset(), frozenset())
    assert principal.describe() == "kz-operator-1 (roles none)"


@pytest.mark.parametrize(("bad", "reason"), [
    ({"sub": None}, "claim sub"),
    ({"sub": ""}, "claim sub"),
    ({"sub": "   "}, "claim sub"),
    ({"sub": "x" * 256}, "claim sub"),
    ({"sub": 7}, "claim sub"),
    ({"name": ["a"]}, "claim name"),
    ({"roles": "KZ:operator"}, "claim roles: must be a list of strings"),
    ({"roles": None}, "claim roles: must be a list of strings"),
    ({"roles": ["KZ:operator", 3]}, "claim roles: must be a list of strings"),
    ({"roles": ["kz:operator"]}, "'kz:operator' is not"),
    ({"roles": ["KZX:operator"]}, "is not"),
    ({"roles": ["KZ:Operator"]}, "is not"),
    ({"roles": ["KZ:operator:1"]}, "is not"),
    ({"roles": ["*:operator"]}, "only the clock role"),
    ({"roles": ["*:administrator"]}, "only the clock role"),
    ({"accounts": "KZ:1001"}, "claim accounts: must be a list of strings"),
    ({"accounts": ["KZ:0"]}, "'KZ:0'"),
    ({"accounts": ["KZ:01001"]}, "'KZ:01001'"),
    ({"accounts": ["KZ:-1"]}, "'KZ:-1'"),
    ({"accounts": ["KZ:1001 "]}, "'KZ:1001 '"),
    ({"accounts": ["ITL:1"]}, "'ITL:1'"),
    ({"accounts": ["*:1001"]}, "'*:1001'"),
    ({"accounts": ["KZ:9223372036854775808"]}, "from 1 to 9223372036854775807"),
    ({"accounts": ["KZ:99999999999999999999"]}, "'KZ:99999999999999999999'"),
])
def test_a_malformed_claim_is_refused_naming_it(bad: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason.replace("*", r"\*")) as refused:
        principal_from_claims(claims(**bad))
    assert refused.value.error == "invalid_token"


def test_settings_accept_asymmetric_algorithms_only() -> None:
    assert AuthSettings().auth_algorithms == ["RS256"]
    assert AuthSettings(auth_algorithms="RS256, ES256").auth_algorithms == ["RS256", "ES256"]
    assert AuthSettings(auth_algorithms='["PS256"]').auth_algorithms == ["PS256"]
    for bad in ("HS256", "none", "RS256,HS512", "", "[]"):
        with pytest.raises(ValidationError, match="AUTH_ALGORITHMS"):
            AuthSettings(auth_algorithms=bad)
    with pytest.raises(ValidationError):
        AuthSettings(auth_leeway_seconds=-1)
    assert AuthSettings(auth_leeway_seconds=0).auth_leeway_seconds == 0


def test_token_mode_needs_an_issuer_and_its_key_set() -> None:
    for settings in (AuthSettings(), AuthSettings(auth_issuer=ISSUER),
                     AuthSettings(auth_jwks_url=f"{ISSUER}/jwks.json")):
        with pytest.raises(ValueError, match="AUTH_ISSUER and AUTH_JWKS_URL"):
            TokenVerifier(settings)


# verification against a cached key set


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def verifier(key: rsa.RSAPrivateKey, url: str = "http://127.0.0.1:1/jwks.json"
             ) -> TokenVerifier:
    """A verifier whose key set (``kid`` "k1") is cached as a fetch would have left it;
    its URL answers nothing, so a fetch fails."""
    made = TokenVerifier(AuthSettings(auth_issuer=ISSUER, auth_jwks_url=url,
                                      auth_leeway_seconds=30))
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "use": "sig",
           "alg": "RS256"}
    assert made.jwks.jwk_set_cache is not None
    made.jwks.jwk_set_cache.put({"keys": [jwk]})
    return made


def token(key: rsa.RSAPrivateKey, kid: str = "k1", **extra: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "kyoto-registry-sim", "sub": "kz-ab-1", "iat": now,
            "exp": now + 60, "roles": ["KZ:authorised-body"], **extra}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


async def test_a_valid_token_gives_its_principal(key: rsa.RSAPrivateKey) -> None:
    principal = await verifier(key).verify(token(key))
    assert (principal.subject, principal.roles) == ("kz-ab-1",
                                                    frozenset({("KZ", "authorised-body")}))
    assert not principal.development


async def test_exp_is_checked_within_the_leeway_in_real_seconds(
    key: rsa.RSAPrivateKey,
) -> None:
    now = int(time.time())
    checker = verifier(key)
    await checker.verify(token(key, exp=now - 20))  # 20 s late, within 30 s
    for late in (40, 3600):
        with pytest.raises(Unauthenticated, match="has expired"):
            await checker.verify(token(key, exp=now - late))


async def test_an_unknown_key_id_is_fetched_and_an_unreachable_issuer_is_unavailable(
    key: rsa.RSAPrivateKey,
) -> None:
    with pytest.raises(IssuerUnavailable, match="could not be fetched"):
        await verifier(key).verify(token(key, kid="k2"))
    with pytest.raises(Unauthenticated, match="names no signing key"):
        await verifier(key).verify(jwt.encode({"sub": "x"}, key, algorithm="RS256"))


# a registry's actor


def test_a_principals_actor_at_a_registry_holds_its_roles_and_accounts_there() -> None:
    principal = Principal("rep", roles=frozenset({("KZ", "holder"), ("CH", "operator")}),
                          accounts=frozenset({("KZ", 1001), ("KZ", 1002), ("CH", 1003)}))
    at_kz = Actor.at(principal, "KZ")
    assert (at_kz.roles, at_kz.account_ids) == (frozenset({Role.ACCOUNT_HOLDER}),
                                                frozenset({1001, 1002}))
    assert str(at_kz) == "the holder of accounts 1001, 1002 (rep)"
    at_ch = Actor.at(principal, "CH")
    assert (at_ch.roles, at_ch.account_ids) == (frozenset({Role.OPERATOR}), frozenset())
    at_jp = Actor.at(principal, "JP")
    assert str(at_jp) == "rep, who has no role at this registry"
    # accounts without the holder role give nothing
    bare = Actor.at(Principal("x", accounts=frozenset({("KZ", 1001)})), "KZ")
    assert bare.account_ids == frozenset() and not bare.acts_for(1001)


def test_a_representative_of_several_accounts_instructs_each_and_no_other() -> None:
    rep = Actor("rep", frozenset({Role.ACCOUNT_HOLDER}), frozenset({1001, 1002}))
    assert authorise(rep, Operation.INTERNAL_TRANSFER, ALICE) == "holder:1001 rep"
    assert authorise(rep, Operation.EXTERNAL_TRANSFER, BOB) == "holder:1002 rep"
    other = Account("KZ", AccountType.PERSON_HOLDING, 1003, "Carol", 2)
    with pytest.raises(Forbidden, match=r"holder of account 1003, not by the holder of "
                                        r"accounts 1001, 1002 \(rep\)"):
        authorise(rep, Operation.INTERNAL_TRANSFER, other)
    with pytest.raises(Forbidden, match="government account"):
        authorise(rep, Operation.INTERNAL_TRANSFER, PARTY)


def test_who_did_it_is_recorded_with_the_role_it_was_done_in() -> None:
    both = Actor("kz-1", frozenset({Role.OPERATOR, Role.ACCOUNT_HOLDER}), frozenset({1001}))
    assert authorise(both, Operation.OPEN_ACCOUNT) == "operator kz-1"
    assert authorise(both, Operation.INTERNAL_TRANSFER, ALICE) == "holder:1001 kz-1"
    assert authorise(both, Operation.APPEAL_DECISION, ALICE) == "operator kz-1"
    body = Actor.of(Role.AUTHORISED_BODY, subject="kz-ab-2")
    assert authorise(body, Operation.RECORD_DECISION) == "authorised-body kz-ab-2"


def test_reads_the_operator_and_the_body_everything_a_holder_its_own() -> None:
    for everyone in (Actor.of(Role.OPERATOR), Actor.of(Role.AUTHORISED_BODY),
                     Actor(anonymous=True)):
        assert readable_accounts(everyone) is None
        authorise_read(everyone, [1002], "account 1002")
        authorise_registry_read(everyone, "notices")
    rep = Actor("rep", frozenset({Role.ACCOUNT_HOLDER}), frozenset({1001, 1002}))
    assert readable_accounts(rep) == frozenset({1001, 1002})
    authorise_read(rep, [1002], "account 1002")
    authorise_read(rep, [1, 1001], "transaction KZ1")  # one side is enough
    with pytest.raises(Forbidden, match="account 1003 is read by"):
        authorise_read(rep, [1003], "account 1003")
    with pytest.raises(Forbidden, match="transaction KZ2 is read by"):
        authorise_read(rep, [], "transaction KZ2")
    with pytest.raises(Forbidden, match="read by the operator or the authorised body"):
        authorise_registry_read(rep, "notices")
    with pytest.raises(Forbidden, match="who has no role at this registry"):
        readable_accounts(Actor("ch-operator-1"))


@pytest.mark.parametrize(("header", "role", "account", "subject"), [
    ("operator", Role.OPERATOR, None, "unauthenticated"),
    (" Operator@alice ", Role.OPERATOR, None, "alice"),
    ("authorised-body@bob", Role.AUTHORISED_BODY, None, "bob"),
    ("holder:1", Role.ACCOUNT_HOLDER, 1, "unauthenticated"),
    ("holder:9223372036854775807@x", Role.ACCOUNT_HOLDER, 2**63 - 1, "x"),
])
def test_development_mode_x_actor_header(header: str, role: Role, account: int | None,
                                         subject: str) -> None:
    assert parse_actor(header) == Actor.of(role, account, subject)


@pytest.mark.parametrize("header", [None, "", " ", "holder:", "holder:0", "holder:abc",
                                    "holder:9223372036854775808", "holder:-1", "minister",
                                    "@alice"])
def test_development_mode_x_actor_header_refused(header: str | None) -> None:
    with pytest.raises(Forbidden):
        parse_actor(header)
