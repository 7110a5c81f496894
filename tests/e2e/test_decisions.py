"""Decisions of the authorised body through the real processes (Decree 684 cl. 22-29).

Withdrawal and replacement decisions are due one month after the receipt of the ITL
notice they answer, or after the decision; the registry carries out an unappealed one
by itself a day before that date, so that its transaction completes within the month.
An appeal suspends it: dismissed, the original date stands; upheld by a revision within
the month, the revision decides; left unanswered, it lapses when the month ends.
Withdrawals go to the cancellation account of their ground; retirement and cancellation
are decided after the end of the commitment period and go to that period's accounts.

The stack's clock starts in January 2013: the first commitment period has just ended.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from deploy.local.client import AUTHORISED_BODY, StackClient, poll
from services.registry.decisions import one_month_after

pytestmark = pytest.mark.e2e

CLOCK_START = "2013-01-15T00:00:00+00:00"
REGISTRIES = ("KZ",)
PARTY = 1
PPSR = 4
#: Cancellation, retirement and replacement accounts per commitment period: period 2
#: keeps the first numbers, period 1 adds 100.
VOLUNTARY_CANCELLATION = {1: 102, 2: 2}
RETIREMENT = {1: 103, 2: 3}
NON_COMPLIANCE_CANCELLATION = {1: 106, 2: 6}
ADMINISTRATIVE_CANCELLATION = {1: 108, 2: 8}
TCER_REPLACEMENT = {1: 109, 2: 9}
LEAD = timedelta(hours=24)  # DECISION_EXECUTION_LEAD_HOURS by default
TCER_PROJECT = {"project_id": "CDM-AR-9", "title": "Balkhash shelterbelts",
                "host_party": "UZ", "afforestation_reforestation": True}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def books(client: StackClient) -> list[dict[str, Any]]:
    return client.registry_totals("kz")


def read(client: StackClient, decision: dict[str, Any]) -> Any:
    return client.ok("kz", "GET", f"/decisions/{decision['decision_id']}")


def executed(client: StackClient, decision: dict[str, Any]) -> Any:
    """Wait until the decision's transaction completed; its (only) transaction, settled."""
    done = poll(lambda: read(client, decision), lambda d: d["state"] == "executed",
                f"decision {decision['decision_id']} executed")
    (transaction_id,) = done["transaction_ids"]
    return done, client.settle("kz", transaction_id)


def completed_at(view: dict[str, Any]) -> datetime:
    (entry,) = [h for h in view["history"] if h["status_name"] == "COMPLETED"]
    return at(entry["at"])


def appeal(client: StackClient, decision: dict[str, Any], grounds: str) -> Any:
    return client.call("kz", "POST", f"/decisions/{decision['decision_id']}/appeal",
                       json={"grounds": grounds}, headers=client.as_operator("kz"))


def by_body(client: StackClient, decision: dict[str, Any], action: str,
            body: dict[str, Any] | None = None) -> Any:
    return client.call("kz", "POST", f"/decisions/{decision['decision_id']}/{action}",
                       json=body or {}, headers=client.as_authorised_body("kz"))


def proposed(client: StackClient, response: Any) -> Any:
    assert response.status_code == 202, response.text
    return client.settle("kz", response.json()["transaction_id"])


@pytest.fixture(scope="module")
def kz(client: StackClient) -> dict[str, int]:
    """KZ with AAUs of both periods in its Party holding account, and one person."""
    client.set_assigned_amount("KZ", 1, 500_000, base_year_emissions=1_000_000)
    # emissions over period 2 exceed its assigned amount by 10 000: what PPSR units may
    # be retired for
    client.set_assigned_amount("KZ", 2, 600_000, reviewed_inventory=20_000,
                               period_emissions=610_000)
    for period, quantity in ((1, 100_000), (2, 200_000)):
        issued = client.issue("kz", "AAU", quantity, f"MEP-{period}", period=period)
        assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    alice = client.open_account("kz", "Alice Forestry LLP")["account_id"]
    return {"alice": alice}


# accounts per commitment period


def test_the_registry_keeps_its_cancellation_retirement_and_replacement_accounts_per_period(
    client: StackClient, kz: dict[str, int]
) -> None:
    accounts = {a["account_id"]: a for a in client.ok("kz", "GET", "/accounts")}
    for numbers, account_type in ((VOLUNTARY_CANCELLATION, 230), (RETIREMENT, 300),
                                  (NON_COMPLIANCE_CANCELLATION, 220),
                                  (ADMINISTRATIVE_CANCELLATION, 260),
                                  (TCER_REPLACEMENT, 411)):
        for period, number in numbers.items():
            account = accounts[number]
            assert (account["account_type"], account["commitment_period"]) == \
                (account_type, period)
            assert account["full_identifier"].startswith(f"KZ-{account_type}-{number}-{period}-")
    assert [a["account_id"] for a in accounts.values() if a["account_type"] == 100] == [PARTY]
    assert [a["account_id"] for a in accounts.values() if a["account_type"] == 130] == [PPSR]


