"""The second commitment period's rules (decision 1/CMP.8 and the decisions it builds on)
through the real processes, each at its boundary: the reserve, Art. 3.7ter, the share of
proceeds, Party eligibility, the previous period surplus reserve, RMU and A/R CDM limits,
replacement sets, notice fulfilment, and the account-type table at the registry and at
the ITL (protocol.md 4, shared/rules).

Kazakhstan trades with Switzerland (a second-period commitment) and Japan (none). The
stack's clock starts on 1 December 2015, after the first period's true-up.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack
from shared.codes import ITL_CODE, MessageType, SupplementaryType, TransactionType
from shared.contracts import AccountRef, ProposalSubmitted, UnitBlockWire, make_envelope
from shared.testing.infra import publish_as

pytestmark = pytest.mark.e2e

CLOCK_START = "2015-12-01T00:00:00+00:00"
REGISTRIES = ("KZ", "CH", "JP")
PARTY, PPSR, ART_37TER = 1, 4, 13
RETIREMENT_CP1, RETIREMENT_CP2, LCER_REVERSAL_CP1 = 103, 3, 111
KZ_AA, KZ_AVERAGE_2008_2010, KZ_INVENTORY = 1_000_000, 110_000, 110_000
#: Art. 3.7ter: 1 000 000 - 8 x 110 000 = 120 000 to cancel; net assigned amount 880 000
KZ_37TER, KZ_NET = 120_000, 880_000
#: reserve = min(ceil(90 % x 880 000), 8 x 110 000) = 792 000
KZ_RESERVE = 792_000
#: emissions over period 2: 5 000 above the net assigned amount (PPSR retirement limit)
KZ_EMISSIONS = KZ_NET + 5_000
#: base-year emissions: forest management cap 3.5 % x 8 = 84 000
KZ_BASE_YEAR = 300_000
KZ_FM_REMOVALS = 100_000
#: Switzerland: 2 % of 50 000 = 1 000 PPSR units; A/R CDM credits 1 % x 8 x 10 000 = 800
CH_AA_CP1, CH_PPSR_CAP, CH_BASE_YEAR, CH_AR_CAP = 50_000, 1_000, 10_000, 800


def proposed(client: StackClient, response: Any, registry: str = "kz") -> Any:
    assert response.status_code == 202, response.text
    return client.settle(registry, response.json()["transaction_id"])


def books(client: StackClient, *registries: str) -> list[Any]:
    return [client.registry_totals(r) for r in registries or ("kz",)]


def itl_party(client: StackClient, code: str = "KZ", period: int = 2) -> Any:
    return client.ok("itl", "GET", f"/parties/{code}/periods/{period}")


@pytest.fixture(scope="module")
def parties(client: StackClient) -> dict[str, int]:
    """What the ITL knows of KZ, CH and JP; accounts for their holders."""
    client.set_assigned_amount("KZ", 1, 400_000, reviewed_inventory=1_000,
                               base_year_emissions=1_000_000)
    client.set_assigned_amount(
        "KZ", 2, KZ_AA, reviewed_inventory=KZ_INVENTORY,
        average_emissions_2008_2010=KZ_AVERAGE_2008_2010, base_year_emissions=KZ_BASE_YEAR,
        period_emissions=KZ_EMISSIONS,
        rmu_net_removals={"FOREST_MANAGEMENT": KZ_FM_REMOVALS, "DEFORESTATION": 5_000})
    client.set_assigned_amount("CH", 1, CH_AA_CP1)
    client.set_assigned_amount("CH", 2, 100_000, base_year_emissions=CH_BASE_YEAR)
    client.set_assigned_amount("JP", 1, 100_000)
    issued = client.issue("kz", "AAU", 50_000, "MEP-CP1", period=1)
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    return {"alice": client.open_account("kz", "Alice Energy LLP")["account_id"],
            "zora": client.open_account("ch", "Zurich Power AG")["account_id"],
            "hiro": client.open_account("jp", "Hiroshima Power KK")["account_id"]}


def external(client: StackClient, source: int, registry: str, target: int, quantity: int,
             period: int = 2, target_type: int = 121, unit_type: str = "AAU") -> Any:
    return client.transfer("kz", source, target, unit_type, quantity,
                           target_registry=registry, target_type=target_type, period=period)


# the reserve and Art. 3.7ter


def test_the_reserve_is_eight_inventories_or_90_percent_of_the_net_assigned_amount(
    client: StackClient, parties: dict[str, int]
) -> None:
    party = itl_party(client)
    assert (party["article_37ter_quantity"], party["net_assigned_amount"],
            party["commitment_period_reserve"]) == (KZ_37TER, KZ_NET, KZ_RESERVE)
    notices = poll(lambda: [n for n in client.ok("kz", "GET", "/notices")
                            if n["notice_type"] == 7 and n["commitment_period"] == 2],
                   lambda found: bool(found), "notice 7 for period 2")
    assert notices[0]["target_value"] == KZ_RESERVE


def test_article_37ter_holds_back_issuance_until_its_quantity_is_cancelled(
    client: StackClient, parties: dict[str, int]
) -> None:
    over = client.issue("kz", "AAU", KZ_NET + 1, "MEP-2013-AA")
    refused = client.settle("kz", over["transaction_id"])
    assert refused["response_codes"] == [4001]
    assert "Art. 3.7ter quantity 120000" in refused["evaluation_results"][0]["message"]
    exact = client.issue("kz", "AAU", KZ_NET, "MEP-2013-AA-2")
    assert client.settle("kz", exact["transaction_id"])["status_name"] == "COMPLETED"

    body = {"unit_type": "AAU", "quantity": KZ_37TER + 1, "account_type": 270}
    beyond = proposed(client, client.call("kz", "POST", "/transactions/cancellation",
                                          json=body))
    assert beyond["response_codes"] == [4010]
    cancelled = proposed(client, client.call("kz", "POST", "/transactions/cancellation",
                                             json={**body, "quantity": KZ_37TER}))
    assert cancelled["status_name"] == "COMPLETED"
    assert cancelled["supplementary_type"] == 45
    assert cancelled["acquiring"]["account_id"] == ART_37TER
    assert client.units_held("kz", ART_37TER, "AAU") == KZ_37TER
    # cancelled, the rest of the assigned amount can be issued
    rest = client.issue("kz", "AAU", KZ_37TER, "MEP-2013-AA-3")
    assert client.settle("kz", rest["transaction_id"])["status_name"] == "COMPLETED"
    party = itl_party(client)
    assert party["aaus_issued"] == KZ_AA
    assert party["counters"]["article_37ter_cancelled"] == KZ_37TER
    assert party["holdings"] == KZ_NET
    again = client.issue("kz", "AAU", 1, "MEP-2013-AA-4")
    assert client.settle("kz", again["transaction_id"])["response_codes"] == [4001]


def convert(client: StackClient, unit_type: str, quantity: int, project: str) -> None:
    """Convert units of the Party holding account into ERUs on a track 1 decision, and
    settle the share of proceeds the ERUs owe."""
    decision = client.decide("kz", "conversion", unit_type, quantity, f"MEP-{project}",
                             project_id=project)
    converted = proposed(client, client.call("kz", "POST", "/transactions/conversion", json={
        "unit_type": unit_type, "quantity": quantity, "project_id": project, "track": 1,
        "decision_id": decision["decision_id"]}))
    assert converted["status_name"] == "COMPLETED"
    client.settle_share_of_proceeds("kz")


def test_converting_aaus_into_erus_gives_no_issuance_room_back(
    client: StackClient, parties: dict[str, int]
) -> None:
    convert(client, "AAU", 1_000, "KZ-JI-SP")
    assert itl_party(client)["aaus_issued"] == KZ_AA  # the ERUs still count as issued
    again = client.issue("kz", "AAU", 1, "MEP-2013-AA-5")
    refused = client.settle("kz", again["transaction_id"])
    assert refused["response_codes"] == [4001]


# eligibility: Japan has no second-period commitment


def test_a_party_without_a_second_period_commitment_cannot_acquire_its_units(
    client: StackClient, parties: dict[str, int]
) -> None:
    before = books(client, "kz", "jp")
    refused = proposed(client, external(client, PARTY, "JP", parties["hiro"], 100))
    assert refused["response_codes"] == [4006]
    assert "JP has no commitment for period 2" in refused["evaluation_results"][0]["message"]
    assert books(client, "kz", "jp") == before
    # units of the first period still move to Japan
    done = proposed(client, external(client, PARTY, "JP", parties["hiro"], 100, period=1))
    assert done["status_name"] == "COMPLETED"
    assert client.units_held("jp", parties["hiro"], "AAU") == 100


def test_a_party_without_a_second_period_commitment_issues_and_carries_over_nothing_into_it(
    client: StackClient, parties: dict[str, int]
) -> None:
    period_2 = client.call("itl", "PUT", "/parties/JP/periods/2",
                           json={"assigned_amount": 100_000})
    assert period_2.status_code == 422
    assert period_2.json()["response_code"] == 4006
    unknown = client.call("itl", "PUT", "/parties/ZZ", json={"commitment_periods": [2],
                                                            "eligible": ["article_17"]})
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error["loc"] == ["path", "code"] and "ZZ is neither a registry" in error["msg"]
    issued = client.issue("jp", "AAU", 1_000, "JP-CP1", period=1)
    assert client.settle("jp", issued["transaction_id"])["status_name"] == "COMPLETED"
    before = books(client, "jp")
    carried = proposed(client, client.call("jp", "POST", "/transactions/carry-over", json={
        "unit_type": "AAU", "quantity": 500, "commitment_period": 1}), registry="jp")
    assert carried["response_codes"] == [4006]
    assert "JP has no commitment for period 2" in carried["evaluation_results"][0]["message"]
    assert books(client, "jp") == before


def test_the_cdm_registry_cannot_forward_second_period_cers_to_japan(
    client: StackClient, parties: dict[str, int]
) -> None:
    client.ok("cdm", "POST", "/projects", json={
        "project_id": "CDM-SP-1", "title": "Hydro", "host_party": "UZ"})
    request = client.ok("cdm", "POST", "/projects/CDM-SP-1/issuances", json={
        "quantity": 500, "acquiring_registry": "JP", "acquiring_account_id": parties["hiro"]})
    done = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    assert done["state"] == "failed"
    forward = client.settle("cdm", done["forward_transaction"])
    assert forward["response_codes"] == [4006]
    assert client.units_held("jp", parties["hiro"], "CER") == 0


def test_a_party_not_eligible_under_article_17_cannot_trade(
    client: StackClient, parties: dict[str, int]
) -> None:
    standing = client.ok("itl", "GET", "/parties/CH")
    assert standing["commitment_periods"] == [1, 2]
    client.ok("itl", "PUT", "/parties/CH", json={"commitment_periods": [1, 2],
                                                 "eligible": ["article_6", "article_12"]})
    try:
        refused = proposed(client, external(client, PARTY, "CH", parties["zora"], 10))
        assert refused["response_codes"] == [4006]
        assert "Article 17" in refused["evaluation_results"][0]["message"]
    finally:
        client.ok("itl", "PUT", "/parties/CH", json={
            "commitment_periods": standing["commitment_periods"],
            "eligible": standing["eligible"]})


# share of proceeds


def test_a_first_transfer_pays_its_share_of_proceeds_or_blocks_the_next_until_paid(
    stack: LocalStack, client: StackClient, parties: dict[str, int]
) -> None:
    alice, zora = parties["alice"], parties["zora"]
    funded = client.transfer("kz", PARTY, alice, "AAU", 10_000)
    assert proposed(client, funded)["status_name"] == "COMPLETED"
    before = books(client, "kz", "ch")
    # Alice cannot sell all she holds: 2 % of it must go to the Adaptation Fund too
    everything = client.transfer("kz", alice, zora, "AAU", 10_000, target_registry="CH")
    assert everything.status_code == 422
    assert everything.json()["response_code"] == 3002
    assert "share of proceeds of this first transfer (200 AAUs" in everything.json()["detail"]
    assert books(client, "kz", "ch") == before
    # she sells 9 800: 196 set aside, sent once CH accepts, before the completion
    sold = proposed(client, client.transfer("kz", alice, zora, "AAU", 9_800,
                                            target_registry="CH"))
    assert sold["status_name"] == "COMPLETED"
    (share,) = [v for v in client.settle_share_of_proceeds("kz")
                if v["transferring"]["account_id"] == alice]
    assert (share["status_name"], share["quantity"], share["supplementary_type"]) == (
        "COMPLETED", 196, 47)
    assert client.units_held("kz", alice, "AAU") == 4
    at_itl = itl_party(client)["share_of_proceeds"]["first_international_transfers_of_aau"]
    assert at_itl == {"transferred": 9_800, "due": 196, "contributed": 196, "owed": 0}

    # a share that cannot be sent (the account was blocked meanwhile) stays owed, and
    # the ITL refuses the Party's next AAU transfers until the operator pays it
    assert proposed(client, client.transfer("kz", PARTY, alice, "AAU", 5_000))[
        "status_name"] == "COMPLETED"
    stack.kill("ch")
    try:
        pending = client.transfer("kz", alice, zora, "AAU", 1_000, target_registry="CH")
        assert pending.status_code == 202, pending.text
        client.ok("kz", "POST", f"/accounts/{alice}/block", json={"reason": "inquiry"})
    finally:
        stack.restart("ch")
    assert client.settle("kz", pending.json()["transaction_id"])["status_name"] == "COMPLETED"
    owed = poll(lambda: itl_party(client)["share_of_proceeds"][
        "first_international_transfers_of_aau"], lambda s: s["owed"] == 20, "share owed")
    assert owed["transferred"] == 10_800
    blocked = proposed(client, external(client, PARTY, "CH", zora, 10))
    assert blocked["response_codes"] == [4007]
    assert "owes the Adaptation Fund 20 AAUs" in blocked["evaluation_results"][0]["message"]
    holder = client.call("kz", "POST", "/share-of-proceeds/2/first_international_transfers_of_aau"
                                       "/payment", json={"transferring_account_id": PARTY},
                         headers=client.as_holder("kz", alice))
    assert holder.status_code == 403
    paid = proposed(client, client.call(
        "kz", "POST", "/share-of-proceeds/2/first_international_transfers_of_aau/payment",
        json={"transferring_account_id": PARTY}))
    assert (paid["status_name"], paid["quantity"], paid["supplementary_type"]) == (
        "COMPLETED", 20, 47)
    nothing = client.call("kz", "POST",
                          "/share-of-proceeds/2/first_international_transfers_of_aau/payment",
                          json={"transferring_account_id": PARTY})
    assert nothing.status_code == 404
    resumed = proposed(client, external(client, PARTY, "CH", zora, 10))
    assert resumed["status_name"] == "COMPLETED"
    client.ok("kz", "POST", f"/accounts/{alice}/unblock", json={"reason": "closed"})
    client.settle_share_of_proceeds("kz")
    assert client.units_held("cdm", 1100, "AAU") == 216  # 2 % of 10 810, rounded down


# the previous period surplus reserve


def test_ppsr_units_go_to_another_partys_ppsr_within_two_percent_of_its_amount(
    client: StackClient, parties: dict[str, int]
) -> None:
    carried = proposed(client, client.call("kz", "POST", "/transactions/carry-over", json={
        "unit_type": "AAU", "quantity": 20_000, "commitment_period": 1}))
    assert carried["status_name"] == "COMPLETED"
    before = books(client, "kz", "ch")
    over = proposed(client, external(client, PPSR, "CH", PPSR, CH_PPSR_CAP + 1, target_type=130))
    assert over["response_codes"] == [4008]
    assert books(client, "kz", "ch") == before
    done = proposed(client, external(client, PPSR, "CH", PPSR, CH_PPSR_CAP, target_type=130))
    assert done["status_name"] == "COMPLETED", done["evaluation_results"]
    blocks = client.holdings("ch", PPSR)["blocks"]
    assert sum(b["quantity"] for b in blocks) == CH_PPSR_CAP
    assert {(b["original_commitment_period"], b["applicable_commitment_period"])
            for b in blocks} == {(1, 2)}
    assert itl_party(client, "CH")["counters"]["ppsr_acquired"] == CH_PPSR_CAP


@pytest.mark.parametrize(("source", "target_registry", "target", "target_type", "reason"), [
    (PPSR, "CH", "zora", 121, "between previous period surplus reserves sends units to "
                              "account types 130, not to 121"),
    (PPSR, "KZ", "alice", 121, "only into another Party's reserve or to retirement"),
    (PARTY, "CH", PPSR, 130, "not to 130"),
])
def test_the_registry_refuses_what_may_not_leave_or_enter_a_ppsr(
    client: StackClient, parties: dict[str, int], source: int, target_registry: str,
    target: int | str, target_type: int, reason: str,
) -> None:
    account = parties[target] if isinstance(target, str) else target
    before = books(client)
    if target_registry == "KZ":
        response = client.transfer("kz", source, account, "AAU", 10, target_type=target_type)
    else:
        response = external(client, source, target_registry, account, 10,
                            target_type=target_type)
    assert response.status_code == 422, response.text
    assert response.json()["response_code"] == 2004
    assert reason in response.json()["detail"]
    assert books(client) == before


# RMUs and A/R CDM credits


def test_rmus_stop_at_the_forest_management_cap_and_deforestation_issues_none(
    client: StackClient, parties: dict[str, int]
) -> None:
    cap = 35 * KZ_BASE_YEAR * 8 // 1000  # 84 000, below the removals of 100 000
    deforestation = client.issue("kz", "RMU", 1, "MEP-RMU-D", lulucf_activity=2)
    assert client.settle("kz", deforestation["transaction_id"])["response_codes"] == [4001]
    over = client.issue("kz", "RMU", cap + 1, "MEP-RMU-FM", lulucf_activity=3)
    refused = client.settle("kz", over["transaction_id"])
    assert refused["response_codes"] == [4001]
    assert f"over its limit of {cap}" in refused["evaluation_results"][0]["message"]
    exact = client.issue("kz", "RMU", cap, "MEP-RMU-FM-2", lulucf_activity=3)
    assert client.settle("kz", exact["transaction_id"])["status_name"] == "COMPLETED"
    # RMUs converted into ERUs are still RMUs issued for the activity
    convert(client, "RMU", 100, "KZ-JI-RMU")
    more = client.issue("kz", "RMU", 1, "MEP-RMU-FM-3", lulucf_activity=3)
    assert client.settle("kz", more["transaction_id"])["response_codes"] == [4001]


def test_a_party_acquires_ar_cdm_credits_up_to_one_percent_of_base_year_times_eight(
    client: StackClient, parties: dict[str, int]
) -> None:
    project = {"project_id": "CDM-AR-SP", "title": "Sahel forest", "host_party": "UZ",
               "afforestation_reforestation": True}
    client.ok("cdm", "POST", "/projects", json=project)
    wrong_date = client.call("cdm", "POST", "/projects/CDM-AR-SP/issuances", json={
        "unit_type": "TCER", "quantity": 100, "acquiring_registry": "CH",
        "acquiring_account_id": parties["zora"], "expiry_date": "2020-12-31"})
    assert wrong_date.status_code == 422
    assert wrong_date.json()["response_code"] == 4012  # period-2 tCERs: end of 2030

    def forward(quantity: int) -> Any:
        request = client.ok("cdm", "POST", "/projects/CDM-AR-SP/issuances", json={
            "unit_type": "TCER", "quantity": quantity, "acquiring_registry": "CH",
            "acquiring_account_id": parties["zora"]})
        done = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
                    lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
        return done, client.settle("cdm", done["forward_transaction"])

    done, view = forward(1_000)  # 980 forwarded after the 2 % share
    assert done["state"] == "failed" and view["response_codes"] == [4011]
    done, view = forward(817)  # 16 to the Adaptation Fund, 801 forwarded
    assert view["response_codes"] == [4011]
    done, view = forward(816)  # 800 forwarded: exactly the limit
    assert done["state"] == "completed", view
    blocks = client.holdings("ch", parties["zora"])["blocks"]
    assert {b["expiry_date"] for b in blocks if b["unit_type"] == "TCER"} == {"2030-12-31"}
    assert itl_party(client, "CH")["counters"]["ar_cdm_acquired"] == CH_AR_CAP


def test_units_go_to_the_cdm_excess_issuance_account_only_on_notice_6(
    client: StackClient, parties: dict[str, int]
) -> None:
    before = books(client, "kz", "cdm")
    refused = proposed(client, external(client, PARTY, "CDM", 2240, 1, target_type=240))
    assert refused["response_codes"] == [4005]
    assert "only on an ITL notice 6" in refused["evaluation_results"][0]["message"]
    assert books(client, "kz", "cdm") == before


# replacement sets and notice fulfilment


def test_lost_lcers_are_replaced_by_lcers_of_the_same_project_only(
    client: StackClient, parties: dict[str, int]
) -> None:
    alice = parties["alice"]
    for project, account_type, account in (("CDM-AR-A", 100, PARTY),
                                           ("CDM-AR-B", 121, alice)):
        client.ok("cdm", "POST", "/projects", json={
            "project_id": project, "title": project, "host_party": "UZ",
            "afforestation_reforestation": True, "crediting_period_end": "2030-06-30"})
        request = client.ok("cdm", "POST", f"/projects/{project}/issuances", json={
            "unit_type": "LCER", "quantity": 1_000, "commitment_period": 1,
            "acquiring_registry": "KZ", "acquiring_account_type": account_type,
            "acquiring_account_id": account})
        path = f"/issuances/{request['request_id']}"
        done = poll(lambda path=path: client.ok("cdm", "GET", path),  # type: ignore[misc]
                    lambda r: r["state"] in ("completed", "failed"), "lCER issuance")
        assert done["state"] == "completed", done
        client.settle("cdm", done["forward_transaction"])
    decision = client.decide("kz", "retirement", "LCER", 300, "MEP-RET-LA", commitment_period=1)
    retired = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                           json={"decision_id": decision["decision_id"]}))
    assert retired["status_name"] == "COMPLETED"
    wire = [{k: b[k] for k in ("serial_start", "serial_end", "expiry_date", "project_id")}
            | {"originating_registry": "CDM", "unit_type": 7, "original_commitment_period": 1,
               "applicable_commitment_period": 1}
            for b in client.holdings("kz", RETIREMENT_CP1)["blocks"]]
    notice, _ = client.send_notice(
        notice_type=4, project_id="CDM-AR-A", target_value=300,
        unit_type="LCER", blocks=wire, text="reversal of storage")
    before = books(client)
    other_project = proposed(client, client.call("kz", "POST", "/transactions/replacement", json={
        "notice_id": notice["notice_id"], "unit_type": "LCER", "commitment_period": 1,
        "transferring_account_id": alice}))
    assert other_project["response_codes"] == [4004]
    assert "same project" in other_project["evaluation_results"][0]["message"]
    assert books(client) == before
    same = proposed(client, client.call("kz", "POST", "/transactions/replacement", json={
        "notice_id": notice["notice_id"], "unit_type": "LCER", "commitment_period": 1}))
    assert same["status_name"] == "COMPLETED", same["evaluation_results"]
    assert same["acquiring"]["account_id"] == LCER_REVERSAL_CP1
    assert client.ok("itl", "GET", f"/notices/{notice['notice_id']}")["status_name"] == \
        "COMPLETED"


def test_a_notice_is_fulfilled_only_by_its_units_and_up_to_its_target(
    client: StackClient, parties: dict[str, int]
) -> None:
    notice, _ = client.send_notice(
        notice_type=1, target_value=500, unit_type="AAU",
        commitment_period=2, text="net source")
    body = {"unit_type": "AAU", "account_type": 210, "notice_id": notice["notice_id"]}

    def cancel(quantity: int, period: int = 2) -> Any:
        return proposed(client, client.call("kz", "POST", "/transactions/cancellation", json={
            **body, "quantity": quantity, "commitment_period": period}))

    assert cancel(300)["status_name"] == "COMPLETED"
    at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
    assert (at_itl["status_name"], at_itl["fulfilled_quantity"]) == ("INCOMPLETE", 300)
    before = books(client)
    assert cancel(201)["response_codes"] == [4014]
    assert cancel(100, period=1)["response_codes"] == [4013]
    assert books(client) == before
    assert cancel(200)["status_name"] == "COMPLETED"
    at_itl = client.ok("itl", "GET", f"/notices/{notice['notice_id']}")
    assert (at_itl["status_name"], at_itl["fulfilled_quantity"]) == ("COMPLETED", 500)


# the account-type table: at the registry for every account of KZ ...

#: KZ's accounts as transferring account, with their type.
KZ_ACCOUNTS = {1: 100, 4: 130, 13: 270, 14: 280, 2: 230, 3: 300, 5: 210, 6: 220, 7: 250,
               8: 260, 9: 411, 10: 421, 11: 422, 12: 423, 102: 230, 103: 300, 109: 411}
#: The README's table restated: account types an internal or external transfer and an
#: Art. 3.7ter cancellation take units from (PPSR units have their own rows).
FROM = {"internal": {100, 120, 121}, "external": {100, 120, 121}, "article_37ter": {100}}
ROUTES = {
    "internal": lambda c, a, p: c.transfer("kz", a, p["alice"], "AAU", 1),
    "external": lambda c, a, p: c.transfer("kz", a, p["zora"], "AAU", 1, target_registry="CH"),
    "article_37ter": lambda c, a, p: c.call("kz", "POST", "/transactions/cancellation", json={
        "transferring_account_id": a, "unit_type": "AAU", "quantity": 1, "account_type": 270}),
}
REGISTRY_CELLS = [(route, account) for route, account in itertools.product(ROUTES, KZ_ACCOUNTS)
                  if KZ_ACCOUNTS[account] not in FROM[route]]


@pytest.mark.parametrize(("route", "account"), REGISTRY_CELLS,
                         ids=[f"{r}-from-{KZ_ACCOUNTS[a]}" for r, a in REGISTRY_CELLS])
def test_the_registry_refuses_every_transferring_account_the_table_forbids(
    client: StackClient, parties: dict[str, int], route: str, account: int
) -> None:
    before = books(client)
    response = ROUTES[route](client, account, parties)
    assert response.status_code == 422, response.text
    assert response.json()["response_code"] == 2004
    assert books(client) == before


# ... and at the ITL, for a forbidden cell of every row, as a registry that does not
# check would propose it

FORGED_ID = itertools.count(900_001)
A = TransactionType
S = SupplementaryType


def _block(unit_type: int = 1, period: tuple[int, int] = (2, 2), origin: str = "KZ",
           **extra: Any) -> UnitBlockWire:
    return UnitBlockWire(serial_start=1, serial_end=1, originating_registry=origin,
                         unit_type=unit_type, original_commitment_period=period[0],
                         applicable_commitment_period=period[1], **extra)


def _ref(account_type: int, account_id: int, registry: str = "KZ") -> AccountRef:
    return AccountRef(registry=registry, account_type=account_type, account_id=account_id)


#: (what is forged, type, supplementary type, transferring, acquiring, blocks)
FORGED = [
    ("issuance into a person account", A.ISSUANCE, None, None, _ref(121, 1001), [_block()]),
    ("conversion into another account", A.CONVERSION, None, _ref(100, 1), _ref(121, 1001),
     [_block()]),
    ("external transfer out of the retirement account", A.EXTERNAL_TRANSFER, None,
     _ref(300, 3), _ref(121, 1, "CH"), [_block()]),
    ("reserve units to a person abroad", A.EXTERNAL_TRANSFER, None, _ref(130, 4),
     _ref(121, 1, "CH"), [_block(period=(1, 2))]),
    ("AAUs into a foreign reserve", A.EXTERNAL_TRANSFER, None, _ref(100, 1),
     _ref(130, 4, "CH"), [_block()]),
    ("share of proceeds to a Party", A.EXTERNAL_TRANSFER,
     S.SHARE_OF_PROCEEDS_FIRST_TRANSFER_OF_AAU, _ref(100, 1), _ref(100, 1, "CH"), [_block()]),
    ("share of proceeds in CERs", A.EXTERNAL_TRANSFER, S.SHARE_OF_PROCEEDS_ERU_CONVERSION,
     _ref(100, 1), _ref(100, 1100, "CDM"), [_block(5, origin="CDM")]),
    ("cancellation into the retirement account", A.CANCELLATION, None, _ref(100, 1),
     _ref(300, 3), [_block()]),
    ("mandatory cancellation into 230", A.CANCELLATION, S.MANDATORY_CANCELLATION,
     _ref(100, 1), _ref(230, 2), [_block()]),
    ("Art. 3.7ter from a person account", A.CANCELLATION, None, _ref(121, 1001),
     _ref(270, 13), [_block()]),
    ("ambition increase of period-1 AAUs", A.CANCELLATION, None, _ref(100, 1), _ref(280, 14),
     [_block(period=(1, 1))]),
    ("retirement out of a cancellation account", A.RETIREMENT, None, _ref(230, 2),
     _ref(300, 3), [_block()]),
    ("reserve units retired into 230", A.RETIREMENT, None, _ref(130, 4), _ref(230, 2),
     [_block(period=(1, 2))]),
    ("replacement into the retirement account", A.REPLACEMENT, None, _ref(100, 1),
     _ref(300, 3), [_block()]),
    ("carry-over of AAUs into a person account", A.CARRY_OVER, S.CARRY_OVER_AAU, _ref(100, 1),
     _ref(121, 1001), [_block(period=(1, 1))]),
    ("carry-over of RMUs", A.CARRY_OVER, S.CARRY_OVER_CER_ERU, _ref(100, 1), _ref(100, 1),
     [_block(2, period=(1, 1), lulucf_activity=3)]),
    ("expiry date change out of a cancellation account", A.EXPIRY_DATE_CHANGE, None,
     _ref(230, 2), _ref(230, 2), [_block(6, origin="CDM", expiry_date="2020-12-31")]),
    ("internal transfer into the reserve", A.INTERNAL_TRANSFER, None, _ref(100, 1),
     _ref(130, 4), [_block()]),
]


def _forge(stack: LocalStack, proposal: ProposalSubmitted) -> None:
    """Propose as KZ itself would (its broker login), bypassing its API's checks."""
    envelope = make_envelope(message_type=MessageType.PROPOSAL_SUBMITTED, sender="KZ",
                             recipient=ITL_CODE, correlation_id=proposal.transaction_id,
                             payload=proposal, sent_at=datetime.now().astimezone())
    assert stack.broker is not None
    kz = stack.broker.identities["KZ"]
    asyncio.run(publish_as(kz.url, kz.user, stack.namespace, ITL_CODE,
                           envelope.model_dump_json().encode()))


