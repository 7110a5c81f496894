"""Four-eyes approval through the real processes (docs/adr/0018): an operation a person
starts waits for a second person before it is proposed to the ITL.

Three registries, three configurations: KZ by default (external transfers need approval;
pending approvals expire after 48 simulated hours here), CH with none, JP with external
transfers, issuance and withdrawals. The tests that move the clock come last.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.client import StackClient, is_pending

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH", "JP")
EXPIRY_HOURS = 48
REGISTRY_ENV = {"KZ": {"APPROVAL_EXPIRY_HOURS": str(EXPIRY_HOURS)},
                "CH": {"FOUR_EYES_OPERATIONS": ""},
                "JP": {"FOUR_EYES_OPERATIONS": "EXTERNAL_TRANSFER,issuance,withdrawal"}}
CLOCK_START = "2013-03-01T00:00:00+00:00"
PARTY = 1
EXTERNAL = "/transactions/external-transfer"


@pytest.fixture(scope="module")
def accounts(client: StackClient) -> dict[str, int]:
    """KZ with period-2 AAUs in its Party holding account and in Alice's account; Bob
    and Carol in KZ; Zora in CH."""
    client.set_assigned_amount("KZ", 2, 200_000, reviewed_inventory=5_000)
    issued = client.issue("kz", "AAU", 200_000, "MEP-4E-1")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    ids = {name: client.open_account("kz", name.title())["account_id"]
           for name in ("alice", "bob", "carol")}
    ids["zora"] = client.open_account("ch", "Zurich Power AG")["account_id"]
    moved = client.transfer("kz", PARTY, ids["alice"], "AAU", 20_000)
    assert client.settle("kz", moved.json()["transaction_id"])["status_name"] == "COMPLETED"
    return ids


def pending(response: httpx.Response) -> dict[str, Any]:
    assert is_pending(response), response.text
    body: dict[str, Any] = response.json()
    return body


def sell(client: StackClient, source: int, target: int, quantity: int) -> dict[str, Any]:
    """An external transfer KZ -> CH, left pending."""
    return pending(client.transfer("kz", source, target, "AAU", quantity, "CH", approve=False))


def proposed_ids(client: StackClient, registry: str = "kz") -> set[str]:
    rows = client.ok(registry, "GET", "/transactions", params={"limit": 1000})
    return {r["transaction_id"] for r in rows}


def itl_ids(client: StackClient) -> set[str]:
    return {r["transaction_id"] for r in
            client.ok("itl", "GET", "/transactions", params={"limit": 1000})}


def everywhere(client: StackClient) -> tuple[Any, set[str], set[str]]:
    """KZ's books, KZ's transactions and the ITL's: what a proposal would change."""
    return client.registry_totals("kz"), proposed_ids(client), itl_ids(client)


def approval(client: StackClient, approval_id: str, registry: str = "kz") -> Any:
    return client.ok(registry, "GET", f"/approvals/{approval_id}")


def test_an_external_transfer_waits_and_its_initiator_cannot_approve_it(
    client: StackClient, accounts: dict[str, int],
) -> None:
    alice = accounts["alice"]
    before = everywhere(client)
    asked = sell(client, alice, accounts["zora"], 100)
    assert (asked["operation"], asked["operation_name"], asked["status"]) == (
        "external transfer", "EXTERNAL_TRANSFER", "pending")
    assert asked["initiated_by"] == f"holder:{alice} kz-holder-{alice}"
    assert asked["request"]["quantity"] == 100
    assert asked["request"]["acquiring_registry"] == "CH"
    assert asked["accounts"] == [alice]
    assert asked["transaction_id"] is None
    started = datetime.fromisoformat(asked["initiated_at"])
    assert datetime.fromisoformat(asked["expires_at"]) - started == timedelta(
        hours=EXPIRY_HOURS)
    # nothing proposed, nothing reserved
    assert client.holdings("kz", alice)["reserved"] == 0
    own = client.approve("kz", asked["approval_id"], f"holder:{alice}", person=1)
    assert own.status_code == 403
    assert own.json()["detail"] == (
        f"approval {asked['approval_id']} was initiated by kz-holder-{alice} "
        f"(holder:{alice} kz-holder-{alice}): a second person approves it")
    assert approval(client, asked["approval_id"])["status"] == "pending"
    assert everywhere(client) == before


