"""Every operation of the Rules through the real processes, each accepted once and refused
once with its response code and holdings unchanged; actors; notices; tCER expiry and
replacement as the simulation clock moves. Decisions with their month, and retirement on
a decision: tests/e2e/test_decisions.py.

The stack's clock starts in January 2013: the first commitment period has just ended.
The tests run in time order: carry-over after the first period's true-up (November
2015), the first period's tCERs expiring at the end of the second period (2020).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from deploy.local.client import AUTHORISED_BODY, StackClient, poll

pytestmark = pytest.mark.e2e

CLOCK_START = "2013-01-15T00:00:00+00:00"
PARTY = 1
PPSR = 4
NON_COMPLIANCE = 6
# cancellation, retirement and replacement accounts of period 1: period 2's number + 100
VOLUNTARY_CANCELLATION_CP1 = 102
RETIREMENT_CP1 = 103
TCER_REPLACEMENT_CP1 = 109
AA_CP1, AA_CP2 = 500_000, 600_000
#: Base-year emissions: A/R CDM credits up to 1 % x years (50 000 in period 1).
BASE_YEAR = 1_000_000


def proposed(client: StackClient, registry: str, response: Any) -> Any:
    """Settle a proposal the registry accepted (202) and return its final view."""
    assert response.status_code == 202, response.text
    return client.settle(registry, response.json()["transaction_id"])


def kz_books(client: StackClient) -> list[dict[str, Any]]:
    return client.registry_totals("kz")


@pytest.fixture(scope="module")
def kz(client: StackClient) -> dict[str, int]:
    """KZ with AAUs of both periods in its Party holding account."""
    client.set_assigned_amount("KZ", 1, AA_CP1, base_year_emissions=BASE_YEAR)
    # the reviewed inventory makes the reserve 8 x 20 000 = 160 000, below 90 % of AA
    party = client.set_assigned_amount("KZ", 2, AA_CP2, reviewed_inventory=20_000,
                                       base_year_emissions=BASE_YEAR)
    assert party["commitment_period_reserve"] == 160_000
    for period, quantity in ((1, 100_000), (2, 200_000)):
        issued = client.issue("kz", "AAU", quantity, f"MEP-{period}", period=period)
        assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    return {"alice": alice, "zora": zora}


def cdm_issue(client: StackClient, project: dict[str, Any], **issuance: Any) -> Any:
    if client.call("cdm", "GET", f"/projects/{project['project_id']}").status_code == 404:
        client.ok("cdm", "POST", "/projects", json=project)
    request = client.ok("cdm", "POST", f"/projects/{project['project_id']}/issuances",
                        json={"acquiring_registry": "KZ", "acquiring_account_type": 100,
                              "acquiring_account_id": PARTY, **issuance})
    done = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    if done["forward_transaction"]:
        client.settle("cdm", done["forward_transaction"])  # credited in KZ too
    return done


# actors


def test_each_operation_is_refused_with_403_to_the_wrong_actor(
    client: StackClient, kz: dict[str, int]
) -> None:
    alice = kz["alice"]
    cases = [
        ("holder:1", "POST", "/accounts", {"holder_name": "X"}, "started by the operator"),
        (AUTHORISED_BODY, "POST", "/transactions/retirement",
         {"decision_id": "D1"}, "not by the authorised body"),
        ("operator", "POST", "/decisions",
         {"kind": "issuance", "reference": "R", "unit_type": "AAU", "quantity": 1},
         "started by the authorised body"),
        ("operator", "POST", "/transactions/internal-transfer",
         {"transferring_account_id": alice, "acquiring_account_id": PARTY,
          "acquiring_account_type": 100, "unit_type": "AAU", "quantity": 1},
         f"holder of account {alice}"),
        (f"holder:{alice}", "POST", "/transactions/internal-transfer",
         {"transferring_account_id": PARTY, "acquiring_account_id": alice,
          "unit_type": "AAU", "quantity": 1}, "government account"),
    ]
    before = kz_books(client)
    for actor, method, path, body, reason in cases:
        response = client.call("kz", method, path, json=body,
                               headers=client.as_actor("kz", actor))
        assert response.status_code == 403, (actor, path, response.text)
        assert reason in response.json()["detail"], response.text
    # CH's operator has no role at KZ; without a token nobody is anybody
    stranger = client.call("kz", "POST", "/transactions/retirement", json={"decision_id": "D1"},
                           headers=client.as_operator("ch"))
    assert stranger.status_code == 403
    assert "ch-operator-1, who has no role at this registry" in stranger.json()["detail"]
    missing = client.http.post(f"{client.urls['kz']}/transactions/retirement",
                               json={"decision_id": "D1"}, headers={"X-Actor": "operator"})
    assert missing.status_code == 401 and "bearer token" in missing.json()["detail"]
    assert kz_books(client) == before


# 1. issuance: tests/e2e/test_flows.py (a, and 4001)

# 2. conversion


def test_track_1_conversion_on_a_decision_turns_aaus_into_erus_in_their_account(
    client: StackClient, kz: dict[str, int]
) -> None:
    aau_before = client.units_held("kz", PARTY, "AAU", 2)
    decision = client.decide("kz", "conversion", "AAU", 1_000, "MEP-JI-1",
                             project_id="KZ-JI-0001")
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/conversion", json={
        "unit_type": "AAU", "quantity": 1_000, "project_id": "KZ-JI-0001", "track": 1,
        "decision_id": decision["decision_id"]}))
    assert view["status_name"] == "COMPLETED"
    assert client.units_held("kz", PARTY, "AAU", 2) == aau_before - 1_000
    # 2 % of the ERUs a conversion issues go to the Adaptation Fund as their own transfer,
    # proposed as the conversion completes (1/CMP.8 para 21): the books are read once it
    # is final, since it may complete before or after the conversion's answer is read
    (share,) = client.settle_share_of_proceeds("kz")
    assert (share["supplementary_type"], share["quantity"], share["status_name"]) == (
        49, 20, "COMPLETED")
    erus = [b for b in client.holdings("kz", PARTY)["blocks"]
            if b["unit_type"] == "ERU_FROM_AAU"]
    assert sum(b["quantity"] for b in erus) == 1_000 - 20
    assert {b["project_id"] for b in erus} == {"KZ-JI-0001"}
    register = client.ok("itl", "GET", "/units", params={"registry": "KZ", "unit_type": 3})
    assert sum(b["quantity"] for b in register if b["registry"] == "KZ") == 1_000 - 20
    assert client.ok("kz", "GET", f"/decisions/{decision['decision_id']}")["state"] == "executed"
    assert client.units_held("kz", PARTY, "ERU_FROM_AAU") == 980
    assert client.units_held("cdm", 1100, "ERU_FROM_AAU") == 20


def test_track_2_conversion_without_a_jisc_determination_is_refused_with_4002(
    client: StackClient, kz: dict[str, int]
) -> None:
    before = kz_books(client)
    body = {"unit_type": "AAU", "quantity": 500, "project_id": "KZ-JI-0002", "track": 2}
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/conversion",
                                              json=body))
    assert view["status_name"] == "TERMINATED"
    assert view["response_codes"] == [4002]
    assert kz_books(client) == before
    client.ok("itl", "PUT", "/ji-projects/KZ-JI-0002",
              json={"host_party": "KZ", "track": 2, "approved_quantity": 500})
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/conversion",
                                              json=body))
    assert view["status_name"] == "COMPLETED"
    assert client.ok("itl", "GET", "/units", params={"registry": "KZ", "unit_type": 3})
    client.settle_share_of_proceeds("kz")


# 3. external transfer of ERUs (AAUs: test_flows.py)


def test_erus_leave_the_registry_only_on_a_decision(
    client: StackClient, kz: dict[str, int]
) -> None:
    body = {"transferring_account_id": PARTY, "acquiring_registry": "CH",
            "acquiring_account_id": kz["zora"], "unit_type": "ERU_FROM_AAU", "quantity": 100}
    before = kz_books(client)
    refused = client.call("kz", "POST", "/transactions/external-transfer", json=body)
    assert refused.status_code == 422
    assert refused.json()["response_code"] == 2001
    assert kz_books(client) == before
    decision = client.decide("kz", "external_transfer", "ERU_FROM_AAU", 100, "MEP-ERU-1")
    view = proposed(client, "kz", client.propose(
        "kz", "/transactions/external-transfer",
        {**body, "decision_id": decision["decision_id"]}))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    assert client.units_held("ch", kz["zora"], "ERU_FROM_AAU") == 100
    # the ERUs issued by converting period-2 AAUs paid their 2 % first
    shares = {r["kind"]: r for r in client.ok("kz", "GET", "/share-of-proceeds")}
    eru = shares["eru_issuance"]
    assert (eru["transferred"], eru["due"], eru["contributed"], eru["owed"]) == (
        1_500, 30, 30, 0)
    client.settle_share_of_proceeds("kz")
    assert client.units_held("cdm", 1100, "ERU_FROM_AAU") == 30


# 5. withdrawal on an ITL notice (on a decision: test_decisions.py)


def test_withdrawal_on_an_itl_notice_fulfils_it_and_a_misfit_gets_4005(
    client: StackClient, kz: dict[str, int]
) -> None:
    notice, seen = client.send_notice(
        notice_type=2, target_value=300, commitment_period=2,
        action_due_date="2013-12-31", text="non-compliance")
    assert "non-compliance cancellation account" in seen["required_action"]
    before = kz_books(client)
    misfit = proposed(client, "kz", client.call("kz", "POST", "/transactions/cancellation", json={
        "unit_type": "AAU", "quantity": 300, "account_type": 230,
        "notice_id": notice["notice_id"]}))
    assert misfit["response_codes"] == [4005]
    assert kz_books(client) == before
    done = proposed(client, "kz", client.call("kz", "POST", "/transactions/cancellation", json={
        "unit_type": "AAU", "quantity": 300, "account_type": 220,
        "notice_id": notice["notice_id"]}))
    assert done["status_name"] == "COMPLETED"
    assert client.units_held("kz", NON_COMPLIANCE, "AAU") == 300
    at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
    assert at_itl["status_name"] == "COMPLETED"
    assert at_itl["transactions"] == [done["transaction_id"]]
    poll(lambda: client.ok("kz", "GET", f"/notices/{notice['notice_id']}"),
         lambda n: n["status"] == 3, "KZ sees the notice completed")


def kz_aau_wire(start: int, end: int) -> dict[str, Any]:
    return {"serial_start": start, "serial_end": end, "originating_registry": "KZ",
            "unit_type": 1, "original_commitment_period": 2,
            "applicable_commitment_period": 2}


def notice_in_kz(client: StackClient, **fields: Any) -> Any:
    notice = client.ok("itl", "POST", "/notices", json={"registry": "KZ", **fields})
    poll(lambda: client.call("kz", "GET", f"/notices/{notice['notice_id']}"),
         lambda r: r.status_code == 200, f"notice {notice['notice_id']} in KZ")
    return notice


def moved(view: dict[str, Any]) -> list[tuple[int, int]]:
    return [(b["serial_start"], b["serial_end"]) for b in view["blocks"]]


def test_a_notice_listing_blocks_is_fulfilled_with_those_blocks_or_refused_4013(
    client: StackClient, kz: dict[str, int]
) -> None:
    """The ITL lists the blocks to cancel (net source, notice 1); the registry takes them,
    not its lowest serials, whether the operator cancels on the notice or a withdrawal
    decision answering it is carried out; it refuses before proposing (4013) when the
    account does not hold them."""
    top = max((b for b in client.holdings("kz", PARTY)["blocks"]
               if b["unit_type"] == "AAU" and b["applicable_commitment_period"] == 2
               and not b["reserved_by"]), key=lambda b: b["serial_end"])
    end = top["serial_end"]
    assert top["serial_start"] < end - 300  # the listed units are not the lowest
    listed = (end - 49, end)
    notice = notice_in_kz(client, notice_type=1, unit_type="AAU", commitment_period=2,
                          target_value=50, blocks=[kz_aau_wire(*listed)],
                          action_due_date="2013-12-31", text="net source")
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/cancellation", json={
        "unit_type": "AAU", "quantity": 50, "commitment_period": 2, "account_type": 210,
        "notice_id": notice["notice_id"]}))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    assert moved(view) == [listed]
    at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
    assert (at_itl["status_name"], at_itl["transactions"]) == (
        "COMPLETED", [view["transaction_id"]])

    two_ranges = [(end - 199, end - 160), (end - 99, end - 70)]
    second = notice_in_kz(client, notice_type=1, unit_type="AAU", commitment_period=2,
                          target_value=70, blocks=[kz_aau_wire(*r) for r in two_ranges],
                          action_due_date="2013-12-31")
    decision = client.decide("kz", "withdrawal", "AAU", 70, "MEP-W-NS",
                             ground="criteria_not_met", notice_id=second["notice_id"])
    executed = proposed(client, "kz", client.call(
        "kz", "POST", f"/decisions/{decision['decision_id']}/execute"))
    assert executed["status_name"] == "COMPLETED", executed["evaluation_results"]
    assert executed["acquiring"]["account_type"] == 210
    assert moved(executed) == two_ranges
    assert client.ok("itl", "GET", f"/notices/{second['notice_id']}")["status_name"] == \
        "COMPLETED"

    # the listed units are cancelled already: the Party holds none of them any more
    third = notice_in_kz(client, notice_type=1, unit_type="AAU", commitment_period=2,
                         target_value=50, blocks=[kz_aau_wire(*listed)])
    before = kz_books(client)
    refused = client.call("kz", "POST", "/transactions/cancellation", json={
        "unit_type": "AAU", "quantity": 50, "commitment_period": 2, "account_type": 210,
        "notice_id": third["notice_id"]})
    assert refused.status_code == 422, refused.text
    assert refused.json() == {"response_code": 4013, "detail": (
        f"notice {third['notice_id']} lists the unit blocks KZ {listed[0]}-{listed[1]}; "
        "account 1 holds 0 available AAU units of this period among them, fewer than the "
        "50 requested")}
    late = client.decide("kz", "withdrawal", "AAU", 50, "MEP-W-NS2",
                         ground="criteria_not_met", notice_id=third["notice_id"])
    again = client.call("kz", "POST", f"/decisions/{late['decision_id']}/execute")
    assert again.status_code == 422
    assert again.json()["response_code"] == 4013
    assert client.ok("kz", "GET", f"/decisions/{late['decision_id']}")["state"] == "recorded"
    assert kz_books(client) == before
    assert client.ok("itl", "GET", f"/notices/{third['notice_id']}")["transactions"] == []
    dropped = client.call("kz", "POST", f"/decisions/{late['decision_id']}/revise",
                          json={"drop": True}, headers=client.as_authorised_body("kz"))
    assert dropped.status_code == 200, dropped.text


# 6. change of expiry date (lCERs)


LCER_PROJECT = {"project_id": "CDM-AR-8", "title": "Altai reforestation", "host_party": "UZ",
                "afforestation_reforestation": True, "crediting_period_end": "2030-06-30"}


def test_expiry_date_change_on_a_notice_reaches_lcers_in_the_retirement_account(
    client: StackClient, kz: dict[str, int]
) -> None:
    contradicting = client.call("cdm", "POST", "/projects", json=LCER_PROJECT)
    assert contradicting.status_code == 201
    refused = client.call("cdm", "POST", "/projects/CDM-AR-8/issuances", json={
        "unit_type": "LCER", "quantity": 100, "commitment_period": 1, "acquiring_registry": "KZ",
        "acquiring_account_type": 100, "acquiring_account_id": PARTY,
        "expiry_date": "2030-06-29"})
    assert refused.status_code == 422
    assert refused.json()["response_code"] == 4012  # not the crediting period's end
    request = cdm_issue(client, LCER_PROJECT, unit_type="LCER", quantity=100,
                        commitment_period=1)
    assert request["state"] == "completed", request
    decision = client.decide("kz", "retirement", "LCER", 40, "MEP-RET-L1", commitment_period=1)
    assert proposed(client, "kz", client.call(
        "kz", "POST", "/transactions/retirement",
        json={"decision_id": decision["decision_id"]}))["status_name"] == "COMPLETED"
    blocks = [b for b in client.holdings("kz", RETIREMENT_CP1)["blocks"]
              if b["unit_type"] == "LCER"]
    assert {b["expiry_date"] for b in blocks} == {"2030-06-30"}
    wire = [{"serial_start": b["serial_start"], "serial_end": b["serial_end"],
             "originating_registry": "CDM", "unit_type": 7, "original_commitment_period": 1,
             "applicable_commitment_period": 1, "project_id": "CDM-AR-8",
             "expiry_date": "2030-06-30"} for b in blocks]
    notice, _ = client.send_notice(
        notice_type=9, target_value=40, blocks=wire,
        text="crediting period renewed")
    before = kz_books(client)
    wrong = client.call("kz", "POST", "/transactions/expiry-date-change", json={
        "account_id": kz["alice"], "notice_id": notice["notice_id"],
        "new_expiry_date": "2037-06-30"})
    assert wrong.status_code == 422
    assert wrong.json()["response_code"] == 3002
    assert kz_books(client) == before
    # a date in the past would end the units at once: refused, and nothing changes
    past = proposed(client, "kz", client.call("kz", "POST", "/transactions/expiry-date-change",
                                              json={"account_id": RETIREMENT_CP1,
                                                    "notice_id": notice["notice_id"],
                                                    "new_expiry_date": "2000-01-01"}))
    assert past["response_codes"] == [4012]
    assert kz_books(client) == before
    # the retired lCERs are the ones whose expiry matters: their date changes in place
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/expiry-date-change",
                                              json={"account_id": RETIREMENT_CP1,
                                                    "notice_id": notice["notice_id"],
                                                    "new_expiry_date": "2037-06-30"}))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    retired = [b for b in client.holdings("kz", RETIREMENT_CP1)["blocks"]
               if b["unit_type"] == "LCER"]
    assert {b["expiry_date"] for b in retired} == {"2037-06-30"}
    assert sum(b["quantity"] for b in retired) == 40
    at_itl = client.ok("itl", "GET", "/units", params={"registry": "KZ", "unit_type": 7})
    assert {b["expiry_date"] for b in at_itl if b["account_id"] == RETIREMENT_CP1} == \
        {"2037-06-30"}
    assert client.ok("itl", "GET", f"/notices/{notice['notice_id']}")["status_name"] == \
        "COMPLETED"


# 7. cancellation


def test_cancellation_is_decided_after_the_end_of_the_period(
    client: StackClient, kz: dict[str, int]
) -> None:
    before = kz_books(client)
    refused = client.call("kz", "POST", "/decisions", headers=client.as_authorised_body("kz"),
                          json={"kind": "cancellation", "reference": "MEP-C-2",
                                "unit_type": "AAU", "quantity": 100,
                                "cancellation_account_type": 230})
    assert refused.status_code == 422
    assert "after the end of the commitment period (2020)" in refused.json()["detail"]
    assert "cl. 28" in refused.json()["detail"]
    assert kz_books(client) == before
    decision = client.decide("kz", "cancellation", "AAU", 1_000, "MEP-C-1",
                             commitment_period=1)
    body = {"unit_type": "AAU", "quantity": 1_000, "commitment_period": 1,
            "account_type": 230, "decision_id": decision["decision_id"]}
    wrong_period = client.call("kz", "POST", "/transactions/cancellation",
                               json={**body, "account_id": 2})  # period 2's account
    assert wrong_period.status_code == 422
    assert wrong_period.json()["response_code"] == 5903
    assert kz_books(client) == before
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/cancellation",
                                              json=body))
    assert view["status_name"] == "COMPLETED"
    assert view["acquiring"]["account_id"] == VOLUNTARY_CANCELLATION_CP1
    assert client.units_held("kz", VOLUNTARY_CANCELLATION_CP1, "AAU", 1) == 1_000


# 8. carry-over


def test_cp1_aaus_are_carried_over_into_the_surplus_reserve_after_the_true_up(
    client: StackClient, kz: dict[str, int]
) -> None:
    body = {"unit_type": "AAU", "quantity": 10_000, "commitment_period": 1}
    before = kz_books(client)
    early = client.call("kz", "POST", "/transactions/carry-over", json=body)
    assert early.status_code == 422
    assert early.json()["response_code"] == 4015
    assert "2015-11-18" in early.json()["detail"]
    assert kz_books(client) == before
    client.set_clock(datetime.fromisoformat("2015-11-19T00:00:00+00:00"))
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/carry-over",
                                              json=body))
    assert view["status_name"] == "COMPLETED"
    assert view["supplementary_type"] == 39
    blocks = client.holdings("kz", PPSR)["blocks"]
    assert sum(b["quantity"] for b in blocks) == 10_000
    assert {(b["original_commitment_period"], b["applicable_commitment_period"])
            for b in blocks} == {(1, 2)}


def test_cer_carry_over_stops_at_two_and_a_half_percent_with_4003(
    client: StackClient, kz: dict[str, int]
) -> None:
    project = {"project_id": "CDM-CP1", "title": "Wind", "host_party": "UZ",
               "least_developed_country": True}
    assert cdm_issue(client, project, quantity=20_000, commitment_period=1)["state"] == \
        "completed"
    limit = AA_CP1 * 25 // 1000
    before = kz_books(client)
    over = proposed(client, "kz", client.call("kz", "POST", "/transactions/carry-over", json={
        "unit_type": "CER", "quantity": limit + 1, "commitment_period": 1}))
    assert over["response_codes"] == [4003]
    assert kz_books(client) == before
    at_limit = proposed(client, "kz", client.call("kz", "POST", "/transactions/carry-over",
                                                  json={"unit_type": "CER", "quantity": limit,
                                                        "commitment_period": 1}))
    assert at_limit["status_name"] == "COMPLETED"
    assert client.units_held("kz", PARTY, "CER", 2) == limit


# retirement


def test_retirement_moves_units_to_the_retirement_account_and_more_than_held_gets_3002(
    client: StackClient, kz: dict[str, int]
) -> None:
    before = client.units_held("kz", RETIREMENT_CP1, "AAU")
    decision = client.decide("kz", "retirement", "AAU", 2_500, "MEP-RET-1",
                             commitment_period=1)
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/retirement",
                                              json={"decision_id": decision["decision_id"]}))
    assert view["status_name"] == "COMPLETED"
    assert client.units_held("kz", RETIREMENT_CP1, "AAU") == before + 2_500
    books = kz_books(client)
    too_many = client.decide("kz", "retirement", "AAU", 10**9, "MEP-RET-2",
                             commitment_period=1)
    refused = client.call("kz", "POST", "/transactions/retirement",
                          json={"decision_id": too_many["decision_id"]})
    assert refused.status_code == 422
    assert refused.json()["response_code"] == 3002
    assert kz_books(client) == books


# ITL notices that ask for no transaction, or amend others; notices answered by transfers


def test_the_cpr_notice_is_recorded_as_information(client: StackClient,
                                                  kz: dict[str, int]) -> None:
    reserve = [n for n in client.ok("kz", "GET", "/notices") if n["notice_type"] == 7]
    assert {n["target_value"] for n in reserve} >= {160_000}
    assert {n["status"] for n in reserve} == {3}
    assert all("informs" in n["required_action"] for n in reserve)


def test_a_notification_update_amends_the_earlier_notice(client: StackClient,
                                                         kz: dict[str, int]) -> None:
    first = client.ok("itl", "POST", "/notices", json={
        "notice_type": 1, "registry": "KZ", "target_value": 500, "commitment_period": 2,
        "action_due_date": "2013-12-31"})
    client.ok("itl", "POST", "/notices", json={
        "notice_type": 10, "registry": "KZ", "amends": first["notice_id"],
        "target_value": 200, "action_due_date": "2014-03-31"})
    amended = poll(lambda: client.call("kz", "GET", f"/notices/{first['notice_id']}"),
                   lambda r: r.status_code == 200 and r.json()["target_value"] == 200,
                   "amended notice in KZ").json()
    assert str(amended["action_due_date"]) == "2014-03-31"
    unknown = client.call("itl", "POST", "/notices", json={
        "notice_type": 10, "registry": "KZ", "amends": 999_999})
    assert unknown.status_code == 422
    assert unknown.json()["response_code"] == 4005


def test_excess_issuance_notice_is_answered_by_a_transfer_to_the_cdm_account(
    client: StackClient, kz: dict[str, int]
) -> None:
    notice, _ = client.send_notice(
        notice_type=6, target_value=100, project_id="CDM-CP1")
    body = {"transferring_account_id": PARTY, "acquiring_registry": "CDM",
            "acquiring_account_type": 240, "acquiring_account_id": 2240, "unit_type": "CER",
            "quantity": 100, "notice_id": notice["notice_id"]}
    view = proposed(client, "kz",
                    client.propose("kz", "/transactions/external-transfer", body))
    assert view["status_name"] == "COMPLETED", view["evaluation_results"]
    assert client.units_held("cdm", 2240, "CER") == 100
    assert client.ok("itl", "GET", f"/notices/{notice['notice_id']}")["status_name"] == \
        "COMPLETED"


# 6. and 9.: tCERs of the first period expire at the end of the second


TCER_PROJECT = {"project_id": "CDM-AR-7", "title": "Kazakh steppe reforestation",
                "host_party": "UZ", "afforestation_reforestation": True}


def test_expiring_tcers_get_a_notice_are_replaced_and_the_itl_records_it(
    client: StackClient, kz: dict[str, int]
) -> None:
    expiry, alice = "2020-12-31", kz["alice"]  # the end of the period after theirs
    request = cdm_issue(client, TCER_PROJECT, unit_type="TCER", quantity=1_000,
                        acquiring_account_type=121, acquiring_account_id=alice,
                        commitment_period=1)
    assert request["state"] == "completed", request
    # 600 of the 980 tCERs are used towards the first period's commitment: retired on a
    # decision taken after the period
    decision = client.decide("kz", "retirement", "TCER", 600, "MEP-RET-T1",
                             commitment_period=1, account_id=alice)
    retired = proposed(client, "kz", client.call("kz", "POST", "/transactions/retirement",
                                                 json={"decision_id": decision["decision_id"]}))
    assert retired["status_name"] == "COMPLETED"
    assert client.units_held("kz", RETIREMENT_CP1, "TCER", 1) == 600

    client.set_clock(datetime.fromisoformat("2020-12-05T00:00:00+00:00"))
    notices = poll(lambda: [n for n in client.ok("kz", "GET", "/notices")
                            if n["notice_type"] == 3],
                   lambda found: bool(found), "impending expiry notice in KZ")
    (notice,) = notices
    assert notice["target_value"] == 600
    assert str(notice["action_due_date"]) == expiry
    assert "replace" in notice["required_action"]

    books = kz_books(client)
    refused = client.call("kz", "POST", "/transactions/replacement", json={
        "notice_id": notice["notice_id"], "unit_type": "LCER"})
    assert refused.status_code == 422  # KZ holds no lCERs to replace with
    assert refused.json()["response_code"] == 3002
    assert kz_books(client) == books
    aau_before = client.units_held("kz", PARTY, "AAU", 1)
    view = proposed(client, "kz", client.call("kz", "POST", "/transactions/replacement", json={
        "notice_id": notice["notice_id"], "unit_type": "AAU", "commitment_period": 1}))
    assert view["status_name"] == "COMPLETED"
    assert sum(b["quantity"] for b in view["replaced_blocks"]) == 600
    assert client.units_held("kz", PARTY, "AAU", 1) == aau_before - 600
    assert client.units_held("kz", TCER_REPLACEMENT_CP1, "AAU") == 600
    at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
    assert at_itl["status_name"] == "COMPLETED"
    assert at_itl["fulfilled_quantity"] == 600
    assert at_itl["transactions"] == [view["transaction_id"]]
    register = client.ok("itl", "GET", "/units", params={"registry": "KZ", "unit_type": 6})
    assert sum(b["quantity"] for b in register
               if b["replaced_by"] == view["transaction_id"]) == 600

    # once expired, the tCERs still in the holding account can no longer move
    client.set_clock(datetime.fromisoformat("2021-01-02T00:00:00+00:00"))
    books = kz_books(client)
    expired = client.transfer("kz", alice, PARTY, "TCER", 10, target_type=100, period=1)
    assert expired.status_code == 422
    assert expired.json()["response_code"] == 3007
    assert "have expired" in expired.json()["detail"]
    assert kz_books(client) == books


def test_the_itl_times_out_a_transfer_the_acquiring_registry_leaves_unanswered(
    stack: Any, client: StackClient, kz: dict[str, int]
) -> None:
    stack.kill("ch")
    try:
        before = kz_books(client)
        response = client.transfer("kz", PARTY, kz["zora"], "AAU", 50, target_registry="CH")
        assert response.status_code == 202, response.text
        transaction_id = response.json()["transaction_id"]
        poll(lambda: client.call("itl", "GET", f"/transactions/{transaction_id}"),
             lambda r: r.status_code == 200 and r.json()["status"] == 2, "forwarded to CH")
        client.set_clock(client.now() + timedelta(hours=25))
        final = client.wait_final("kz", transaction_id)
        assert final["status_name"] == "TERMINATED"
        assert final["response_codes"] == [1104]
        assert kz_books(client) == before
        assert client.holdings("kz", PARTY)["reserved"] == 0
    finally:
        stack.restart("ch")
    inbound = client.wait_final("ch", transaction_id)
    assert inbound["status_name"] == "TERMINATED"
    assert client.units_held("ch", kz["zora"], "AAU") == 0
    ch_clock = datetime.fromisoformat(client.ok("ch", "GET", "/admin/clock")["now"])
    assert abs(ch_clock - client.now()) < timedelta(minutes=5)  # restored after restart