# retirement and cancellation on a decision after the period (cl. 27-29)


def test_retirement_on_a_decision_after_the_period_retires_its_units_into_its_account(
    client: StackClient, kz: dict[str, int]
) -> None:
    during = client.call("kz", "POST", "/decisions", headers=client.as_authorised_body("kz"),
                         json={"kind": "retirement", "reference": "MEP-RET-2",
                               "unit_type": "AAU", "quantity": 1_000,
                               "commitment_period": 2})
    assert during.status_code == 422, during.text
    assert "cl. 28" in during.json()["detail"]
    assert "from 2021-01-01" in during.json()["detail"]
    assert not [d for d in client.ok("kz", "GET", "/decisions") if d["kind"] == "retirement"]

    party_cp1 = client.units_held("kz", PARTY, "AAU", 1)
    party_cp2 = client.units_held("kz", PARTY, "AAU", 2)
    decision = client.decide("kz", "retirement", "AAU", 20_000, "MEP-RET-1",
                             commitment_period=1)
    assert (decision["follow_up"], decision["due_at"]) == ("open", None)
    view = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                        json={"decision_id": decision["decision_id"]}))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    assert view["transaction_type_name"] == "RETIREMENT"
    assert view["acquiring"] == {"registry": "KZ", "account_type": 300,
                                 "account_id": RETIREMENT[1]}
    assert {b["applicable_commitment_period"] for b in view["blocks"]} == {1}
    assert client.units_held("kz", RETIREMENT[1], "AAU", 1) == 20_000
    assert client.units_held("kz", RETIREMENT[2], "AAU") == 0
    assert client.units_held("kz", PARTY, "AAU", 1) == party_cp1 - 20_000
    assert client.units_held("kz", PARTY, "AAU", 2) == party_cp2
    done = read(client, decision)
    assert (done["state"], done["follow_up"], done["used_quantity"]) == \
        ("executed", "done", 20_000)

    before = books(client)
    again = client.call("kz", "POST", "/transactions/retirement",
                        json={"decision_id": decision["decision_id"]})
    assert again.status_code == 409, again.text
    issuance = client.decide("kz", "issuance", "AAU", 10, "MEP-I-X")
    other = client.call("kz", "POST", "/transactions/retirement",
                        json={"decision_id": issuance["decision_id"]})
    assert other.status_code == 409
    assert "authorises a issuance, not a retirement" in other.json()["detail"]
    assert books(client) == before


def test_withdrawal_grounds_send_units_to_their_cancellation_account_of_the_period(
    client: StackClient, kz: dict[str, int]
) -> None:
    grounds = (("excess_issuance", 260, ADMINISTRATIVE_CANCELLATION[1]),
               ("criteria_not_met", 220, NON_COMPLIANCE_CANCELLATION[1]),
               ("voluntary", 230, VOLUNTARY_CANCELLATION[1]))
    for ground, account_type, account_id in grounds:
        decision = client.decide("kz", "withdrawal", "AAU", 500, f"MEP-W-{ground}",
                                 commitment_period=1, ground=ground)
        view = proposed(client, client.call(
            "kz", "POST", f"/decisions/{decision['decision_id']}/execute"))
        assert view["status_name"] == "COMPLETED", view["evaluation_results"]
        assert view["acquiring"] == {"registry": "KZ", "account_type": account_type,
                                     "account_id": account_id}, ground
        assert client.units_held("kz", account_id, "AAU", 1) == 500
        assert client.units_held("kz", account_id - 100, "AAU") == 0  # not period 2's account
        assert read(client, decision)["follow_up"] == "done"


# the month: from the notice's receipt, carried out and completed before it ends


