"""Reconciliation through the real processes (protocol.md 5; docs/adr/0030): the ITL
reconciles a registry while transfers go on and finds it consistent (status 5); a block
deleted, altered, duplicated or moved behind the protocol's back, and a completion the
acquiring registry lost, are each found at their phase with their blocks and accounts,
the blocks are frozen at the ITL (3005) until an operator resolves the reconciliation
(status 6); a registry set inconsistent as a whole is refused (1203); bad reconciliation
messages are refused and change nothing."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import MessageType, ResponseCode
from shared.contracts import TotalsReported, TotalsRequested, UnitBlocksReported
from shared.messaging import inbox_queue_name
from shared.testing.infra import purge_queue
from tests.e2e.test_message_checks import dead_letter_messages, envelope, publish

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH")
HTTP_TIMEOUT = 60.0
PARTY_HOLDING = 1
ISSUED = 1_000_000
ACCOUNT_PREFIX = "KZ:"


@pytest.fixture(scope="module")
def issued(client: StackClient) -> dict[str, int]:
    """KZ's period-2 AAUs issued into its Party holding account, and a CH account."""
    client.set_assigned_amount("KZ", 2, ISSUED)
    client.settle("kz", client.issue("kz", "AAU", ISSUED, "MEP-2013-R01")["transaction_id"])
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    return {"zora": zora}


def funded_account(client: StackClient, name: str, quantity: int) -> tuple[int, dict[str, Any]]:
    """A new KZ person holding account given ``quantity`` AAUs by an internal transfer;
    returns it and the one block the registry holds there."""
    account = client.open_account("kz", name)["account_id"]
    moved = client.transfer("kz", PARTY_HOLDING, account, "AAU", quantity)
    assert moved.status_code == 202, moved.text
    client.settle("kz", moved.json()["transaction_id"])
    blocks = client.ok("kz", "GET", f"/accounts/{account}/holdings")["blocks"]
    assert len(blocks) == 1, blocks
    return account, blocks[0]


def kz_block(mongo: StackDatabases, account: int) -> dict[str, Any]:
    docs = list(mongo["registry_kz"].units.find({"account_id": account}))
    assert len(docs) == 1, docs
    return docs[0]


def proposal_code(client: StackClient, registry: str, source: int, target: int,
                  unit_type: str, quantity: int) -> list[int]:
    """Propose a transfer and return the response codes it ended with at the ITL."""
    response = client.transfer(registry, source, target, unit_type, quantity)
    assert response.status_code == 202, response.text
    final = client.settle(registry, response.json()["transaction_id"])
    assert final["status_name"] == "TERMINATED", final
    return [r["response_code"] for r in final["evaluation_results"]]