@pytest.mark.parametrize(("what", "kind", "supplementary", "transferring", "acquiring",
                          "blocks"), FORGED, ids=[f[0].replace(" ", "-") for f in FORGED])
def test_the_itl_refuses_every_row_of_the_table_it_is_proposed_against(
    stack: LocalStack, client: StackClient, parties: dict[str, int], what: str,
    kind: TransactionType, supplementary: SupplementaryType | None,
    transferring: AccountRef | None, acquiring: AccountRef, blocks: list[UnitBlockWire],
) -> None:
    transaction_id = f"KZ{next(FORGED_ID)}"
    extra: dict[str, Any] = {}
    if kind == A.CONVERSION:
        extra = {"project_id": "KZ-JI-9", "track": 1}
    if kind == A.REPLACEMENT:
        extra = {"replaced_blocks": [_block(6, period=(1, 1), origin="CDM",
                                            expiry_date="2020-12-31")]}
    if kind == A.EXPIRY_DATE_CHANGE:
        extra = {"new_expiry_date": "2031-01-01"}
    proposal = ProposalSubmitted(transaction_id=transaction_id, transaction_type=kind,
                                 supp_transaction_type=supplementary,
                                 transferring=transferring, acquiring=acquiring,
                                 blocks=blocks, **extra)
    register = client.ok("itl", "GET", "/totals")
    _forge(stack, proposal)
    refused = poll(lambda: client.call("itl", "GET", f"/transactions/{transaction_id}"),
                   lambda r: r.status_code == 200, f"ITL records {what}").json()
    assert [h["status"] for h in refused["history"]] == [1, 3, 5], what
    assert {r["response_code"] for r in refused["evaluation_results"]} == {2004}, refused
    assert client.ok("itl", "GET", "/totals") == register