def test_a_withdrawal_on_a_notice_is_due_a_month_after_its_receipt_and_completed_before(
    client: StackClient, kz: dict[str, int]
) -> None:
    notice, seen = client.send_notice(
        notice_type=2, target_value=300, commitment_period=2,
        action_due_date="2013-12-31", text="non-compliance")
    received = at(seen["received_at"])
    due = at(seen["due_at"])
    assert due == one_month_after(received)
    assert seen["follow_up"] == "due"

    client.set_clock(received + timedelta(days=10))
    decision = client.decide("kz", "withdrawal", "AAU", 300, "MEP-W-N2",
                             ground="criteria_not_met", notice_id=notice["notice_id"])
    assert at(decision["due_at"]) == due  # from the notice's receipt, not the decision
    assert at(decision["due_at"]) < at(decision["decided_at"]) + timedelta(days=28)
    assert at(decision["executes_at"]) == due - LEAD

    before = books(client)
    client.set_clock(due - LEAD - timedelta(hours=1))
    assert read(client, decision)["state"] == "recorded"
    assert books(client) == before

    client.set_clock(due - timedelta(hours=12))  # inside the last day before the due date
    done, view = executed(client, decision)
    assert view["transaction_type_name"] == "CANCELLATION"
    assert view["acquiring"]["account_type"] == 220
    assert view["acquiring"]["account_id"] == NON_COMPLIANCE_CANCELLATION[2]
    assert view["notification_id"] == notice["notice_id"]
    assert completed_at(view) < due
    assert at(done["executed_at"]) < due
    assert done["follow_up"] == "done"
    assert client.units_held("kz", NON_COMPLIANCE_CANCELLATION[2], "AAU", 2) == 300
    fulfilled = poll(lambda: client.ok("kz", "GET", f"/notices/{notice['notice_id']}"),
                     lambda n: n["status"] == 3, "KZ sees the notice completed")
    assert fulfilled["follow_up"] == "done"
    assert at(fulfilled["fulfilled_at"]) < due
    assert at(fulfilled["received_at"]) == received  # the receipt that counts stays


# appeals


def test_an_appeal_dismissed_leaves_the_original_date_and_the_decision_is_carried_out(
    client: StackClient, kz: dict[str, int]
) -> None:
    cancelled = client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU")
    decision = client.decide("kz", "withdrawal", "AAU", 200, "MEP-W-D", ground="voluntary")
    due = at(decision["due_at"])
    assert due == one_month_after(at(decision["decided_at"]))
    appealed = appeal(client, decision, "the units were issued lawfully")
    assert appealed.status_code == 200 and appealed.json()["follow_up"] == "suspended"

    before = books(client)
    client.set_clock(due - timedelta(hours=6))  # its execution moment passes, suspended
    assert read(client, decision)["state"] == "appealed"
    assert books(client) == before

    wrong = client.call("kz", "POST", f"/decisions/{decision['decision_id']}/dismiss-appeal",
                        json={})
    assert wrong.status_code == 403
    dismissed = by_body(client, decision, "dismiss-appeal", {"reasons": "no new facts"})
    assert dismissed.status_code == 200, dismissed.text
    assert at(dismissed.json()["due_at"]) == due
    assert dismissed.json()["appeal"]["outcome"] == "dismissed"
    # who appealed and who answered: the role and the person
    assert (dismissed.json()["appeal"]["by"], dismissed.json()["appeal"]["answered_by"]) == (
        "operator kz-operator-1", "authorised-body kz-ab-1")
    done, view = executed(client, decision)  # at once: its execution moment had passed
    assert at(done["due_at"]) == due
    assert completed_at(view) < due
    assert done["follow_up"] == "done"
    assert client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU") == cancelled + 200
    again = by_body(client, decision, "dismiss-appeal")
    assert again.status_code == 409


def test_an_appeal_upheld_by_a_revision_within_the_month_stops_the_withdrawal(
    client: StackClient, kz: dict[str, int]
) -> None:
    before = books(client)
    decision = client.decide("kz", "withdrawal", "AAU", 400, "MEP-W-R", ground="voluntary")
    first_due = at(decision["due_at"])
    wrong = client.call("kz", "POST", f"/decisions/{decision['decision_id']}/appeal",
                        json={"grounds": "x"}, headers=client.as_authorised_body("kz"))
    assert wrong.status_code == 403
    assert appeal(client, decision, "150 units at most").status_code == 200

    client.set_clock(first_due - timedelta(days=3))
    operator = client.call("kz", "POST", f"/decisions/{decision['decision_id']}/revise",
                           json={"quantity": 150})
    assert operator.status_code == 403
    revised = by_body(client, decision, "revise", {"quantity": 150})
    assert revised.status_code == 200, revised.text
    new_due = at(revised.json()["due_at"])
    assert revised.json()["follow_up"] == "due" and revised.json()["quantity"] == 150
    assert new_due > first_due and new_due - client.now() > timedelta(days=27)
    assert revised.json()["appeal"]["outcome"] == "revised"

    assert appeal(client, decision, "none at all").status_code == 200
    dropped = by_body(client, decision, "revise", {"drop": True})
    assert dropped.json()["follow_up"] == "dropped"
    client.set_clock(new_due + timedelta(days=1))
    assert read(client, decision)["transaction_ids"] == []
    assert books(client) == before