def resolve(client: StackClient, view: dict[str, Any], reason: str,
            transaction_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if transaction_id is not None:
        body["transaction_id"] = transaction_id
    done: dict[str, Any] = client.ok(
        "itl", "POST", f"/reconciliations/{view['reconciliation_id']}/resolution", json=body)
    return done


def test_a_clean_stack_reconciles_to_completed_while_transfers_run(
        client: StackClient, issued: dict[str, int]) -> None:
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    for registry, person in (("kz", 1), ("kz", 2), ("ch", 1)):
        client.as_operator(registry, person)

    def external(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, issued["zora"], "AAU", 100,
                               target_registry="CH")

    def internal(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, alice, "AAU", 100)

    with ThreadPoolExecutor(max_workers=8) as pool:
        moving = [pool.submit(external, i) for i in range(4)] + \
                 [pool.submit(internal, i) for i in range(4)]
        views = [client.reconcile(code) for code in ("KZ", "CH", "CDM")]
        started = [f.result() for f in moving]
    assert [v["status"] for v in views] == [5, 5, 5], views
    assert all(v["phase"] == 1 and not v["flagged"] for v in views), views
    for response in started:
        assert response.status_code == 202, response.text
        final = client.settle("kz", response.json()["transaction_id"])
        assert final["status_name"] == "COMPLETED", final
    client.settle_share_of_proceeds("kz")
    # and once they are all final
    assert [client.reconcile(code)["status"] for code in ("KZ", "CH", "CDM")] == [5, 5, 5]
    kz = client.registry_reconciliation(views[0], 5)
    assert kz["status"] == 5 and kz["answered_phases"] == 1 and kz["blocks"] >= 1


# tampering behind the protocol's back: the books changed in the registry's store, the
# maintained summaries changed to match (so the registry itself notices nothing and
# proposes from what it now believes it holds)


def summary_id(doc: dict[str, Any]) -> str:
    return "|".join(["holdings", doc["registry"], str(doc["account_type"]),
                     str(doc["account_id"]), str(doc["unit_type"]), str(doc["applicable_cp"]),
                     doc["origin"]])


def count_in_summary(mongo: StackDatabases, doc: dict[str, Any], sign: int) -> None:
    units = doc["serial_end"] - doc["serial_start"] + 1
    update: dict[str, Any] = {"$inc": {"units": sign * units, "blocks": sign}}
    if sign > 0:
        update["$min"] = {"first_serial": doc["serial_start"]}
        update["$max"] = {"last_serial": doc["serial_end"]}
        update["$setOnInsert"] = {"kind": "holdings", "registry": doc["registry"],
                                  "account_type": doc["account_type"],
                                  "account_id": doc["account_id"],
                                  "unit_type": doc["unit_type"],
                                  "applicable_cp": doc["applicable_cp"],
                                  "origin": doc["origin"]}
    mongo["registry_kz"].units_summary.update_one({"_id": summary_id(doc)}, update,
                                                  upsert=True)


def tamper(mongo: StackDatabases, doc: dict[str, Any], fields: dict[str, Any]) -> None:
    """Change block ``doc`` in KZ's store to ``fields`` (its summaries too)."""
    mongo["registry_kz"].units.update_one({"_id": doc["_id"]}, {"$set": fields})
    count_in_summary(mongo, doc, -1)
    count_in_summary(mongo, {**doc, **fields}, +1)


def itl_flags(client: StackClient, registry: str, account: int) -> list[str | None]:
    units = client.ok("itl", "GET", "/units", params={"registry": registry,
                                                       "account_id": account})
    return [u["discrepancy"] for u in units]


def assert_found_in_blocks(view: dict[str, Any], doc: dict[str, Any],
                           itl_account: int | None, registry_account: int | None,
                           serials: tuple[int, int] | None = None) -> None:
    """The reconciliation waits for an operator, found the discrepancy in phase 2 and
    names exactly the serials of ``doc`` (or ``serials``) with each side's account."""
    assert view["status"] == 4 and view["awaiting_operator"], view
    assert view["phase"] == 3 and view["phase_found"] == 2, view["trail_differences"]
    assert view["response_codes"] == [7001, 7002], view
    assert view["trail_differences"] == [], view
    first, last = serials or (doc["serial_start"], doc["serial_end"])
    assert [(d["origin"], d["serial_start"], d["serial_end"]) for d in view["differences"]] \
        == [(doc["origin"], first, last)], view["differences"]
    diff = view["differences"][0]
    assert (diff["itl"] or {}).get("account_id") == itl_account, diff
    assert (diff["registry"] or {}).get("account_id") == registry_account, diff
    assert view["flagged"] and all(f["origin"] == doc["origin"] for f in view["flagged"])


def close_and_check(client: StackClient, view: dict[str, Any], reason: str,
                    transaction_id: str | None = None) -> dict[str, Any]:
    """The operator resolves the reconciliation: status 6 with who and why, the flags
    gone at the ITL, the registry told."""
    done = resolve(client, view, reason, transaction_id)
    assert done["status"] == 6 and not done["awaiting_operator"], done
    resolution = done["resolutions"][-1]
    assert resolution["reason"] == reason and resolution["by"]["role"] == "administrator"
    assert resolution["transaction_id"] == transaction_id
    registry = view["registry"].lower()
    seen = poll(lambda: client.ok(registry, "GET",
                                  f"/reconciliations/{view['reconciliation_id']}"),
                lambda r: r["status"] == 6, "the registry's record of status 6")
    assert [r["status"] for r in seen["results"]] == [4, 6]
    assert reason in seen["results"][-1]["text"] and resolution["by"]["id"] in \
        seen["results"][-1]["text"]
    return done


def test_a_deleted_block_is_found_in_phase_2_and_frozen_until_cleared(
        client: StackClient, issued: dict[str, int], mongo: StackDatabases) -> None:
    account, _ = funded_account(client, "Deleted Ltd", 500)
    doc = kz_block(mongo, account)
    mongo["registry_kz"].units.delete_one({"_id": doc["_id"]})
    count_in_summary(mongo, doc, -1)
    view = client.reconcile("KZ")
    assert_found_in_blocks(view, doc, account, None)
    assert view["differing_totals"] == [
        {"key": f"121|{account}|1|0|2", "itl_units": 500, "registry_units": 0}]
    assert itl_flags(client, "KZ", account) == [view["reconciliation_id"]]
    told = client.registry_reconciliation(view, 4)
    assert told["results"][-1]["status"] == 4
    assert [(b["serial_start"], b["account_id"]) for b in told["results"][-1]["blocks"]] \
        == [(doc["serial_start"], account)]
    mongo["registry_kz"].units.insert_one(doc)  # restored from the registry's backup
    count_in_summary(mongo, doc, +1)
    close_and_check(client, view, "block restored from the registry's backup")
    assert itl_flags(client, "KZ", account) == [None]
    assert client.reconcile("KZ")["status"] == 5


def test_an_altered_block_is_found_in_phase_2_and_a_proposal_touching_it_is_refused(
        client: StackClient, issued: dict[str, int], mongo: StackDatabases) -> None:
    account, _ = funded_account(client, "Altered Ltd", 400)
    other = client.open_account("kz", "Receiver Ltd")["account_id"]
    doc = kz_block(mongo, account)
    # the AAUs now read as RMUs of forest management
    tamper(mongo, doc, {"unit_type": 2, "lulucf_activity": 3})
    view = client.reconcile("KZ")
    assert_found_in_blocks(view, doc, account, account)
    assert view["differences"][0]["itl"]["unit_type"] == 1
    assert view["differences"][0]["registry"]["unit_type"] == 2
    assert sorted(t["key"] for t in view["differing_totals"]) == [
        f"121|{account}|1|0|2", f"121|{account}|2|0|2"]
    assert proposal_code(client, "kz", account, other, "RMU", 100) == \
        [int(ResponseCode.BLOCK_OPEN_DISCREPANCY)]
    tamper(mongo, {**doc, "unit_type": 2, "lulucf_activity": 3},
           {"unit_type": 1, "lulucf_activity": None})
    close_and_check(client, view, "unit type corrected in the registry's books")
    assert client.reconcile("KZ")["status"] == 5


def moved_block(client: StackClient, mongo: StackDatabases, name: str, quantity: int
                ) -> tuple[int, int, dict[str, Any], dict[str, Any]]:
    """A KZ account ``name`` given ``quantity`` AAUs whose block is then moved, behind the
    protocol's back, to another account; a reconciliation finds it in phase 2. Returns
    the account, the other account, the block as it was and the reconciliation's view."""
    account, _ = funded_account(client, f"{name} From Ltd", quantity)
    thief = client.open_account("kz", f"{name} To Ltd")["account_id"]
    doc = kz_block(mongo, account)
    tamper(mongo, doc, {"account_id": thief})
    view = client.reconcile("KZ")
    assert_found_in_blocks(view, doc, account, thief)
    return account, thief, doc, view


def test_a_moved_block_is_found_in_phase_2_naming_both_accounts(
        client: StackClient, issued: dict[str, int], mongo: StackDatabases) -> None:
    account, thief, doc, view = moved_block(client, mongo, "Moved", 300)
    assert proposal_code(client, "kz", thief, account, "AAU", 300) == \
        [int(ResponseCode.BLOCK_OPEN_DISCREPANCY)]
    tamper(mongo, {**doc, "account_id": thief}, {"account_id": account})
    close_and_check(client, view, "block returned to its account")
    assert client.reconcile("KZ")["status"] == 5


def test_a_second_reconciliation_leaves_the_flags_of_the_first_awaiting_an_operator(
        client: StackClient, issued: dict[str, int], mongo: StackDatabases) -> None:
    """The same moved block found by two reconciliations before an operator resolved the
    first: its blocks keep the first one's flag (the second names it), resolving the
    second clears nothing, resolving the first clears them."""
    account, thief, doc, first = moved_block(client, mongo, "Twice", 250)
    second = client.reconcile("KZ")
    assert_found_in_blocks(second, doc, account, thief)
    assert [f["flagged_before_by"] for f in first["flagged"]] == [[]]
    assert [f["flagged_before_by"] for f in second["flagged"]] == \
        [[first["reconciliation_id"]]]
    assert itl_flags(client, "KZ", account) == [first["reconciliation_id"]]
    done = resolve(client, second, "the same block as the first reconciliation found")
    assert done["status"] == 6
    assert itl_flags(client, "KZ", account) == [first["reconciliation_id"]]
    assert proposal_code(client, "kz", thief, account, "AAU", 250) == \
        [int(ResponseCode.BLOCK_OPEN_DISCREPANCY)]
    tamper(mongo, {**doc, "account_id": thief}, {"account_id": account})
    close_and_check(client, first, "block returned to its account")
    assert itl_flags(client, "KZ", account) == [None]
    assert client.reconcile("KZ")["status"] == 5


def test_a_duplicated_block_is_found_in_phase_2_and_frozen(
        client: StackClient, issued: dict[str, int], mongo: StackDatabases) -> None:
    account, _ = funded_account(client, "Original Ltd", 200)
    copier = client.open_account("kz", "Copy Ltd")["account_id"]
    doc = kz_block(mongo, account)
    # the copy cannot start where the original does (a unique index): all but its first unit
    copy = {**{k: v for k, v in doc.items() if k != "_id"}, "account_id": copier,
            "serial_start": doc["serial_start"] + 1, "fork": None}
    inserted = mongo["registry_kz"].units.insert_one(copy).inserted_id
    count_in_summary(mongo, copy, +1)
    view = client.reconcile("KZ")
    # phase 2 compares the blocks of the totals that differ: the copier's; the ITL holds
    # those serials in the original's account, whose total agrees, and flags them there
    assert_found_in_blocks(view, doc, None, copier,
                           serials=(doc["serial_start"] + 1, doc["serial_end"]))
    assert itl_flags(client, "KZ", account) == [view["reconciliation_id"]]
    assert proposal_code(client, "kz", copier, account, "AAU", 199) == \
        [int(ResponseCode.BLOCK_OPEN_DISCREPANCY)]
    mongo["registry_kz"].units.delete_one({"_id": inserted})
    count_in_summary(mongo, copy, -1)
    close_and_check(client, view, "copy removed")
    assert client.reconcile("KZ")["status"] == 5


def test_a_registry_set_inconsistent_is_refused_with_1203(
        client: StackClient, issued: dict[str, int]) -> None:
    account = client.open_account("kz", "Blocked Registry Ltd")["account_id"]
    state = client.ok("itl", "PUT", "/registries/KZ/state",
                      json={"inconsistent": True, "reason": "books lost in a fire"})
    assert state["inconsistent"] and state["by"]["role"] == "administrator"
    try:
        assert proposal_code(client, "kz", PARTY_HOLDING, account, "AAU", 10) == \
            [int(ResponseCode.REGISTRY_INCONSISTENT)]
    finally:
        client.ok("itl", "PUT", "/registries/KZ/state",
                  json={"inconsistent": False, "reason": "books restored"})
    moved = client.transfer("kz", PARTY_HOLDING, account, "AAU", 10)
    assert client.settle("kz", moved.json()["transaction_id"])["status_name"] == "COMPLETED"
    history = client.ok("itl", "GET", "/registries/KZ/state")["history"]
    assert [h["inconsistent"] for h in history] == [True, False]


# bad reconciliation messages: refused with a code, or dead-lettered, changing nothing


def itl_refusal(mongo: StackDatabases, acked_message_id: str) -> dict[str, Any]:
    """The ITL's ``MessageAck`` refusing ``acked_message_id`` (from its outbox)."""
    row = poll(lambda: mongo["itl"].outbox.find_one(
        {"envelope.payload.acked_message_id": acked_message_id}),
        lambda r: r is not None, f"the ITL's answer to {acked_message_id}")
    assert row is not None
    payload: dict[str, Any] = row["envelope"]["payload"]
    assert payload["accepted"] is False
    return payload


def test_bad_reconciliation_messages_are_refused_and_change_nothing(
        client: StackClient, stack: LocalStack, issued: dict[str, int],
        mongo: StackDatabases) -> None:
    closed = client.reconcile("KZ")
    assert closed["status"] == 5
    rid = closed["reconciliation_id"]
    before = list(mongo["itl"].reconciliations.find({}, {"updated_at": 0}))
    totals = TotalsReported.model_validate({"reconciliation_id": "REC999999", "totals": []})
    unknown = envelope(MessageType.TOTALS_REPORTED, totals, "KZ", "ITL", "REC999999")
    late = envelope(MessageType.UNIT_BLOCKS_REPORTED,
                    UnitBlocksReported(reconciliation_id=rid, blocks=[]), "KZ", "ITL", rid)
    from_ch = envelope(MessageType.TOTALS_REPORTED, TotalsReported(
        reconciliation_id=rid, totals=[]), "CH", "ITL", rid)
    row = {"account_type": 121, "account_id": 1001, "unit_type": 1,
           "applicable_commitment_period": 2, "units": 5, "blocks": 1}
    negative = envelope(MessageType.TOTALS_REPORTED, TotalsReported.model_validate(
        {"reconciliation_id": rid, "totals": [row]}), "KZ", "ITL", rid)
    negative["payload"]["totals"][0]["units"] = -1
    fraction = envelope(MessageType.TOTALS_REPORTED, TotalsReported.model_validate(
        {"reconciliation_id": rid, "totals": [row]}), "KZ", "ITL", rid)
    fraction["payload"]["totals"][0]["units"] = 2.5
    publish(stack, "ITL", unknown, late, from_ch, negative, fraction)

    assert itl_refusal(mongo, unknown["message_id"])["response_codes"] == [7004]
    answer = itl_refusal(mongo, late["message_id"])
    assert answer["response_codes"] == [1103] and "phase 2" in answer["reason"], answer
    assert itl_refusal(mongo, from_ch["message_id"])["response_codes"] == [7004]
    dead = dead_letter_messages(stack, "ITL", negative["message_id"], fraction["message_id"])
    for document in (negative, fraction):
        reason = str(dead[document["message_id"]].headers["x-dead-reason"])
        assert "invalid TotalsReported payload" in reason and "totals.0.units" in reason, \
            reason
    # the registry refuses a request for a reconciliation it took no snapshot of
    asked = envelope(MessageType.TOTALS_REQUESTED,
                     TotalsRequested(reconciliation_id="REC888888"), "ITL", "KZ", "REC888888")
    publish(stack, "KZ", asked)
    row_kz = poll(lambda: mongo["registry_kz"].outbox.find_one(
        {"envelope.payload.acked_message_id": asked["message_id"]}),
        lambda r: r is not None, "KZ's refusal")
    assert row_kz is not None and row_kz["envelope"]["payload"]["response_codes"] == [7004]
    assert mongo["registry_kz"].reconciliations.find_one({"_id": "REC888888"}) is None
    assert list(mongo["itl"].reconciliations.find({}, {"updated_at": 0})) == before
    # the operator API refuses what it cannot do
    assert client.call("itl", "POST", "/reconciliations",
                       json={"registry": "FR"}).status_code == 422
    assert client.call("itl", "GET", "/reconciliations/REC999999").status_code == 404
    refused = client.call("itl", "POST", f"/reconciliations/{rid}/resolution",
                          json={"reason": "nothing to clear"})
    assert refused.status_code == 422 and refused.json()["response_code"] == 1103
    assert client.call("itl", "POST", f"/reconciliations/{rid}/resolution",
                       json={"reason": ""}).status_code == 422
    assert client.call("kz", "GET", "/reconciliations",
                       headers=client.as_holder("kz", PARTY_HOLDING)).status_code == 403


def status_at(client: StackClient, service: str, tx: str) -> int | None:
    """A transaction's status at ``service`` (None: not known there yet)."""
    response = client.call(service, "GET", f"/transactions/{tx}")
    return int(response.json()["status"]) if response.status_code == 200 else None


def accepted_while_kz_is_frozen(client: StackClient, stack: LocalStack, target: int,
                                quantity: int) -> str:
    """An external transfer KZ -> CH that CH has accepted while KZ is stopped (SIGSTOP):
    the ITL's 8 waits in KZ's queue. Returns its id; KZ is left stopped."""
    for registry, person in (("kz", 1), ("kz", 2), ("ch", 1)):
        client.as_operator(registry, person)
    ch, kz = stack.services["ch"].process, stack.services["kz"].process
    assert ch is not None and kz is not None
    os.kill(ch.pid, signal.SIGSTOP)
    try:
        response = client.transfer("kz", PARTY_HOLDING, target, "AAU", quantity,
                                   target_registry="CH")
        assert response.status_code == 202, response.text
        tx = str(response.json()["transaction_id"])
        forwarded = poll(lambda: status_at(client, "itl", tx), lambda s: s not in (None, 1),
                         "forwarded")
        assert forwarded == 2, client.itl_transaction(tx)
        os.kill(kz.pid, signal.SIGSTOP)
    finally:
        os.kill(ch.pid, signal.SIGCONT)
    poll(lambda: status_at(client, "itl", tx), lambda s: s == 8, "accepted")
    poll(lambda: status_at(client, "ch", tx), lambda s: s == 8, "accepted at CH")
    return tx


def completed_while_ch_is_down(client: StackClient, stack: LocalStack, tx: str) -> None:
    """CH stopped, KZ running again: KZ completes ``tx``, the ITL completes it and its
    completion waits in CH's queue."""
    stack.stop_service("ch")
    kz = stack.services["kz"].process
    assert kz is not None
    os.kill(kz.pid, signal.SIGCONT)
    poll(lambda: status_at(client, "itl", tx), lambda s: s == 4, "completed")


def test_completions_in_flight_at_the_snapshot_are_no_discrepancy(
        client: StackClient, stack: LocalStack, issued: dict[str, int]) -> None:
    """At KZ's snapshot the ITL has accepted a transfer KZ has not completed yet (its 8
    waits in KZ's queue); at CH's the ITL has completed one CH has not credited yet (its
    4 waits in CH's queue). Both reconcile to 5: each registry's snapshot follows the
    messages the ITL sent before it, and KZ says it completed the open transfer."""
    target = client.open_account("ch", "In Flight AG")["account_id"]
    tx = accepted_while_kz_is_frozen(client, stack, target, 150)
    try:
        kz_view = client.ok("itl", "POST", "/reconciliations", json={"registry": "KZ"})[0]
        assert tx in kz_view["open_transactions"], kz_view
    finally:
        completed_while_ch_is_down(client, stack, tx)
    try:
        ch_view = client.ok("itl", "POST", "/reconciliations", json={"registry": "CH"})[0]
    finally:
        stack.restart("ch")
    kz_done = client.wait_reconciliation(kz_view["reconciliation_id"])
    assert kz_done["status"] == 5 and tx in kz_done["completed_open"], kz_done
    assert client.wait_reconciliation(ch_view["reconciliation_id"])["status"] == 5
    assert status_at(client, "ch", tx) == 4
    client.settle_share_of_proceeds("kz")


def test_a_lost_completion_is_found_in_phase_3_naming_the_transaction(
        client: StackClient, stack: LocalStack, issued: dict[str, int],
        mongo: StackDatabases) -> None:
    """CH accepts a transfer, then is stopped; the ITL's completion waits in its queue and
    is lost (the queue purged) before CH starts again."""
    target = client.open_account("ch", "Lost Completion AG")["account_id"]
    tx = accepted_while_kz_is_frozen(client, stack, target, 250)
    try:
        completed_while_ch_is_down(client, stack, tx)
        assert asyncio.run(purge_queue(inbox_queue_name("CH", stack.namespace))) == 1
    finally:
        stack.restart("ch")
    client.settle_share_of_proceeds("kz")

    view = client.reconcile("CH")
    assert view["status"] == 4 and view["awaiting_operator"], view
    assert view["phase_found"] == 3 and view["response_codes"] == [7001, 7002, 7003], view
    assert view["trail_differences"] == [
        {"transaction_id": tx, "itl_status": 4, "registry_status": 8}]
    assert [(d["itl"]["account_id"], d["registry"], d["serial_end"] - d["serial_start"] + 1)
            for d in view["differences"]] == [(target, None, 250)]
    assert itl_flags(client, "CH", target) == [view["reconciliation_id"]]
    told = poll(lambda: client.ok("ch", "GET", f"/reconciliations/{view['reconciliation_id']}"),
                lambda r: bool(r["results"]), "CH told")
    assert told["results"][-1]["response_codes"] == [7001, 7002, 7003]
    unknown = client.call("itl", "POST",
                          f"/reconciliations/{view['reconciliation_id']}/resolution",
                          json={"reason": "credited", "transaction_id": "KZ999999"})
    assert unknown.status_code == 422 and unknown.json()["response_code"] == 3001
    close_and_check(client, view, "CH credited the completed transfer by hand", tx)
    assert itl_flags(client, "CH", target) == [None]