def test_a_second_representative_approves_and_the_transfer_completes_with_both_recorded(
    client: StackClient, accounts: dict[str, int],
) -> None:
    alice, zora = accounts["alice"], accounts["zora"]
    asked = sell(client, alice, zora, 300)
    approved = client.approve("kz", asked["approval_id"], f"holder:{alice}")
    assert approved.status_code == 202, approved.text
    tx = approved.json()
    assert (tx["initiated_by"], tx["approved_by"], tx["approval_id"]) == (
        f"holder:{alice} kz-holder-{alice}", f"holder:{alice} kz-holder-{alice}-2",
        asked["approval_id"])
    view = client.settle("kz", tx["transaction_id"])
    assert view["status_name"] == "COMPLETED"
    assert (view["initiated_by"], view["approved_by"]) == (tx["initiated_by"],
                                                           tx["approved_by"])
    assert client.units_held("ch", zora, "AAU") >= 300
    closed = approval(client, asked["approval_id"])
    assert (closed["status"], closed["transaction_id"], closed["approved_by"]) == (
        "approved", tx["transaction_id"], tx["approved_by"])
    again = client.approve("kz", asked["approval_id"], f"holder:{alice}")
    assert again.status_code == 409
    assert again.json()["detail"] == f"approval {asked['approval_id']} is approved, not pending"