@pytest.mark.parametrize(("what", "block", "reason"), [
    ("AAUs issued for period 2 valid for period 1", _block(period=(2, 1)),
     "valid for it, not for period 1"),
    ("AAUs with an expiry date and a project",
     _block(expiry_date="2030-12-31", project_id="X"), "without project or expiry date"),
])
def test_the_itl_refuses_issued_units_with_what_their_type_cannot_have(
    stack: LocalStack, client: StackClient, parties: dict[str, int], what: str,
    block: UnitBlockWire, reason: str,
) -> None:
    proposal = ProposalSubmitted(transaction_id=f"KZ{next(FORGED_ID)}",
                                 transaction_type=A.ISSUANCE, acquiring=_ref(100, PARTY),
                                 blocks=[block.model_copy(update={"serial_start": 10**12,
                                                                  "serial_end": 10**12})])
    _forge(stack, proposal)
    refused = poll(lambda: client.call("itl", "GET", f"/transactions/{proposal.transaction_id}"),
                   lambda r: r.status_code == 200, f"ITL records {what}").json()
    assert [r["response_code"] for r in refused["evaluation_results"]] == [2004]
    assert reason in refused["evaluation_results"][0]["message"]


def test_a_transaction_id_used_again_for_other_content_is_refused_with_1105(
    stack: LocalStack, client: StackClient, parties: dict[str, int]
) -> None:
    done = proposed(client, client.transfer("kz", PARTY, parties["alice"], "AAU", 1))
    first = client.itl_transaction(done["transaction_id"])
    other = ProposalSubmitted(transaction_id=done["transaction_id"],
                              transaction_type=A.INTERNAL_TRANSFER,
                              transferring=_ref(100, PARTY), acquiring=_ref(121, 1001),
                              blocks=[_block()])
    _forge(stack, other)
    journal = poll(lambda: client.ok("itl", "GET", "/messages",
                                     params={"correlation_id": done["transaction_id"]}),
                   lambda rows: any(r["message_type"] == "MessageAck" for r in rows),
                   "the ITL's answer")
    (ack,) = [r["envelope"]["payload"] for r in journal if r["message_type"] == "MessageAck"]
    assert ack["accepted"] is False and ack["response_codes"] == [1105]
    assert client.itl_transaction(done["transaction_id"]) == first


