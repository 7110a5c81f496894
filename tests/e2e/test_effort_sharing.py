"""Effort sharing (Decision 406/2009/EC Art. 5) across real processes: two Member State
registries (DE, FR), a registry that is not a Member State (KZ), the ITL and the CDM
registry that issues the CERs FR surrenders."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.local.client import StackClient, holder, poll

pytestmark = pytest.mark.e2e

YEAR = 2015
EMISSIONS_2005 = 10_000  # 3 % = 300 units a year
MEMBER_STATE_ENV = {"ESD_ENABLED": "true", "ESD_2005_EMISSIONS": str(EMISSIONS_2005)}
# the module's stack (tests/e2e/conftest.py): two Member States and a Party that is not one
REGISTRIES = ("DE", "FR", "KZ")
REGISTRY_ENV = {"DE": MEMBER_STATE_ENV, "FR": MEMBER_STATE_ENV}
PROJECT = "CDM-IN-406"
ESD_ACCOUNT = 406



def ledger(client: StackClient, registry: str) -> Any:
    return client.ok(registry, "GET", f"/esd/years/{YEAR}/ledger")


@pytest.fixture(scope="module")
def fr_with_cers(client: StackClient) -> int:
    """The CDM registry issues 1000 CERs for an Indian project registered in 2010; 980
    reach an FR person holding account; FR records the project's facts."""
    c = client
    # the header names the actor where the registry API asks for one
    account = c.ok("fr", "POST", "/accounts", json={"holder_name": "Paris Chauffage SA"},
                   headers=c.as_operator("fr"))["account_id"]
    c.ok("cdm", "POST", "/projects", json={"project_id": PROJECT, "title": "Gujarat wind",
                                           "host_party": "IN"})
    request = c.ok("cdm", "POST", f"/projects/{PROJECT}/issuances",
                   json={"unit_type": "CER", "quantity": 1000, "commitment_period": 2,
                         "acquiring_registry": "FR", "acquiring_account_type": 121,
                         "acquiring_account_id": account})
    poll(lambda: c.ok("cdm", "GET", f"/issuances/{request['request_id']}"),
         lambda r: r["state"] in ("completed", "failed"), "CDM issuance")
    poll(lambda: c.units_held("fr", account, "CER"), lambda n: n == 980, "CERs in FR")
    c.ok("fr", "PUT", f"/esd/projects/{PROJECT}",
         json={"host_country": "IN", "registered_on": "2010-05-01",
               "crediting_start": "2010-06-01", "ets_eligible_2008_2012": True})
    return int(account)


def surrender(client: StackClient, account: int, quantity: int) -> Any:
    return client.call("fr", "POST", f"/esd/years/{YEAR}/surrenders",
                       json={"transferring_account_id": account, "unit_type": "CER",
                             "quantity": quantity, "project_id": PROJECT},
                       headers=client.as_actor("fr", holder(account)))


def test_member_state_configuration_reports_the_source_of_each_value(
        client: StackClient) -> None:
    view = client.ok("de", "GET", "/esd/member-state")
    assert view["member_state"] == "DE"
    assert view["values"]["emissions_2005"] == {"value": EMISSIONS_2005,
                                                "status": "set by operator (unverified)"}
    assert view["values"]["annex_ii_limit_percent"] == {
        "value": -14, "status": "reference data: official-secondary"}
    assert view["esd_account"] == "DE-100-406"
    assert client.call("kz", "GET", f"/esd/years/{YEAR}/ledger").status_code == 404