def test_a_holder_of_another_account_and_the_operator_cannot_approve_it(
    client: StackClient, accounts: dict[str, int],
) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    asked = sell(client, alice, accounts["zora"], 50)
    kz = proposed_ids(client)
    for headers, who in ((client.as_holder("kz", bob),
                          f"the holder of account {bob} (kz-holder-{bob})"),
                         (client.as_operator("kz", 2), "the operator (kz-operator-2)")):
        refused = client.call("kz", "POST", f"/approvals/{asked['approval_id']}/approve",
                              headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == (
            f"approval {asked['approval_id']}: external transfer is started by the holder "
            f"of account {alice}, not by {who}")
    # Bob's representative neither reads nor lists it
    assert client.call("kz", "GET", f"/approvals/{asked['approval_id']}",
                       headers=client.as_holder("kz", bob)).status_code == 403
    listed = client.ok("kz", "GET", "/approvals", headers=client.as_holder("kz", bob))
    assert asked["approval_id"] not in {a["approval_id"] for a in listed}
    mine = client.ok("kz", "GET", "/approvals", headers=client.as_holder("kz", alice),
                     params={"status": "pending", "operation": "EXTERNAL_TRANSFER"})
    assert asked["approval_id"] in {a["approval_id"] for a in mine}
    assert {a["status"] for a in mine} == {"pending"}
    assert approval(client, asked["approval_id"])["status"] == "pending"
    assert proposed_ids(client) == kz
    rejected = client.reject("kz", asked["approval_id"], "tidy up", f"holder:{alice}")
    assert rejected.status_code == 200, rejected.text


def test_a_rejected_transfer_proposes_and_moves_nothing(
    client: StackClient, accounts: dict[str, int],
) -> None:
    alice = accounts["alice"]
    before = everywhere(client)
    asked = sell(client, alice, accounts["zora"], 70)
    blank = client.reject("kz", asked["approval_id"], "  ", f"holder:{alice}")
    assert blank.status_code == 422
    assert "reason" in blank.text
    stranger = client.call("kz", "POST", f"/approvals/{asked['approval_id']}/reject",
                           json={"reason": "no"},
                           headers=client.as_holder("kz", accounts["bob"]))
    assert stranger.status_code == 403
    rejected = client.reject("kz", asked["approval_id"], "wrong acquiring account",
                             f"holder:{alice}")
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert (body["status"], body["rejected_by"], body["reason"], body["transaction_id"]) == (
        "rejected", f"holder:{alice} kz-holder-{alice}-2", "wrong acquiring account", None)
    late = client.approve("kz", asked["approval_id"], f"holder:{alice}")
    assert late.status_code == 409
    assert everywhere(client) == before


def test_approval_checks_the_holdings_of_its_moment(
    client: StackClient, accounts: dict[str, int],
) -> None:
    carol, bob = accounts["carol"], accounts["bob"]
    moved = client.transfer("kz", PARTY, carol, "AAU", 1_000)
    assert client.settle("kz", moved.json()["transaction_id"])["status_name"] == "COMPLETED"
    asked = sell(client, carol, accounts["zora"], 900)  # 900 and its 2 % share fit now
    away = client.transfer("kz", carol, bob, "AAU", 500)  # internal: no approval
    assert client.settle("kz", away.json()["transaction_id"])["status_name"] == "COMPLETED"
    kz, itl = proposed_ids(client), itl_ids(client)
    refused = client.approve("kz", asked["approval_id"], f"holder:{carol}")
    assert refused.status_code == 422, refused.text
    assert refused.json()["response_code"] == 3002
    assert (proposed_ids(client), itl_ids(client)) == (kz, itl)
    assert client.units_held("kz", carol) == 500
    assert approval(client, asked["approval_id"])["status"] == "pending"
    # a request that does not fit at once is refused at once, nothing kept pending
    before = client.ok("kz", "GET", "/approvals", params={"account": carol})
    at_once = client.transfer("kz", carol, accounts["zora"], "AAU", 900, "CH",
                              approve=False)
    assert (at_once.status_code, at_once.json()["response_code"]) == (422, 3002)
    assert client.ok("kz", "GET", "/approvals", params={"account": carol}) == before


def test_two_concurrent_approvals_propose_one_transaction(
    client: StackClient, accounts: dict[str, int],
) -> None:
    asked = pending(client.propose("kz", EXTERNAL, {
        "transferring_account_id": PARTY, "acquiring_registry": "CH",
        "acquiring_account_id": accounts["zora"], "unit_type": "AAU", "quantity": 40},
        approve=False))
    assert asked["initiated_by"] == "operator kz-operator-1"
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: client.approve("kz", asked["approval_id"]),
                                range(2)))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    (won,) = [a.json() for a in answers if a.status_code == 202]
    assert client.settle("kz", won["transaction_id"])["status_name"] == "COMPLETED"
    rows = client.ok("kz", "GET", "/transactions", params={"limit": 1000})
    assert [r["transaction_id"] for r in rows if r["approval_id"] == asked["approval_id"]] == [
        won["transaction_id"]]
    assert won["approved_by"] == "operator kz-operator-2"


