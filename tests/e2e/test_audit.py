"""The audit trail through the real processes (docs/adr/0019): each kind of change (an
API command, a decision and its execution, an approval, a message handled, due work) is
recorded once with who, when and what, in the service that made it; queries by account,
transaction and actor return exactly the matching records; refusals record nothing.
A redelivered message and the store planner: tests/integration/test_audit_trail.py.

The test that moves the clock a month comes last.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from shared.bounds import CLOCK_MAX, CLOCK_MIN

pytestmark = pytest.mark.e2e

CLOCK_START = "2013-03-01T00:00:00+00:00"
PARTY = 1
#: The simulation clock's whole range: every record.
EVERYTHING = (CLOCK_MIN.isoformat(), CLOCK_MAX.isoformat())


@pytest.fixture(scope="module")
def kz(client: StackClient) -> dict[str, Any]:
    """KZ with period-2 AAUs; Alice in KZ and Zora in CH."""
    client.set_assigned_amount("KZ", 2, 100_000, reviewed_inventory=2_000)
    issued = client.issue("kz", "AAU", 100_000, "MEP-AUDIT-1")
    client.settle("kz", issued["transaction_id"])
    alice = client.open_account("kz", "Alice Audit LLP")["account_id"]
    zora = client.open_account("ch", "Zora Audit AG")["account_id"]
    moved = client.transfer("kz", PARTY, alice, "AAU", 5_000)
    client.settle("kz", moved.json()["transaction_id"])
    return {"alice": alice, "zora": zora, "issuance": issued["transaction_id"]}


def records(client: StackClient, service: str, headers: dict[str, str] | None = None,
            limit: int = 1000, window: tuple[str, str] | None = None,
            **filters: Any) -> list[dict[str, Any]]:
    """Every record matching ``filters`` (and ``window``: from, to), page after page."""
    out: list[dict[str, Any]] = []
    after = None
    if window is not None:
        filters = {**filters, "from": window[0], "to": window[1]}
    while True:
        params = {**filters, "limit": limit, **({"after": after} if after else {})}
        page = client.ok(service, "GET", "/audit", params=params, **(
            {"headers": headers} if headers else {}))
        out += page["records"]
        after = page["next_after"]
        if after is None:
            return out


def everything(client: StackClient, service: str) -> list[dict[str, Any]]:
    return records(client, service, window=EVERYTHING)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["record_id"] for r in rows]


def test_an_api_command_is_recorded_with_who_when_and_what(
    client: StackClient, kz: dict[str, Any],
) -> None:
    before = client.now("kz")
    opened = client.open_account("kz", "Recorded Holder LLP")
    blocked = client.ok("kz", "POST", f"/accounts/{opened['account_id']}/block",
                        json={"reason": "court order 7"}, headers=client.as_operator("kz", 2))
    after = client.now("kz")
    key = f"KZ:{opened['account_id']}"
    rows = records(client, "kz", account=opened["account_id"])
    assert [r["action"] for r in rows] == ["account_opened", "account_blocked"]
    assert records(client, "kz", account=key) == rows
    first, second = rows
    assert first["actor"] == {"kind": "person", "id": "kz-operator-1", "role": "operator",
                              "name": "operator kz-operator-1", "message_id": None,
                              "message_type": None, "work": None}
    assert (first["service"], first["accounts"], first["transaction_id"]) == ("KZ", [key], None)
    assert first["details"]["holder_name"] == "Recorded Holder LLP"
    assert first["details"]["full_identifier"] == opened["full_identifier"]
    # the store keeps milliseconds
    assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(first["at"]) <= after
    assert (second["actor"]["id"], second["details"]["reason"]) == ("kz-operator-2",
                                                                    "court order 7")
    assert blocked["status_history"][-1]["by"] == "operator kz-operator-2"


def test_an_approval_and_the_messages_of_its_transaction_are_recorded_once(
    client: StackClient, kz: dict[str, Any],
) -> None:
    alice = kz["alice"]
    asked = client.transfer("kz", alice, kz["zora"], "AAU", 100, "CH", approve=False).json()
    approved = client.approve("kz", asked["approval_id"], f"holder:{alice}")
    tx = approved.json()["transaction_id"]
    client.settle("kz", tx)

    requested = records(client, "kz", actor=f"kz-holder-{alice}")
    assert [r["action"] for r in requested if r["approval_id"] == asked["approval_id"]] == [
        "approval_requested"]
    by_approver = [r for r in records(client, "kz", actor=f"kz-holder-{alice}-2")
                   if r["transaction_id"] == tx]
    assert [r["action"] for r in by_approver] == ["transaction_proposed", "approval_approved"]
    assert {r["actor"]["role"] for r in by_approver} == {f"holder:{alice}"}
    assert by_approver[1]["approval_id"] == asked["approval_id"]
    assert by_approver[0]["accounts"] == sorted([f"KZ:{alice}", f"CH:{kz['zora']}"])

    # KZ: each message of the transaction from the ITL handled and recorded once
    trail = records(client, "kz", transaction=tx)
    handled = [r for r in trail if r["action"] == "message_handled"]
    assert {r["actor"]["kind"] for r in handled} == {"message"}
    assert {r["actor"]["id"] for r in handled} == {"ITL"}
    journal = client.ok("itl", "GET", "/messages", params={"correlation_id": tx})
    sent_to_kz = sorted(m["message_id"] for m in journal
                        if m["direction"] == "out" and m["recipient"] == "KZ")
    assert sent_to_kz
    assert sorted(r["actor"]["message_id"] for r in handled) == sent_to_kz
    changes = [r for r in trail if r["action"] == "transaction_status_changed"]
    assert changes and {r["actor"]["kind"] for r in changes} == {"message"}
    assert changes[-1]["details"]["statuses"][-1] == "COMPLETED"

    # the ITL: one record per message its journal shows it received
    received = sorted(m["message_id"] for m in journal if m["direction"] == "in")
    at_itl = records(client, "itl", transaction=tx)
    assert sorted(r["actor"]["message_id"] for r in at_itl
                  if r["action"] == "message_handled") == received
    checked = [r for r in at_itl if r["action"] == "proposal_checked"]
    assert [(r["actor"]["kind"], r["actor"]["id"], r["actor"]["message_type"])
            for r in checked] == [("message", "KZ", "ProposalSubmitted")]


def test_queries_by_account_transaction_actor_and_window_return_exactly_the_matching_records(
    client: StackClient, kz: dict[str, Any],
) -> None:
    every = everything(client, "kz")
    assert len(every) == len({r["record_id"] for r in every})
    times = [r["at"] for r in every]
    assert times == sorted(times, key=datetime.fromisoformat)
    alice, tx = f"KZ:{kz['alice']}", kz["issuance"]
    expected_by = {
        "account": [r for r in every if alice in r["accounts"]],
        "transaction": [r for r in every if r["transaction_id"] == tx],
        "actor": [r for r in every if r["actor"]["id"] == "kz-operator-1"],
    }
    for name, value in (("account", alice), ("transaction", tx), ("actor", "kz-operator-1")):
        assert expected_by[name], name
        where: dict[str, Any] = {name: value}
        assert ids(records(client, "kz", **where)) == ids(expected_by[name]), name
        # pages of 2 give the same records, once each
        assert ids(records(client, "kz", limit=2, **where)) == ids(expected_by[name]), name
    middle = every[len(every) // 3]["at"]
    end = every[2 * len(every) // 3]["at"]
    window = [r for r in every if middle <= r["at"] < end]
    assert ids(records(client, "kz", window=(middle, end))) == ids(window)
    both = [r for r in expected_by["actor"] if middle <= r["at"] < end]
    assert ids(records(client, "kz", actor="kz-operator-1", window=(middle, end))) == ids(both)


def test_a_holder_reads_its_accounts_records_and_the_itl_its_administrator(
    client: StackClient, kz: dict[str, Any],
) -> None:
    alice = kz["alice"]
    as_alice = client.as_holder("kz", alice)
    own = records(client, "kz", headers=as_alice)
    assert own and {f"KZ:{alice}" in r["accounts"] for r in own} == {True}
    assert ids(own) == ids([r for r in everything(client, "kz")
                            if f"KZ:{alice}" in r["accounts"]])
    other = client.call("kz", "GET", "/audit", params={"account": PARTY}, headers=as_alice)
    assert other.status_code == 403
    assert client.call("kz", "GET", "/audit", headers=client.as_operator("ch")
                       ).status_code == 403
    # the ITL's trail: its administrator only; accounts named with their registry
    assert client.call("itl", "GET", "/audit", headers=client.as_operator("kz")
                       ).status_code == 403
    unnamed = client.call("itl", "GET", "/audit", params={"account": "1001"})
    assert unnamed.status_code == 422
    assert [e["loc"] for e in unnamed.json()["detail"]] == [["query", "account"]]
    periods = [r for r in records(client, "itl", actor="itl-admin")
               if r["action"] == "party_period_recorded"]
    assert periods and periods[0]["actor"]["role"] == "administrator"
    assert periods[0]["details"]["party"] == "KZ"
    at_itl = records(client, "itl", account=f"KZ:{alice}")
    assert at_itl and {f"KZ:{alice}" in r["accounts"] for r in at_itl} == {True}
    # bad filters: 422 naming the field
    for params, field in (({"account": "KZ:0"}, "account"),
                          ({"account": f"KZ:{2**63}"}, "account"),
                          ({"after": "nope"}, "after"), ({"limit": 0}, "limit"),
                          ({"from": "2014-01-01T00:00:00Z", "to": "2013-01-01T00:00:00Z"},
                           "to")):
        bad = client.call("kz", "GET", "/audit", params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert field in bad.text, (params, bad.text)


def test_a_refused_request_records_no_change(
    client: StackClient, kz: dict[str, Any],
) -> None:
    alice = kz["alice"]
    before = everything(client, "kz")
    as_alice = client.as_holder("kz", alice)
    forbidden = client.call("kz", "POST", "/accounts", json={"holder_name": "X"},
                            headers=as_alice)
    assert forbidden.status_code == 403
    too_many = client.transfer("kz", alice, PARTY, "AAU", 10**9, target_type=100)
    assert too_many.status_code == 422, too_many.text
    pending = client.transfer("kz", alice, kz["zora"], "AAU", 10**9, "CH", approve=False)
    assert pending.status_code == 422
    invalid = client.call("kz", "POST", "/decisions", json={"kind": "issuance"},
                          headers=client.as_authorised_body("kz"))
    assert invalid.status_code == 422
    after = everything(client, "kz")
    assert [r for r in after if r["actor"]["id"] in (f"kz-holder-{alice}", "kz-ab-1")
            ] == [r for r in before if r["actor"]["id"] in (f"kz-holder-{alice}", "kz-ab-1")]
    assert [r for r in after if f"KZ:{alice}" in r["accounts"]] == [
        r for r in before if f"KZ:{alice}" in r["accounts"]]


def test_the_cdm_registry_records_its_projects(
    client: StackClient, kz: dict[str, Any],
) -> None:
    client.ok("cdm", "POST", "/projects", json={
        "project_id": "CDM-AUD-1", "title": "Audited wind", "host_party": "UZ"})
    (row,) = [r for r in records(client, "cdm", actor="cdm-operator-1")
              if r["action"] == "cdm_project_registered"]
    assert (row["service"], row["actor"]["role"], row["details"]["_id"]) == (
        "CDM", "operator", "CDM-AUD-1")


# the clock moves from here on


def test_a_decision_carried_out_when_due_and_an_expiry_are_recorded_as_the_registry(
    client: StackClient, kz: dict[str, Any],
) -> None:
    alice = kz["alice"]
    asked = client.transfer("kz", alice, kz["zora"], "AAU", 5, "CH", approve=False).json()
    decided = client.decide("kz", "withdrawal", "AAU", 10, "MEP-W-AUDIT",
                            ground="voluntary")
    client.set_clock(datetime.fromisoformat(decided["executes_at"]))
    done = poll(lambda: client.ok("kz", "GET", f"/decisions/{decided['decision_id']}"),
                lambda d: d["transaction_ids"], "the decision carried out")
    (tx,) = done["transaction_ids"]
    client.settle("kz", tx)
    trail = records(client, "kz", transaction=tx)
    recorded = [r for r in records(client, "kz", actor="kz-ab-1")
                if r["decision_id"] == decided["decision_id"]]
    assert [r["action"] for r in recorded] == ["decision_recorded"]
    assert recorded[0]["actor"]["role"] == "authorised-body"
    by_registry = [r for r in trail if r["actor"]["kind"] == "service"]
    assert [r["action"] for r in by_registry][:1] == ["transaction_proposed"]
    assert {(r["actor"]["id"], r["actor"]["work"]) for r in by_registry} == {
        ("KZ", "DecisionDesk.execute_due")}
    executing = [r for r in records(client, "kz", actor="KZ")
                 if r["decision_id"] == decided["decision_id"]]
    assert "decision_executing" in [r["action"] for r in executing]
    # the approval left pending expired with the month, as the registry's due work
    (expired,) = [r for r in records(client, "kz", actor="KZ")
                  if r["approval_id"] == asked["approval_id"]]
    assert (expired["action"], expired["actor"]["work"]) == (
        "approval_expired", "ApprovalDesk.expire_due")
    assert expired["accounts"] == [f"KZ:{alice}"]
    # who moved the clock
    (moved,) = [r for r in records(client, "kz", actor="stack-clock")
                if r["action"] == "clock_set"]
    assert moved["actor"]["role"] == "clock"
    assert datetime.fromisoformat(moved["at"]) - datetime.fromisoformat(
        decided["executes_at"]) < timedelta(minutes=5)