def test_transferred_allowance_lets_fr_use_more_than_its_own_3_percent_and_no_more(
        client: StackClient, fr_with_cers: int) -> None:
    c = client
    assert ledger(c, "fr")["limit"] == 300

    # DE transfers 100 units of unused 3 % to FR through the ITL; both ledgers agree
    proposed = c.ok("de", "POST", f"/esd/years/{YEAR}/transfers",
                    json={"acquiring_state": "FR", "quantity": 100})
    transfer_id = proposed["transfer_id"]
    assert proposed["state"] == "proposed"
    done = poll(lambda: c.ok("de", "GET", f"/esd/transfers/{transfer_id}"),
                lambda t: t["state"] != "proposed", "DE transfer outcome")
    assert done["state"] == "accepted", done
    # FR held the amount when it accepted and books it once the ITL confirms
    inbound = poll(lambda: c.ok("fr", "GET", f"/esd/transfers/{transfer_id}"),
                   lambda t: t["state"] != "pending", "FR transfer outcome")
    assert [h["state"] for h in inbound["history"]] == ["pending", "accepted"]
    fr_ledger = ledger(c, "fr")
    assert fr_ledger["reserved_in"] == 0
    de_ledger = ledger(c, "de")
    assert fr_ledger["transferred_in"] == de_ledger["transferred_out"] == 100
    assert (de_ledger["limit"], de_ledger["reserved_out"]) == (200, 0)
    assert fr_ledger["limit"] == 400
    assert c.ok("fr", "GET", f"/esd/transfers/{transfer_id}")["direction"] == "inbound"
    journal = c.ok("itl", "GET", "/messages", params={"correlation_id": transfer_id})
    assert [(m["direction"], m["message_type"], m["recipient"]) for m in journal] == [
        ("in", "AllowanceTransferSubmitted", "ITL"),
        ("out", "AllowanceTransferForwarded", "FR"),
        ("in", "AllowanceTransferAnswered", "ITL"),
        ("out", "AllowanceTransferNotified", "DE"),
        ("out", "AllowanceTransferNotified", "FR")]
    logged = c.ok("itl", "GET", f"/esd-transfers/{transfer_id}")
    assert [h["state"] for h in logged["history"]] == ["forwarded", "accepted"]
    assert transfer_id in [t["transfer_id"] for t in
                           c.ok("itl", "GET", "/esd-transfers", params={"state": "accepted"})]

    # FR surrenders 400 CERs, more than its own 300: accepted and booked
    response = surrender(c, fr_with_cers, 400)
    assert response.status_code == 202, response.text
    transaction_id = response.json()["transaction_id"]
    assert response.json()["paragraphs"] == {"5(1)(b)": 400}
    c.settle("fr", transaction_id)
    final = poll(lambda: c.ok("fr", "GET", f"/esd/surrenders/{transaction_id}"),
                 lambda s: s["state"] != "proposed", "surrender outcome")
    assert final["state"] == "completed", final
    assert c.units_held("fr", ESD_ACCOUNT, "CER") == 400
    after = ledger(c, "fr")
    assert after["used"]["general"] == 400
    assert after["general_available"] == 0 and after["reserved"]["general"] == 0

    # one unit more is refused with the reason, and changes nothing
    held_before = c.units_held("fr", fr_with_cers, "CER")
    refused = surrender(c, fr_with_cers, 1)
    assert refused.status_code == 422, refused.text
    assert refused.json()["response_code"] == 4111
    assert "0 available" in refused.json()["detail"]
    assert ledger(c, "fr") == after
    assert c.units_held("fr", fr_with_cers, "CER") == held_before

    # surrendered credits cannot be taken back out of the effort-sharing account
    back = c.transfer("fr", ESD_ACCOUNT, fr_with_cers, "CER", 1)
    assert back.status_code == 422, back.text
    assert "stay in the effort-sharing account" in back.json()["detail"]
    assert c.units_held("fr", ESD_ACCOUNT, "CER") == 400
    # nor is the account closed under them: the registry made it and needs it
    closing = c.call("fr", "POST", f"/accounts/{ESD_ACCOUNT}/close",
                     json={"reason": "tidy up"}, headers=c.as_operator("fr"))
    assert closing.status_code == 409, closing.text
    assert "government account the registry needs" in closing.json()["detail"]
    assert c.ok("fr", "GET", f"/accounts/{ESD_ACCOUNT}")["status"] == "open"

    report = c.ok("fr", "GET", f"/esd/years/{YEAR}/report")
    assert report["used_by_paragraph"] == {"5(1)(b)": 400}
    assert [t["transfer_id"] for t in report["transfers"]] == [transfer_id]


def test_transfer_to_a_registry_that_is_not_a_member_state_is_refused_and_released(
        client: StackClient) -> None:
    c = client
    before = ledger(c, "de")
    proposed = c.ok("de", "POST", f"/esd/years/{YEAR}/transfers",
                    json={"acquiring_state": "KZ", "quantity": 10})
    assert ledger(c, "de")["reserved_out"] == before["reserved_out"] + 10
    done = poll(lambda: c.ok("de", "GET", f"/esd/transfers/{proposed['transfer_id']}"),
                lambda t: t["state"] != "proposed", "DE transfer outcome")
    assert (done["state"], done["response_code"]) == ("refused", 4113)
    assert ledger(c, "de") == before


def test_transfer_beyond_the_unused_3_percent_is_refused_at_once(
        client: StackClient) -> None:
    response = client.call("de", "POST", f"/esd/years/{YEAR}/transfers",
                               json={"acquiring_state": "FR", "quantity": 10_000})
    assert response.status_code == 422
    assert response.json()["response_code"] == 4116


def test_closing_a_year_carries_the_unused_limit_into_the_next_year(
        client: StackClient) -> None:
    c = client
    before = ledger(c, "de")
    closed = c.ok("de", "POST", f"/esd/years/{YEAR}/close")
    assert closed["closed"]["closed"] is True
    assert closed["closed"]["carried_out"] == before["unused"] == before["limit"]
    following = c.ok("de", "GET", f"/esd/years/{YEAR + 1}/ledger")
    assert following["carried_in"] == before["unused"]
    assert following["limit"] == following["general_allowance"] + before["unused"]
    again = c.call("de", "POST", f"/esd/years/{YEAR}/close")
    assert (again.status_code, again.json()["response_code"]) == (422, 4114)
    late = c.call("de", "POST", f"/esd/years/{YEAR}/transfers",
                  json={"acquiring_state": "FR", "quantity": 1})
    assert late.json()["response_code"] == 4114
