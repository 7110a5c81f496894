"""Crash recovery: a registry killed with SIGKILL between its proposal and the ITL's
answer completes the transaction once after restart, with no unit lost or doubled."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import UnitType
from shared.messaging import inbox_queue_name
from shared.testing.infra import purge_queue

pytestmark = pytest.mark.e2e

ISSUED = 50_000
PARTY_HOLDING = 1


@pytest.fixture(scope="module")
def funded(client: StackClient) -> dict[str, int]:
    client.set_assigned_amount("KZ", 2, ISSUED)
    issued = client.issue("kz", "AAU", ISSUED, "MEP-2013-010")
    client.settle("kz", issued["transaction_id"])
    return {
        "alice": client.open_account("kz", "Alice Energy LLP")["account_id"],
        "zora": client.open_account("ch", "Zurich Power AG")["account_id"],
    }


def _kill_after_proposal(stack: LocalStack, client: StackClient, response: Any,
                         mongo: StackDatabases) -> str:
    assert response.status_code == 202, response.text
    transaction_id: str = response.json()["transaction_id"]
    stack.kill("kz")
    stored = mongo["registry_kz"].transactions.find_one({"_id": transaction_id})
    assert stored is not None and stored["status"] == 1, "killed after the ITL's answer"
    return transaction_id


def _assert_books_agree(client: StackClient) -> None:
    client.settle_share_of_proceeds("kz")
    for registry in ("KZ", "CH", "CDM"):
        itl = {(r["account_id"], r["unit_type"]): r["units"]
               for r in client.itl_totals(registry)}
        own = {(r["account_id"], _code(r["unit_type"])): r["units"]
               for r in client.registry_totals(registry.lower())}
        assert itl == own, registry


def _share_of_proceeds(client: StackClient) -> int:
    """AAUs KZ has contributed to the Adaptation Fund once every share transfer is final;
    exactly what is due (each first transfer levied once, whatever was killed)."""
    client.settle_share_of_proceeds("kz")
    rows = client.ok("kz", "GET", "/share-of-proceeds")
    for row in rows:
        assert row["contributed"] == row["due"] and row["owed"] == 0, row
    return sum(int(row["contributed"]) for row in rows)


def _code(name: str) -> int:
    return int(UnitType[name])


def test_internal_transfer_survives_a_registry_kill_between_proposal_and_answer(
    stack: LocalStack, client: StackClient, funded: dict[str, int],
    mongo: StackDatabases,
) -> None:
    response = client.transfer("kz", PARTY_HOLDING, funded["alice"], "AAU", 1234)
    transaction_id = _kill_after_proposal(stack, client, response, mongo)
    stack.restart("kz")
    final = client.settle("kz", transaction_id)
    assert [h["status"] for h in final["history"]] == [1, 2, 4]
    assert client.units_held("kz", funded["alice"], "AAU") == 1234
    assert client.units_held("kz", PARTY_HOLDING, "AAU") == ISSUED - 1234
    assert client.itl_transaction(transaction_id)["status"] == 4
    _assert_books_agree(client)


def test_external_transfer_survives_a_registry_kill_and_credits_ch_exactly_once(
    stack: LocalStack, client: StackClient, funded: dict[str, int],
    mongo: StackDatabases,
) -> None:
    kz_before = client.units_held("kz", PARTY_HOLDING, "AAU")
    shared_before = _share_of_proceeds(client)
    response = client.transfer("kz", PARTY_HOLDING, funded["zora"], "AAU", 777,
                               target_registry="CH")
    transaction_id = _kill_after_proposal(stack, client, response, mongo)
    stack.restart("kz")
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"
    ch_view = client.wait_final("ch", transaction_id)
    assert [h["status"] for h in ch_view["history"]] == [1, 8, 4]
    assert client.units_held("ch", funded["zora"], "AAU") == 777
    shared = _share_of_proceeds(client) - shared_before
    assert client.units_held("kz", PARTY_HOLDING, "AAU") == kz_before - 777 - shared
    assert client.itl_transaction(transaction_id)["status"] == 4
    completions = mongo["registry_kz"].outbox.count_documents(
        {"correlation_id": transaction_id, "envelope.payload.status": 4})
    assert completions == 1
    _assert_books_agree(client)


def test_external_transfer_survives_an_itl_kill_and_completes_once(
    stack: LocalStack, client: StackClient, funded: dict[str, int],
    mongo: StackDatabases,
) -> None:
    kz_before = client.units_held("kz", PARTY_HOLDING, "AAU")
    ch_before = client.units_held("ch", funded["zora"], "AAU")
    shared_before = _share_of_proceeds(client)
    stack.kill("itl")
    try:
        response = client.transfer("kz", PARTY_HOLDING, funded["zora"], "AAU", 321,
                                   target_registry="CH")
        assert response.status_code == 202, response.text
        transaction_id = response.json()["transaction_id"]
        assert client.transaction("kz", transaction_id)["status"] == 1
    finally:
        stack.restart("itl")
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"
    shared = _share_of_proceeds(client) - shared_before
    assert client.units_held("kz", PARTY_HOLDING, "AAU") == kz_before - 321 - shared
    assert client.units_held("ch", funded["zora"], "AAU") == ch_before + 321
    assert mongo["itl"].inbox.count_documents({"correlation_id": transaction_id}) == 3
    _assert_books_agree(client)


def _published(mongo: StackDatabases, transaction_id: str) -> bool:
    row = mongo["registry_kz"].outbox.find_one({"correlation_id": transaction_id,
                                               "message_type": "ProposalSubmitted"})
    return bool(row and row["published"])


def _propose_while_the_itl_is_down(stack: LocalStack, client: StackClient,
                                   mongo: StackDatabases, account: int,
                                   quantity: int) -> str:
    """Kill the ITL and propose an internal transfer; returns once KZ has published it
    (the proposal then waits in the ITL's queue). The caller restarts the ITL."""
    stack.kill("itl")
    response = client.transfer("kz", PARTY_HOLDING, account, "AAU", quantity)
    transaction_id: str = response.json()["transaction_id"]
    poll(lambda: _published(mongo, transaction_id), bool, "proposal published")
    return transaction_id


def _two_hours_later(client: StackClient) -> None:
    later = datetime.fromisoformat(client.ok("itl", "GET", "/admin/clock")["now"]) \
        + timedelta(hours=2)
    client.ok("itl", "PUT", "/admin/clock", json={"now": later.isoformat()})


def test_a_lost_proposal_is_asked_about_and_submitted_again_with_one_effect(
    stack: LocalStack, client: StackClient, funded: dict[str, int],
    mongo: StackDatabases,
) -> None:
    before = client.units_held("kz", funded["alice"], "AAU")
    try:
        transaction_id = _propose_while_the_itl_is_down(stack, client, mongo,
                                                        funded["alice"], 55)
        lost = asyncio.run(purge_queue(inbox_queue_name("ITL", stack.namespace)))
        assert lost >= 1
    finally:
        stack.restart("itl")
    assert client.transaction("kz", transaction_id)["status"] == 1
    _two_hours_later(client)
    final = client.settle("kz", transaction_id)
    assert [h["status"] for h in final["history"]] == [1, 2, 4]
    assert client.units_held("kz", funded["alice"], "AAU") == before + 55
    sent = mongo["registry_kz"].outbox.count_documents(
        {"correlation_id": transaction_id, "message_type": "ProposalSubmitted"})
    assert sent == 2
    _assert_books_agree(client)


def test_a_lost_itl_answer_is_recovered_by_a_status_query(
    stack: LocalStack, client: StackClient, funded: dict[str, int],
    mongo: StackDatabases,
) -> None:
    before = client.units_held("kz", funded["alice"], "AAU")
    try:
        transaction_id = _propose_while_the_itl_is_down(stack, client, mongo,
                                                        funded["alice"], 66)
        stack.kill("kz")
    finally:
        stack.restart("itl")
    poll(lambda: client.call("itl", "GET", f"/transactions/{transaction_id}"),
         lambda r: r.status_code == 200 and r.json()["status"] == 2, "checked by the ITL")
    lost = asyncio.run(purge_queue(inbox_queue_name("KZ", stack.namespace)))
    assert lost >= 1
    stack.restart("kz")
    assert client.transaction("kz", transaction_id)["status"] == 1
    _two_hours_later(client)
    final = client.settle("kz", transaction_id)
    assert [h["status"] for h in final["history"]] == [1, 2, 4]
    assert client.units_held("kz", funded["alice"], "AAU") == before + 66
    _assert_books_agree(client)