def test_a_revision_after_the_month_is_refused_and_the_unanswered_appeal_lapses(
    client: StackClient, kz: dict[str, int]
) -> None:
    cancelled = client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU")
    decision = client.decide("kz", "withdrawal", "AAU", 100, "MEP-W-L", ground="voluntary")
    due = at(decision["due_at"])
    assert appeal(client, decision, "please reconsider").status_code == 200

    client.set_clock(due + timedelta(hours=1))
    late = by_body(client, decision, "revise", {"drop": True})
    assert late.status_code == 409
    assert f"month for revising decision {decision['decision_id']} ended on " \
        f"{due.date()}" in late.json()["detail"]
    done, view = executed(client, decision)
    assert done["appeal"]["outcome"] == "lapsed"
    assert done["follow_up"] == "done_late"  # completed after its due date
    assert completed_at(view) > due
    assert client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU") == cancelled + 100


def test_an_appeal_after_the_month_is_refused(client: StackClient, kz: dict[str, int]) -> None:
    decision = client.decide("kz", "withdrawal", "AAU", 10**9, "MEP-W-3", ground="voluntary")
    client.set_clock(at(decision["due_at"]) + timedelta(hours=1))
    # more units than held: the registry's own execution is refused and stays overdue
    overdue = poll(lambda: read(client, decision), lambda d: d["follow_up"] == "overdue",
                   "overdue decision")
    assert overdue["state"] == "recorded"
    late = appeal(client, decision, "too late")
    assert late.status_code == 409
    assert "month for appeals ended" in late.json()["detail"]


def test_only_the_holder_of_the_decisions_account_or_the_operator_appeals(
    client: StackClient, kz: dict[str, int]
) -> None:
    alice = kz["alice"]
    bob = client.open_account("kz", "Bob Cement JSC")["account_id"]
    decision = client.decide("kz", "withdrawal", "AAU", 10, "MEP-W-A", ground="voluntary",
                             account_id=alice)
    path = f"/decisions/{decision['decision_id']}/appeal"
    for actor in (f"holder:{bob}", "holder:99999", f"holder:{PARTY}", AUTHORISED_BODY):
        response = client.call("kz", "POST", path, json={"grounds": "not mine"},
                               headers=client.as_actor("kz", actor))
        assert response.status_code == 403, (actor, response.text)
        assert f"the holder of account {alice} (the decision's) or the operator" in \
            response.json()["detail"]
    untouched = read(client, decision)
    assert (untouched["state"], untouched["appeal"]) == ("recorded", None)
    by_alice = client.call("kz", "POST", path, json={"grounds": "issued lawfully"},
                           headers=client.as_holder("kz", alice))
    assert by_alice.status_code == 200, by_alice.text
    assert by_alice.json()["follow_up"] == "suspended"
    assert by_alice.json()["appeal"]["by"] == f"holder:{alice} kz-holder-{alice}"

    # a decision about the Party holding account is appealed by the operator only
    party = client.decide("kz", "withdrawal", "AAU", 10, "MEP-W-P", ground="voluntary")
    for actor in (f"holder:{PARTY}", f"holder:{alice}", AUTHORISED_BODY):
        response = client.call("kz", "POST", f"/decisions/{party['decision_id']}/appeal",
                               json={"grounds": "x"}, headers=client.as_actor("kz", actor))
        assert response.status_code == 403, (actor, response.text)
        assert "government account" in response.json()["detail"]
    assert appeal(client, party, "the State disagrees").status_code == 200
    for appealed in (decision, party):
        assert by_body(client, appealed, "revise", {"drop": True}).status_code == 200


def test_a_revision_nobody_appealed_keeps_the_due_date_and_the_withdrawal_goes_ahead(
    client: StackClient, kz: dict[str, int]
) -> None:
    """Cl. 23, 26: a new month only for units appealed and revised; revising an
    unappealed decision again and again does not postpone it."""
    cancelled = client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU")
    decision = client.decide("kz", "withdrawal", "AAU", 300, "MEP-W-U", ground="voluntary")
    assert decision["decided_by"] == "authorised-body kz-ab-1"
    due = at(decision["due_at"])
    client.set_clock(due - timedelta(days=3))
    for quantity, member in ((120, 1), (100, 2)):  # two members of the authorised body
        revised = client.call("kz", "POST", f"/decisions/{decision['decision_id']}/revise",
                              json={"quantity": quantity},
                              headers=client.as_authorised_body("kz", member))
        assert revised.status_code == 200, revised.text
        assert at(revised.json()["due_at"]) == due
        assert (revised.json()["quantity"], revised.json()["follow_up"]) == (quantity, "due")
        assert revised.json()["appeal"] is None
    assert [(r["quantity"], r["by"]) for r in read(client, decision)["revisions"]] == [
        (120, "authorised-body kz-ab-1"), (100, "authorised-body kz-ab-2")]

    client.set_clock(due - timedelta(hours=12))
    done, view = executed(client, decision)
    assert view["quantity"] == 100
    assert completed_at(view) < due and at(done["due_at"]) == due
    assert done["follow_up"] == "done"
    assert client.units_held("kz", VOLUNTARY_CANCELLATION[2], "AAU") == cancelled + 100


