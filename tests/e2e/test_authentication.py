"""Authenticated API callers through the real processes and the built-in issuer
(docs/adr/0015): no token 401 on every endpoint but /health, /metrics, the OpenAPI pages
and the ITL's AsyncAPI pages (docs/adr/0037);
expired, wrongly addressed, wrongly signed tokens and malformed claims 401 with the
reason; the wrong role 403 with the reason; a holder's representative acts for and
reads its own accounts only; the ITL's changes and every clock need their roles; an
issuer's new key is fetched when a token names it; the issuer answers as RFC 6749 says;
development mode is off.

Tokens with chosen claims are signed here with the issuer's own key (read from its work
directory), or with a key the issuer never published."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.local.client import StackClient
from deploy.local.identities import ADMIN_CLIENT, CLOCK_CLIENT, LOGIN_CLIENT
from deploy.local.stack import LocalStack
from shared.auth import DEFAULT_AUDIENCE

pytestmark = pytest.mark.e2e

CLOCK_START = "2013-03-01T00:00:00+00:00"
PARTY = 1
LEEWAY = 30  # AUTH_LEEWAY_SECONDS, real seconds (the default)
SERVICES = ("itl", "kz", "ch", "jp", "cdm")
DROP = object()


def issuer_key(stack: LocalStack) -> tuple[str, rsa.RSAPrivateKey]:
    """The issuer's active signing key, from its work directory."""
    keys = stack.workdir / "issuer" / "keys"
    kid = (keys / "active").read_text().strip()
    key = serialization.load_pem_private_key((keys / f"{kid}.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return kid, key


def forge(stack: LocalStack, key: rsa.RSAPrivateKey | None = None, kid: str | None = None,
          algorithm: str = "RS256", **claims: Any) -> str:
    """A token with ``claims`` over the defaults (the issuer, the audience, an operator of
    KZ, valid for 5 minutes), signed with the issuer's key unless ``key`` is given; a
    claim given as ``DROP`` is left out."""
    assert stack.issuer is not None
    active_kid, active_key = issuer_key(stack)
    now = int(time.time())
    body = {"iss": stack.issuer.url, "aud": DEFAULT_AUDIENCE, "sub": "forged-1",
            "name": "Forged", "iat": now, "exp": now + 300, "roles": ["KZ:operator"],
            **claims}
    body = {k: v for k, v in body.items() if v is not DROP}
    return jwt.encode(body, key or active_key, algorithm=algorithm,
                      headers={"kid": kid or active_kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw(stack: LocalStack, service: str, method: str, path: str, **kwargs: Any
        ) -> httpx.Response:
    """A request with only the headers given: no token unless one is passed."""
    return httpx.request(method, f"{stack.url(service)}{path}", timeout=10, **kwargs)


@pytest.fixture(scope="module")
def accounts(client: StackClient) -> dict[str, int]:
    """KZ's period-2 AAUs issued; accounts A and B hold 100 each, C none."""
    client.set_assigned_amount("KZ", 2, 100_000)
    issued = client.issue("kz", "AAU", 100_000, "MEP-AUTH")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    opened = {name: client.open_account("kz", f"Holder {name}")["account_id"]
              for name in ("a", "b", "c")}
    for name in ("a", "b"):
        moved = client.transfer("kz", PARTY, opened[name], "AAU", 100)
        assert moved.status_code == 202, moved.text
        assert client.settle("kz", moved.json()["transaction_id"])["status"] == 4
    return opened


# no token, or a token that is not valid

#: What any caller may read: liveness, the process's counters, the API's description.
OPEN_PAGES = ("/health", "/metrics", "/openapi.json", "/docs")
#: ... and at the ITL, the wire as AsyncAPI: the document and its page (docs/adr/0037).
ITL_OPEN_PAGES = ("/asyncapi.json", "/asyncapi")


def open_pages(service: str) -> tuple[str, ...]:
    return OPEN_PAGES + (ITL_OPEN_PAGES if service == "itl" else ())


def test_every_endpoint_but_health_metrics_and_the_openapi_pages_needs_a_token(
    stack: LocalStack,
) -> None:
    for service in SERVICES:
        for page in open_pages(service):
            assert raw(stack, service, "GET", page).status_code == 200, (service, page)
        operations = raw(stack, service, "GET", "/openapi.json").json()["paths"]
        assert len(operations) > 5
        assert ("/asyncapi.json" in operations) == (service == "itl"), service
        for path, methods in operations.items():
            if path in open_pages(service):
                continue
            concrete = path
            for name in ("account_id", "transaction_id", "decision_id", "notice_id",
                         "code", "cp", "period", "kind", "operation", "project_id",
                         "request_id", "transfer_id", "year", "username", "approval_id",
                         "reconciliation_id"):
                concrete = concrete.replace("{" + name + "}", "1")
            assert "{" not in concrete, path
            for method in methods:
                response = raw(stack, service, method.upper(), concrete, json={})
                assert response.status_code == 401, (service, method, path, response.text)
                assert response.headers["WWW-Authenticate"].startswith(
                    f'Bearer realm="{DEFAULT_AUDIENCE}"'), (service, path)
                assert "bearer token is required" in response.json()["detail"]


def test_expired_wrongly_addressed_or_wrongly_signed_tokens_get_401_with_the_reason(
    stack: LocalStack, client: StackClient
) -> None:
    assert stack.issuer is not None
    now = int(time.time())
    kid, _ = issuer_key(stack)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        (forge(stack, exp=now - LEEWAY - 30), "has expired"),
        (forge(stack, exp=now - LEEWAY - 2), "has expired"),
        (forge(stack, exp=DROP), 'missing the "exp" claim'),
        (forge(stack, iat=now + LEEWAY + 30), "not valid"),
        (forge(stack, aud="another-network"), "not for audience"),
        (forge(stack, aud=["another-network"]), "not for audience"),
        (forge(stack, aud=DROP), 'missing the "aud" claim'),
        (forge(stack, iss=stack.issuer.url + "/"), "not from issuer"),
        (forge(stack, iss="http://127.0.0.1:1"), "not from issuer"),
        (forge(stack, key=stranger, kid=kid), "Signature verification failed"),
        (forge(stack, key=stranger, kid="never-published"), "does not publish"),
        (jwt.encode({"sub": "x"}, "secret-of-32-bytes-at-least-0123", algorithm="HS256",
                    headers={"kid": kid}), "not valid"),
        (forge(stack, sub=DROP), 'missing the "sub" claim'),
        ("not-a-jwt", "not a JWT"),
    ]
    for token, reason in refused:
        response = raw(stack, "kz", "GET", "/accounts", headers=bearer(token))
        assert response.status_code == 401, (reason, response.text)
        assert reason in response.json()["detail"], response.text
        challenge = response.headers["WWW-Authenticate"]
        assert 'error="invalid_token"' in challenge and "error_description=" in challenge
    # within the leeway and at the audience among others: accepted
    for token in (forge(stack, exp=now - LEEWAY + 20), forge(stack, iat=now + LEEWAY - 20),
                  forge(stack, aud=["another-network", DEFAULT_AUDIENCE])):
        assert raw(stack, "kz", "GET", "/accounts", headers=bearer(token)).status_code == 200
    basic = raw(stack, "kz", "GET", "/accounts", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and "Bearer <token>" in basic.json()["detail"]


@pytest.mark.parametrize(("claims", "reason"), [
    ({"roles": "KZ:operator"}, "claim roles: must be a list of strings"),
    ({"roles": [1]}, "claim roles: must be a list of strings"),
    ({"roles": ["kz:operator"]}, "is not '<SERVICE CODE>:<role>'"),
    ({"roles": ["KZ:"]}, "is not '<SERVICE CODE>:<role>'"),
    ({"roles": ["*:operator"]}, "only the clock role is given for every service"),
    ({"accounts": ["KZ:abc"]}, "claim accounts: 'KZ:abc'"),
    ({"accounts": ["KZ:0"]}, "claim accounts: 'KZ:0'"),
    ({"accounts": ["KZ:9223372036854775808"]}, "with an id from 1 to 9223372036854775807"),
    ({"accounts": {"KZ": 1}}, "claim accounts: must be a list of strings"),
    ({"sub": ""}, "claim sub"),
    ({"name": 7}, "claim name: must be a string"),
])
def test_malformed_claims_get_401_naming_the_claim(
    stack: LocalStack, claims: dict[str, Any], reason: str
) -> None:
    response = raw(stack, "kz", "GET", "/accounts", headers=bearer(forge(stack, **claims)))
    assert response.status_code == 401, response.text
    assert reason in response.json()["detail"]


def test_claims_at_their_bounds_are_read(stack: LocalStack, accounts: dict[str, int]
                                         ) -> None:
    largest = 2**63 - 1
    token = forge(stack, roles=["KZ:holder", "offline_access", "default-roles-kyoto"],
                  accounts=[f"KZ:{largest}", f"KZ:{accounts['a']}", "CH:1"])
    listed = raw(stack, "kz", "GET", "/accounts", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert [a["account_id"] for a in listed.json()] == [accounts["a"]]  # its own only


# the wrong caller: 403 with the reason


def test_the_wrong_role_gets_403_with_the_reason(
    stack: LocalStack, client: StackClient, accounts: dict[str, int]
) -> None:
    cases = [
        ("kz", "POST", "/accounts", {"holder_name": "X"}, client.as_authorised_body("kz"),
         "open an account is started by the operator, not by the authorised body (kz-ab-1)"),
        ("kz", "POST", "/decisions", {"kind": "issuance", "reference": "R",
                                      "unit_type": "AAU", "quantity": 1},
         client.as_operator("kz", 2),
         "record a decision is started by the authorised body, not by the operator "
         "(kz-operator-2)"),
        ("kz", "POST", "/accounts", {"holder_name": "X"}, client.as_operator("ch"),
         "not by ch-operator-1, who has no role at this registry"),
        ("kz", "GET", "/notices", None, client.as_holder("kz", accounts["a"]),
         "read by the operator or the authorised body"),
        ("kz", "GET", "/share-of-proceeds", None, client.as_holder("kz", accounts["a"]),
         "read by the operator or the authorised body"),
        ("itl", "PUT", "/parties/KZ/periods/2", {"assigned_amount": 1},
         client.as_operator("kz"), "changing the ITL's records needs the role "
                                   "ITL:administrator, which kz-operator-1"),
        ("itl", "GET", "/transactions", None, client.as_authorised_body("kz"),
         "reading the ITL's records needs the role ITL:administrator or <CODE>:operator"),
        ("itl", "GET", "/parties", None, client.as_holder("kz", accounts["a"]),
         "reading the ITL's records needs the role"),
        ("cdm", "POST", "/projects", {"project_id": "P-1", "title": "t", "host_party": "IN"},
         client.as_operator("kz"), "needs the role CDM:operator, which kz-operator-1"),
    ]
    for service, method, path, body, headers, reason in cases:
        response = client.call(service, method, path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert reason in response.json()["detail"], response.text


def test_the_itl_reads_for_its_administrator_and_every_registrys_operator(
    client: StackClient
) -> None:
    for headers in (client.headers_for("itl-admin"), client.as_operator("kz"),
                    client.as_operator("cdm", 2)):
        assert client.call("itl", "GET", "/parties", headers=headers).status_code == 200
    forbidden = client.call("itl", "GET", "/parties", headers=client.headers_for(CLOCK_CLIENT))
    assert forbidden.status_code == 403


def test_a_partys_assigned_amount_is_set_by_the_itl_administrator_only(
    stack: LocalStack, client: StackClient
) -> None:
    path = "/parties/JP/periods/1"
    body = {"assigned_amount": 5_000}
    for roles in (["JP:operator"], ["JP:authorised-body"], ["ITL:clock"], ["*:clock"],
                  ["ITL:auditor"], ["CDM:operator"], []):
        response = raw(stack, "itl", "PUT", path, json=body,
                       headers=bearer(forge(stack, roles=roles)))
        assert response.status_code == 403, (roles, response.text)
        assert "needs the role ITL:administrator" in response.json()["detail"]
    assert client.call("itl", "GET", path).status_code == 404  # nothing recorded
    done = raw(stack, "itl", "PUT", path, json=body,
               headers=bearer(forge(stack, roles=["ITL:administrator"])))
    assert done.status_code == 200, done.text
    assert client.ok("itl", "GET", path)["assigned_amount"] == 5_000


def test_every_clock_is_set_with_its_own_or_the_every_service_clock_role(
    stack: LocalStack, client: StackClient
) -> None:
    setting = {"advance_seconds": 0, "broadcast": False}
    for service, code in (("itl", "ITL"), ("kz", "KZ"), ("ch", "CH"), ("jp", "JP"),
                          ("cdm", "CDM")):
        for roles in ([f"{code}:operator"], [f"{code}:administrator"],
                      [f"{'CH' if code != 'CH' else 'KZ'}:clock"], []):
            refused = raw(stack, service, "PUT", "/admin/clock", json=setting,
                          headers=bearer(forge(stack, roles=roles)))
            assert refused.status_code == 403, (service, roles, refused.text)
            assert f"setting the simulation clock needs the role {code}:clock" in \
                refused.json()["detail"]
        for roles in ([f"{code}:clock"], ["*:clock"]):
            done = raw(stack, service, "PUT", "/admin/clock", json=setting,
                       headers=bearer(forge(stack, roles=roles)))
            assert done.status_code == 200, (service, roles, done.text)
        # any authenticated caller reads the clock
        reading = raw(stack, service, "GET", "/admin/clock",
                      headers=bearer(forge(stack, roles=[])))
        assert reading.status_code == 200
    # the stack's clock client holds *:clock
    assert client.call("jp", "PUT", "/admin/clock", json=setting,
                       headers=client.headers_for(CLOCK_CLIENT)).status_code == 200


# account holders' representatives


def test_a_holder_cannot_transfer_from_or_read_another_holders_account(
    client: StackClient, accounts: dict[str, int]
) -> None:
    a, b, c = accounts["a"], accounts["b"], accounts["c"]
    as_a = client.as_holder("kz", a)

    def internal(source: int, target: int, headers: dict[str, str]) -> httpx.Response:
        return client.call("kz", "POST", "/transactions/internal-transfer", headers=headers,
                           json={"transferring_account_id": source,
                                 "acquiring_account_id": target, "unit_type": "AAU",
                                 "quantity": 5})

    before = client.registry_totals("kz")
    from_b = internal(b, a, as_a)
    assert from_b.status_code == 403
    assert f"started by the holder of account {b}, not by the holder of account {a} " \
           f"(kz-holder-{a})" in from_b.json()["detail"]
    external = client.call("kz", "POST", "/transactions/external-transfer", headers=as_a,
                           json={"transferring_account_id": b, "acquiring_registry": "CH",
                                 "acquiring_account_id": 1001, "unit_type": "AAU",
                                 "quantity": 5})
    assert external.status_code == 403
    assert client.registry_totals("kz") == before
    for path in (f"/accounts/{b}", f"/accounts/{b}/holdings"):
        response = client.call("kz", "GET", path, headers=as_a)
        assert response.status_code == 403, path
        assert f"not by the holder of account {a}" in response.json()["detail"]

    own = internal(a, c, as_a)
    assert own.status_code == 202, own.text
    moved = client.settle("kz", own.json()["transaction_id"])
    assert moved["status_name"] == "COMPLETED"
    # reads: A sees its account, its holdings and the transactions touching it
    assert [x["account_id"] for x in client.ok("kz", "GET", "/accounts", headers=as_a)] == [a]
    assert client.ok("kz", "GET", f"/accounts/{a}/holdings", headers=as_a)["available"] == 95
    assert {r["account_id"] for r in client.ok("kz", "GET", "/holdings", headers=as_a)} == {a}
    seen = client.ok("kz", "GET", "/transactions", headers=as_a)
    assert seen and all(a in (t["transferring"]["account_id"], t["acquiring"]["account_id"])
                        for t in seen)
    assert moved["transaction_id"] in {t["transaction_id"] for t in seen}
    as_b = client.as_holder("kz", b)
    assert moved["transaction_id"] not in {
        t["transaction_id"] for t in client.ok("kz", "GET", "/transactions", headers=as_b)}
    not_b = client.call("kz", "GET", f"/transactions/{moved['transaction_id']}", headers=as_b)
    assert not_b.status_code == 403
    # the operator and the authorised body read everything
    for headers in (client.as_operator("kz", 2), client.as_authorised_body("kz", 2)):
        listed = {x["account_id"] for x in client.ok("kz", "GET", "/accounts",
                                                     headers=headers)}
        assert {a, b, c, PARTY} <= listed
        assert client.call("kz", "GET", f"/transactions/{moved['transaction_id']}",
                           headers=headers).status_code == 200


def test_one_representative_acts_for_several_accounts_of_this_registry_only(
    client: StackClient, accounts: dict[str, int]
) -> None:
    a, b, c = accounts["a"], accounts["b"], accounts["c"]
    client.register_user("kz-rep-ab", ["KZ:holder"], [f"KZ:{a}", f"KZ:{b}", f"CH:{c}"])
    both = client.headers_for("kz-rep-ab")

    def internal(headers: dict[str, str], source: int, target: int) -> httpx.Response:
        return client.call("kz", "POST", "/transactions/internal-transfer", headers=headers,
                           json={"transferring_account_id": source,
                                 "acquiring_account_id": target, "unit_type": "AAU",
                                 "quantity": 1})

    for source, target in ((a, c), (b, c)):
        moved = internal(both, source, target)
        assert moved.status_code == 202, moved.text
        client.settle("kz", moved.json()["transaction_id"])
    # CH:<c> names an account of another registry: it does not count at KZ
    refused = internal(both, c, a)
    assert refused.status_code == 403
    assert f"not by the holder of accounts {a}, {b} (kz-rep-ab)" in refused.json()["detail"]
    assert {x["account_id"] for x in client.ok("kz", "GET", "/accounts", headers=both)} == {
        a, b}
    # accounts without the holder role are not a holder's
    client.register_user("kz-accounts-only", [], [f"KZ:{a}"])
    bare = internal(client.headers_for("kz-accounts-only"), a, c)
    assert bare.status_code == 403
    assert "kz-accounts-only, who has no role at this registry" in bare.json()["detail"]
    assert client.call("kz", "GET", f"/accounts/{a}",
                       headers=client.headers_for("kz-accounts-only")).status_code == 403


def test_a_holder_reads_the_decisions_about_its_accounts_only(
    client: StackClient, accounts: dict[str, int]
) -> None:
    a, b = accounts["a"], accounts["b"]
    on_a = client.decide("kz", "withdrawal", "AAU", 1, "MEP-AUTH-A", ground="voluntary",
                         account_id=a)
    on_b = client.decide("kz", "withdrawal", "AAU", 1, "MEP-AUTH-B", ground="voluntary",
                         account_id=b)
    as_a = client.as_holder("kz", a)
    listed = [d["decision_id"] for d in client.ok("kz", "GET", "/decisions", headers=as_a)]
    assert on_a["decision_id"] in listed and on_b["decision_id"] not in listed
    assert all(d["account_id"] == a for d in client.ok("kz", "GET", "/decisions",
                                                        headers=as_a))
    assert client.call("kz", "GET", f"/decisions/{on_b['decision_id']}",
                       headers=as_a).status_code == 403
    for decision in (on_a, on_b):
        dropped = client.call("kz", "POST", f"/decisions/{decision['decision_id']}/revise",
                              json={"drop": True}, headers=client.as_authorised_body("kz"))
        assert dropped.status_code == 200, dropped.text


# keys, the issuer, the OpenAPI description, development mode


def test_a_token_signed_with_the_issuers_new_key_is_accepted_after_a_rotation(
    stack: LocalStack, client: StackClient
) -> None:
    assert stack.issuer is not None
    old = client.as_operator("kz")  # signed with the current key, which KZ has cached
    assert client.call("kz", "GET", "/accounts", headers=old).status_code == 200
    rotated = httpx.post(f"{stack.issuer.url}/admin/keys/rotate", timeout=10,
                         auth=(ADMIN_CLIENT, stack.issuer.secret(ADMIN_CLIENT)))
    assert rotated.status_code == 200, rotated.text
    fresh = httpx.post(stack.issuer.token_url, timeout=10,
                       data={"grant_type": "password", "username": "kz-operator-2",
                             "password": stack.issuer.config.users["kz-operator-2"].password},
                       auth=(LOGIN_CLIENT, stack.issuer.secret(LOGIN_CLIENT))).json()
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == rotated.json()["kid"]
    for service in ("kz", "itl"):
        response = client.call(service, "GET", "/admin/clock",
                               headers=bearer(fresh["access_token"]))
        assert response.status_code == 200, response.text
    assert client.call("kz", "GET", "/accounts", headers=old).status_code == 200
    published = httpx.get(stack.issuer.jwks_url, timeout=10).json()["keys"]
    assert rotated.json()["kid"] in {k["kid"] for k in published} and len(published) == 2


def test_the_issuer_answers_token_requests_as_rfc_6749_says(stack: LocalStack) -> None:
    assert stack.issuer is not None
    issuer = stack.issuer
    login = (LOGIN_CLIENT, issuer.secret(LOGIN_CLIENT))
    password = issuer.config.users["kz-ab-2"].password

    def token(data: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(issuer.token_url, data=data, timeout=10, **kwargs)

    good = token({"grant_type": "password", "username": "kz-ab-2", "password": password},
                 auth=login)
    assert good.status_code == 200, good.text
    assert good.headers["Cache-Control"] == "no-store"
    assert (good.json()["token_type"], good.json()["expires_in"]) == ("Bearer", 3600)
    claims = jwt.decode(good.json()["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["roles"], claims["aud"], claims["iss"]) == (
        "kz-ab-2", ["KZ:authorised-body"], DEFAULT_AUDIENCE, issuer.url)
    assert claims["exp"] - claims["iat"] == 3600
    clock = token({"grant_type": "client_credentials"},
                  auth=(CLOCK_CLIENT, issuer.secret(CLOCK_CLIENT)))
    assert jwt.decode(clock.json()["access_token"],
                      options={"verify_signature": False})["roles"] == ["*:clock"]
    posted = token({"grant_type": "client_credentials", "client_id": CLOCK_CLIENT,
                    "client_secret": issuer.secret(CLOCK_CLIENT)})
    assert posted.status_code == 200
    wrong_secret = token({"grant_type": "client_credentials"}, auth=(CLOCK_CLIENT, "x" * 20))
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic")
    errors = [
        (token({"grant_type": "password", "username": "kz-ab-2", "password": "wrong-one"},
               auth=login), 400, "invalid_grant"),
        (token({"grant_type": "password", "username": "nobody", "password": password},
               auth=login), 400, "invalid_grant"),
        (token({"grant_type": "password", "username": "kz-ab-2"}, auth=login), 400,
         "invalid_request"),
        (token({"grant_type": "authorization_code", "code": "x"}, auth=login), 400,
         "unsupported_grant_type"),
        (token({"grant_type": "client_credentials"}, auth=login), 400, "unauthorized_client"),
        (token({}, auth=login), 400, "invalid_request"),
        (token({"grant_type": "client_credentials"}), 401, "invalid_client"),
        (httpx.post(issuer.token_url, content="grant_type=password&grant_type=password",
                    auth=login, timeout=10,
                    headers={"Content-Type": "application/x-www-form-urlencoded"}), 400,
         "invalid_request"),
        (httpx.post(issuer.token_url, json={"grant_type": "client_credentials"},
                    auth=login, timeout=10), 400, "invalid_request"),
        (token({"grant_type": "client_credentials", "client_id": CLOCK_CLIENT,
                "client_secret": issuer.secret(CLOCK_CLIENT)},
               auth=(CLOCK_CLIENT, issuer.secret(CLOCK_CLIENT))), 400, "invalid_request"),
    ]
    for response, status, error in errors:
        assert response.status_code == status, response.text
        assert response.json()["error"] == error and response.json()["error_description"]
        assert response.headers["Cache-Control"] == "no-store"
    discovery = httpx.get(f"{issuer.url}/.well-known/openid-configuration", timeout=10).json()
    assert (discovery["issuer"], discovery["token_endpoint"], discovery["jwks_uri"]) == (
        issuer.url, issuer.token_url, issuer.jwks_url)


def test_the_issuers_admin_endpoint_needs_an_admin_client_and_well_formed_claims(
    stack: LocalStack,
) -> None:
    assert stack.issuer is not None
    url = f"{stack.issuer.url}/admin/users/kz-holder-test"
    body = {"password": "long-enough-1", "roles": ["KZ:holder"], "accounts": ["KZ:1001"]}
    admin = (ADMIN_CLIENT, stack.issuer.secret(ADMIN_CLIENT))
    assert httpx.put(url, json=body, timeout=10).status_code == 401
    not_admin = httpx.put(url, json=body, timeout=10,
                          auth=(CLOCK_CLIENT, stack.issuer.secret(CLOCK_CLIENT)))
    assert (not_admin.status_code, not_admin.json()["error"]) == (403, "unauthorized_client")
    for bad, field in (({"roles": ["KZ-holder"]}, "roles"), ({"accounts": ["KZ:x"]},
                                                            "accounts"),
                       ({"password": "short"}, "password")):
        response = httpx.put(url, json={**body, **bad}, timeout=10, auth=admin)
        assert response.status_code == 422, response.text
        assert field in json.dumps(response.json()["detail"])
    created = httpx.put(url, json=body, timeout=10, auth=admin)
    assert (created.status_code, created.json()["created"]) == (201, True)
    updated = httpx.put(url, json={**body, "accounts": ["KZ:1001", "KZ:1002"]}, timeout=10,
                        auth=admin)
    assert (updated.status_code, updated.json()["accounts"]) == (200, ["KZ:1001", "KZ:1002"])


def test_the_openapi_description_of_each_service_declares_the_security_scheme(
    stack: LocalStack,
) -> None:
    assert stack.issuer is not None
    for service in SERVICES:
        document = raw(stack, service, "GET", "/openapi.json").json()
        schemes = document["components"]["securitySchemes"]
        assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                     "description": schemes["bearer"]["description"]}
        flows = schemes["oauth2"]["flows"]
        assert flows["clientCredentials"]["tokenUrl"] == stack.issuer.token_url
        assert flows["password"]["tokenUrl"] == stack.issuer.token_url
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                expected: list[dict[str, list[str]]] = (
                    [] if path in open_pages(service) else [{"bearer": []}, {"oauth2": []}])
                assert operation.get("security", []) == expected, (service, method, path)


def test_development_mode_is_off_by_default(stack: LocalStack) -> None:
    for service, path in (("kz", "/accounts"), ("itl", "/parties"), ("cdm", "/projects")):
        response = raw(stack, service, "GET", path, headers={"X-Actor": "operator"})
        assert response.status_code == 401, (service, response.text)
    for name in SERVICES:
        log = (stack.log_dir / f"{name}.log").read_text()
        assert "auth_token_mode" in log and "auth_development_mode" not in log


def test_the_issuers_secrets_are_readable_by_its_owner_only(
    stack: LocalStack, client: StackClient
) -> None:
    client.register_user("kz-holder-mode", ["KZ:holder"], ["KZ:1001"])
    issuer = stack.workdir / "issuer"
    for path in (issuer / "config.json", issuer / "users.json",
                 *sorted((issuer / "keys").glob("*.pem"))):
        assert path.stat().st_mode & 0o077 == 0, path