def test_which_operations_need_approval_is_each_registrys_setting(
    client: StackClient, accounts: dict[str, int],
) -> None:
    # KZ (default): issuance is proposed at once and keeps who proposed it
    assert client.ok("kz", "GET", "/approvals", params={"operation": "ISSUANCE"}) == []
    issued = [r for r in client.ok("kz", "GET", "/transactions", params={"limit": 1000})
              if r["transaction_type_name"] == "ISSUANCE"]
    assert [(r["initiated_by"], r["approved_by"]) for r in issued] == [
        ("operator kz-operator-1", None)]
    # JP: issuance needs the second operator; the first may not approve it, nor may the
    # authorised body, which does not issue
    client.set_assigned_amount("JP", 1, 5_000)
    decided = client.decide("jp", "issuance", "AAU", 5_000, "JP-ISS-1", commitment_period=1)
    asked = pending(client.propose("jp", "/transactions/issuance",
                                   {"decision_id": decided["decision_id"]}, approve=False))
    assert asked["operation"] == "issuance"
    assert client.approve("jp", asked["approval_id"], person=1).status_code == 403
    body = client.call("jp", "POST", f"/approvals/{asked['approval_id']}/approve",
                       headers=client.as_authorised_body("jp", 2))
    assert body.status_code == 403
    assert "issuance is started by the operator" in body.json()["detail"]
    approved = client.approve("jp", asked["approval_id"])
    assert approved.status_code == 202, approved.text
    assert client.settle("jp", approved.json()["transaction_id"])["status_name"] == "COMPLETED"
    assert client.units_held("jp", PARTY, "AAU", 1) == 5_000
    # CH (none): an external transfer is proposed at once
    client.set_assigned_amount("CH", 2, 100_000, reviewed_inventory=1_000)
    client.settle("ch", client.issue("ch", "AAU", 100_000, "CH-ISS-1")["transaction_id"])
    at_once = client.call("ch", "POST", EXTERNAL, json={
        "transferring_account_id": PARTY, "acquiring_registry": "KZ",
        "acquiring_account_id": accounts["bob"], "unit_type": "AAU", "quantity": 10})
    assert at_once.status_code == 202, at_once.text
    assert at_once.json()["approval_id"] is None
    view = client.settle("ch", at_once.json()["transaction_id"])
    assert (view["status_name"], view["initiated_by"], view["approved_by"]) == (
        "COMPLETED", "operator ch-operator-1", None)
    assert client.ok("ch", "GET", "/approvals") == []


# the clock moves from here on


def test_a_pending_transfer_expires_after_the_configured_hours(
    client: StackClient, accounts: dict[str, int],
) -> None:
    alice, zora = accounts["alice"], accounts["zora"]
    first, second = sell(client, alice, zora, 20), sell(client, alice, zora, 30)
    kz = proposed_ids(client)
    expires = datetime.fromisoformat(second["expires_at"])
    client.set_clock(expires - timedelta(minutes=1))
    assert approval(client, second["approval_id"])["status"] == "pending"
    in_time = client.approve("kz", first["approval_id"], f"holder:{alice}")
    assert in_time.status_code == 202, in_time.text
    assert client.settle("kz", in_time.json()["transaction_id"])["status_name"] == "COMPLETED"
    assert in_time.json()["transaction_id"] not in kz
    kz = proposed_ids(client)  # with it and the share of proceeds it paid
    client.set_clock(expires)
    expired = approval(client, second["approval_id"])
    assert expired["status"] == "expired"
    assert datetime.fromisoformat(expired["expired_at"]) >= expires
    late = client.approve("kz", second["approval_id"], f"holder:{alice}")
    assert late.status_code == 409
    assert late.json()["detail"] == f"approval {second['approval_id']} is expired, not pending"
    assert proposed_ids(client) == kz


def test_decisions_the_registry_carries_out_itself_need_no_approval(
    client: StackClient, accounts: dict[str, int],
) -> None:
    """JP's withdrawals need approval when its operator starts one, not when the registry
    carries a decision out as its month ends."""
    decide = {"commitment_period": 1, "ground": "voluntary"}
    by_hand = client.decide("jp", "withdrawal", "AAU", 10, "JP-W-1", **decide)
    asked = pending(client.call("jp", "POST", f"/decisions/{by_hand['decision_id']}/execute"))
    assert asked["operation"] == "withdrawal"
    approved = client.approve("jp", asked["approval_id"])
    assert approved.status_code == 202, approved.text
    assert client.settle("jp", approved.json()["transaction_id"])["status_name"] == "COMPLETED"

    due = client.decide("jp", "withdrawal", "AAU", 15, "JP-W-2", **decide)
    client.set_clock(datetime.fromisoformat(due["executes_at"]), direct="jp")
    executed = client.ok("jp", "GET", f"/decisions/{due['decision_id']}")
    (transaction_id,) = executed["transaction_ids"]
    view = client.settle("jp", transaction_id)
    assert (view["status_name"], view["initiated_by"], view["approved_by"]) == (
        "COMPLETED", None, None)
    assert [a["approval_id"] for a in client.ok("jp", "GET", "/approvals")
            if a["operation"] == "withdrawal"] == [asked["approval_id"]]