# replacement on a decision


def test_a_replacement_decision_on_a_notice_is_carried_out_before_its_due_date(
    client: StackClient, kz: dict[str, int]
) -> None:
    alice = kz["alice"]
    client.ok("cdm", "POST", "/projects", json=TCER_PROJECT)
    request = client.ok("cdm", "POST", f"/projects/{TCER_PROJECT['project_id']}/issuances",
                        json={"unit_type": "TCER", "quantity": 500, "commitment_period": 1,
                              "acquiring_registry": "KZ",
                              "acquiring_account_type": 121, "acquiring_account_id": alice})
    request = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                   lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    assert request["state"] == "completed", request
    client.settle("cdm", request["forward_transaction"])
    used = client.decide("kz", "retirement", "TCER", 490, "MEP-RET-T", commitment_period=1,
                         account_id=alice)
    retired = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                           json={"decision_id": used["decision_id"]}))
    assert retired["status_name"] == "COMPLETED"
    assert client.units_held("kz", RETIREMENT[1], "TCER", 1) == 490

    # tCERs of period 1 expire at the end of period 2: notice 3 thirty days before
    client.set_clock(at("2020-12-01T00:00:00+00:00"))
    notice = poll(lambda: [n for n in client.ok("kz", "GET", "/notices")
                           if n["notice_type"] == 3 and n["status"] == 1],
                  lambda found: bool(found), "impending expiry notice")[0]
    assert notice["target_value"] == 490 and notice["follow_up"] == "due"
    due = at(notice["due_at"])
    client.set_clock(at(notice["received_at"]) + timedelta(days=3))
    decision = client.decide("kz", "replacement", "AAU", 490, "MEP-R-1", commitment_period=1,
                             notice_id=notice["notice_id"])
    assert at(decision["due_at"]) == due

    aau = client.units_held("kz", PARTY, "AAU", 1)
    client.set_clock(due - timedelta(hours=12))
    done, view = executed(client, decision)
    assert view["transaction_type_name"] == "REPLACEMENT"
    assert view["notification_id"] == notice["notice_id"]
    assert view["acquiring"]["account_id"] == TCER_REPLACEMENT[1]
    assert completed_at(view) < due and done["follow_up"] == "done"
    assert client.units_held("kz", TCER_REPLACEMENT[1], "AAU", 1) == 490
    assert client.units_held("kz", PARTY, "AAU", 1) == aau - 490
    assert client.ok("itl", "GET", f"/notices/{notice['notice_id']}")["status_name"] == \
        "COMPLETED"
    answered = poll(lambda: client.ok("kz", "GET", f"/notices/{notice['notice_id']}"),
                    lambda n: n["status"] == 3, "KZ sees notice 3 completed")
    assert answered["follow_up"] == "done"


# the previous period surplus reserve: retired through the same route


def test_units_of_the_surplus_reserve_are_retired_on_a_decision_after_period_2(
    client: StackClient, kz: dict[str, int]
) -> None:
    client.set_clock(at("2021-01-01T00:00:00+00:00"))
    carried = proposed(client, client.call("kz", "POST", "/transactions/carry-over", json={
        "unit_type": "AAU", "quantity": 5_000, "commitment_period": 1}))
    assert carried["status_name"] == "COMPLETED"
    decision = client.decide("kz", "retirement", "AAU", 5_000, "MEP-RET-PPSR",
                             commitment_period=2, account_id=PPSR)
    view = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                        json={"decision_id": decision["decision_id"],
                                              "quantity": 2_000}))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    assert view["transferring"]["account_type"] == 130
    assert view["acquiring"]["account_id"] == RETIREMENT[2]
    assert client.units_held("kz", RETIREMENT[2], "AAU", 2) == 2_000
    assert client.units_held("kz", PPSR, "AAU", 2) == 3_000
    assert read(client, decision)["used_quantity"] == 2_000
    assert read(client, decision)["state"] == "recorded"  # 3 000 still to retire