# last: the reserve at its boundary, and PPSR retirement once period 2 has ended


def test_an_external_transfer_may_take_holdings_down_to_the_reserve_and_no_further(
    client: StackClient, parties: dict[str, int]
) -> None:
    client.settle_share_of_proceeds("kz")
    party = itl_party(client)
    room = int(party["holdings"]) - int(party["commitment_period_reserve"])
    base = int(party["share_of_proceeds"]["first_international_transfers_of_aau"]["transferred"])
    assert party["commitment_period_reserve"] == KZ_RESERVE and room > 0

    def leaving(quantity: int) -> int:  # the transfer and the share of proceeds it owes
        return quantity + (base + quantity) * 2 // 100 - base * 2 // 100

    largest = max(q for q in range(room - room // 49 - 2, room + 1) if leaving(q) <= room)
    before = books(client, "kz", "ch")
    over = proposed(client, external(client, PARTY, "CH", parties["zora"], largest + 1))
    assert over["response_codes"] == [5001]
    assert books(client, "kz", "ch") == before
    done = proposed(client, external(client, PARTY, "CH", parties["zora"], largest))
    assert done["status_name"] == "COMPLETED"
    client.settle_share_of_proceeds("kz")
    assert KZ_RESERVE <= itl_party(client)["holdings"] <= KZ_RESERVE + 1


def test_ppsr_units_are_retired_up_to_the_excess_emissions_once_period_2_ended(
    client: StackClient, parties: dict[str, int]
) -> None:
    client.set_clock("2021-01-04T00:00:00+00:00")
    excess = KZ_EMISSIONS - KZ_NET
    decision = client.decide("kz", "retirement", "AAU", excess + 1, "MEP-RET-PPSR",
                             commitment_period=2, account_id=PPSR)
    over = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                        json={"decision_id": decision["decision_id"]}))
    assert over["response_codes"] == [4009]
    done = proposed(client, client.call("kz", "POST", "/transactions/retirement",
                                        json={"decision_id": decision["decision_id"],
                                              "quantity": excess}))
    assert done["status_name"] == "COMPLETED", done["evaluation_results"]
    assert done["acquiring"]["account_id"] == RETIREMENT_CP2
    assert itl_party(client)["counters"]["ppsr_retired"] == excess
    revision = client.call("kz", "GET", f"/decisions/{decision['decision_id']}",
                           headers=client.as_authorised_body("kz"))
    assert revision.json()["used_quantity"] == excess
