"""The ``Idempotency-Key`` of the requests that propose a transaction (shared/idempotency.py):
a retry with the same key and request answers the first answer and proposes nothing
again, also when the requests race; another request under the key is 422 naming the
header; keys are the caller's own; a refused request is not remembered."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from deploy.local.client import StackClient, is_pending
from deploy.local.stack import LocalStack

pytestmark = pytest.mark.e2e

PARTY = 1
HEADER = "Idempotency-Key"
ISSUED = 10_000


@pytest.fixture(scope="module")
def accounts(client: StackClient) -> dict[str, int]:
    """KZ's Party holding account with AAUs, a person account in KZ and one in CH, a CDM
    project."""
    client.set_assigned_amount("KZ", 2, 100_000, reviewed_inventory=100)
    issued = client.issue("kz", "AAU", ISSUED, "MEP-IDEM-1")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    client.ok("cdm", "POST", "/projects",
              json={"project_id": "CDM-IDEM-1", "title": "Idempotent wind",
                    "host_party": "KZ"})
    return {"alice": client.open_account("kz", "Alice")["account_id"],
            "bob": client.open_account("kz", "Bob")["account_id"],
            "zora": client.open_account("ch", "Zora AG")["account_id"]}


def internal(target: int, quantity: int) -> dict[str, Any]:
    return {"transferring_account_id": PARTY, "acquiring_account_id": target,
            "unit_type": "AAU", "quantity": quantity}


def post(client: StackClient, path: str, body: dict[str, Any], key: str | None,
         service: str = "kz", headers: dict[str, str] | None = None) -> httpx.Response:
    extra = {**(headers or {}), **({HEADER: key} if key is not None else {})}
    return client.call(service, "POST", path, json=body, headers=extra)


def outgoing(client: StackClient, registry: str = "kz") -> list[str]:
    return [t["transaction_id"] for t in client.ok(registry, "GET", "/transactions",
                                                   params={"limit": 1000})]


def test_the_same_key_and_request_answer_the_first_answer_and_propose_once(
    client: StackClient, accounts: dict[str, int],
) -> None:
    key = str(uuid.uuid4())
    before = outgoing(client)
    first = post(client, "/transactions/internal-transfer", internal(accounts["alice"], 7), key)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    client.settle("kz", first.json()["transaction_id"])
    # the same request again, the unit type by its number: the same validated request
    again = post(client, "/transactions/internal-transfer",
                 {**internal(accounts["alice"], 7), "unit_type": 1}, key)
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # the first answer, status 1 as it was sent
    assert again.json()["status"] == 1
    assert set(outgoing(client)) - set(before) == {first.json()["transaction_id"]}
    assert client.units_held("kz", accounts["alice"], "AAU") == 7


def test_the_same_key_with_another_request_is_refused_naming_the_header(
    client: StackClient, accounts: dict[str, int],
) -> None:
    key = str(uuid.uuid4())
    first = post(client, "/transactions/internal-transfer", internal(accounts["bob"], 3), key)
    assert first.status_code == 202, first.text
    client.settle("kz", first.json()["transaction_id"])
    before = outgoing(client)
    for path, body in (("/transactions/internal-transfer", internal(accounts["bob"], 4)),
                       ("/transactions/internal-transfer", internal(accounts["alice"], 3)),
                       ("/transactions/retirement", {"decision_id": "D1"})):
        refused = post(client, path, body, key)
        assert refused.status_code == 422, refused.text
        assert HEADER in refused.json()["detail"]
        assert "another request" in refused.json()["detail"]
    assert outgoing(client) == before
    assert client.units_held("kz", accounts["bob"], "AAU") == 3


def test_concurrent_requests_with_one_key_make_one_transaction(
    client: StackClient, accounts: dict[str, int],
) -> None:
    key = str(uuid.uuid4())
    held = client.units_held("kz", accounts["bob"], "AAU")
    before = outgoing(client)
    client.as_operator("kz")  # the token fetched once, before the race

    def attempt(_: int) -> httpx.Response:
        return post(client, "/transactions/internal-transfer", internal(accounts["bob"], 11),
                    key)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(attempt, range(6)))
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    ids = {a.json()["transaction_id"] for a in answers}
    assert len(ids) == 1
    assert sum(1 for a in answers if "Idempotent-Replayed" not in a.headers) == 1
    (transaction_id,) = ids
    client.settle("kz", transaction_id)
    assert set(outgoing(client)) - set(before) == {transaction_id}
    assert client.units_held("kz", accounts["bob"], "AAU") == held + 11


def test_an_operation_awaiting_approval_is_kept_pending_once(
    client: StackClient, accounts: dict[str, int],
) -> None:
    key = str(uuid.uuid4())
    body = {**internal(accounts["zora"], 5), "acquiring_registry": "CH"}
    first = post(client, "/transactions/external-transfer", body, key)
    assert is_pending(first), first.text
    again = post(client, "/transactions/external-transfer", body, key)
    assert again.json() == first.json()
    approval_id = first.json()["approval_id"]
    pending = client.ok("kz", "GET", "/approvals", params={"status": "pending"})
    assert [a["approval_id"] for a in pending].count(approval_id) == 1
    assert not [a for a in pending if a["approval_id"] != approval_id
                and a["request"] == first.json()["request"]]
    approved = client.approve("kz", approval_id)
    assert approved.status_code == 202, approved.text
    # a retried approval is refused (409) and the approval names its transaction
    retried = client.approve("kz", approval_id)
    assert retried.status_code == 409
    assert client.ok("kz", "GET", f"/approvals/{approval_id}")["transaction_id"] == \
        approved.json()["transaction_id"]
    assert client.settle("kz", approved.json()["transaction_id"])["status_name"] == "COMPLETED"


def test_keys_are_the_callers_own(client: StackClient, accounts: dict[str, int]) -> None:
    key = str(uuid.uuid4())
    first = post(client, "/transactions/internal-transfer", internal(accounts["alice"], 2), key)
    other = post(client, "/transactions/internal-transfer", internal(accounts["alice"], 2), key,
                 headers=client.as_operator("kz", 2))
    assert first.status_code == other.status_code == 202
    assert first.json()["transaction_id"] != other.json()["transaction_id"]
    assert "Idempotent-Replayed" not in other.headers
    for answer in (first, other):
        client.settle("kz", answer.json()["transaction_id"])


def test_a_refused_request_is_not_remembered(client: StackClient,
                                             accounts: dict[str, int]) -> None:
    key = str(uuid.uuid4())
    too_many = {"transferring_account_id": accounts["alice"],
                "acquiring_account_id": accounts["bob"], "unit_type": "AAU",
                "quantity": ISSUED}
    holder = client.as_holder("kz", accounts["alice"])
    refused = post(client, "/transactions/internal-transfer", too_many, key, headers=holder)
    assert refused.status_code == 422 and refused.json()["response_code"] == 3002
    # the same key and request are checked again: refused again, not replayed
    again = post(client, "/transactions/internal-transfer", too_many, key, headers=holder)
    assert again.status_code == 422 and "Idempotent-Replayed" not in again.headers
    fits = {**too_many, "quantity": 1}
    accepted = post(client, "/transactions/internal-transfer", fits, key, headers=holder)
    assert accepted.status_code == 202, accepted.text
    client.settle("kz", accepted.json()["transaction_id"])


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "two words"])
def test_a_malformed_key_is_refused_naming_the_header(client: StackClient,
                                                      accounts: dict[str, int],
                                                      key: str) -> None:
    before = outgoing(client)
    try:
        refused = post(client, "/transactions/internal-transfer",
                       internal(accounts["alice"], 1), key)
    except UnicodeEncodeError:
        # HTTP headers are ASCII: a client cannot even send it
        return
    assert refused.status_code == 422, refused.text
    assert any(error["loc"] == ["header", HEADER] for error in refused.json()["detail"])
    assert outgoing(client) == before


def test_a_boundary_key_of_255_characters_is_taken(client: StackClient,
                                                   accounts: dict[str, int]) -> None:
    key = "~" * 255
    first = post(client, "/transactions/internal-transfer", internal(accounts["alice"], 1), key)
    again = post(client, "/transactions/internal-transfer", internal(accounts["alice"], 1), key)
    assert first.status_code == again.status_code == 202, first.text
    assert again.json()["transaction_id"] == first.json()["transaction_id"]
    client.settle("kz", first.json()["transaction_id"])


def test_a_cdm_issuance_is_requested_once_per_key(client: StackClient,
                                                  accounts: dict[str, int]) -> None:
    key = str(uuid.uuid4())
    body = {"unit_type": "CER", "quantity": 100, "acquiring_registry": "KZ",
            "acquiring_account_type": 121, "acquiring_account_id": accounts["alice"]}
    path = "/projects/CDM-IDEM-1/issuances"
    first = post(client, path, body, key, service="cdm")
    again = post(client, path, body, key, service="cdm")
    assert first.status_code == again.status_code == 202, first.text
    assert again.json() == first.json()
    other = post(client, path, {**body, "quantity": 101}, key, service="cdm")
    assert other.status_code == 422 and HEADER in other.json()["detail"]
    requests = [r["request_id"] for r in client.ok("cdm", "GET", "/issuances")]
    assert requests == [first.json()["request_id"]]


def test_the_key_survives_a_kill_of_the_registry_with_its_proposal(
    stack: LocalStack, client: StackClient, accounts: dict[str, int],
) -> None:
    """The answer is lost with the process (SIGKILL right after the proposal was
    recorded); the retry after the restart answers it from the store and the transfer
    completes once."""
    key = str(uuid.uuid4())
    held = client.units_held("kz", accounts["bob"], "AAU")
    first = post(client, "/transactions/internal-transfer", internal(accounts["bob"], 13), key)
    assert first.status_code == 202, first.text
    stack.kill("kz")
    stack.restart("kz")
    again = post(client, "/transactions/internal-transfer", internal(accounts["bob"], 13), key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["transaction_id"] == first.json()["transaction_id"]
    client.settle("kz", first.json()["transaction_id"])
    assert client.units_held("kz", accounts["bob"], "AAU") == held + 13
