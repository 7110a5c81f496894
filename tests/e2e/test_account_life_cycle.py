"""Accounts blocked, unblocked and closed through the real processes: what a blocked or
closed account refuses on each side (2007, 2008, 5903, 5906), that nothing moves when it
does, closing only an empty account (2009), and the record of who, when and why.

External transfers KZ -> JP move first-period AAUs (Japan has no second-period
commitment)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.client import AUTHORISED_BODY, StackClient
from shared.codes import UnitType

pytestmark = pytest.mark.e2e

CLOCK_START = "2013-01-15T00:00:00+00:00"
PARTY = 1
ASSIGNED_AMOUNT_CP1 = 100_000
PERIOD = 1


@pytest.fixture(scope="module")
def kz(client: StackClient) -> None:
    """KZ's first-period assigned amount, issued as AAUs into its Party holding account."""
    client.set_assigned_amount("KZ", PERIOD, ASSIGNED_AMOUNT_CP1)
    issued = client.issue("kz", "AAU", ASSIGNED_AMOUNT_CP1, "MEP-CP1", period=PERIOD)
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"


def account_with(client: StackClient, name: str, quantity: int = 0) -> int:
    """A new KZ person holding account, given ``quantity`` AAUs from the Party account."""
    account = int(client.open_account("kz", name)["account_id"])
    if quantity:
        done = client.settle("kz", accepted(client.transfer("kz", PARTY, account, "AAU",
                                                            quantity, period=PERIOD)))
        assert done["status_name"] == "COMPLETED", done
    return account


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return str(response.json()["transaction_id"])


def refused(response: httpx.Response, status: int, code: int | None) -> str:
    """The refusal's detail, after checking its HTTP status and response code."""
    assert response.status_code == status, response.text
    assert response.json().get("response_code") == code, response.text
    return str(response.json()["detail"])


def change(client: StackClient, registry: str, account: int, action: str,
           reason: str | None = None, actor: str = "operator",
           headers: dict[str, str] | None = None) -> httpx.Response:
    """Block, unblock or close as ``actor`` (as ``StackClient.as_actor`` names it) or
    with ``headers``."""
    body = {} if reason is None else {"reason": reason}
    return client.call(registry, "POST", f"/accounts/{account}/{action}", json=body,
                       headers=headers or client.as_actor(registry, actor))


def books(client: StackClient, registry: str) -> dict[tuple[int, str], int]:
    """Units per (account, unit type) in a registry's books."""
    out: dict[tuple[int, str], int] = {}
    for row in client.registry_totals(registry):
        key = (row["account_id"], row["unit_type"])
        out[key] = out.get(key, 0) + row["units"]
    return out


def itl_books(client: StackClient, registry: str) -> dict[tuple[int, str], int]:
    """The same, in the ITL's register."""
    out: dict[tuple[int, str], int] = {}
    for row in client.itl_totals(registry.upper()):
        code = row["unit_type"]
        key = (row["account_id"], UnitType(int(code)).name if str(code).isdigit() else code)
        out[key] = out.get(key, 0) + row["units"]
    return out


def transaction_ids(client: StackClient, registry: str) -> list[str]:
    rows: list[dict[str, Any]] = client.ok(registry, "GET", "/transactions",
                                           params={"limit": 1000})
    return [row["transaction_id"] for row in rows]


def assert_nothing_moved(client: StackClient, before: dict[str, Any]) -> None:
    for registry in ("kz", "jp"):
        assert books(client, registry) == before[registry]
        assert itl_books(client, registry) == before[registry]


def snapshot(client: StackClient) -> dict[str, Any]:
    return {registry: books(client, registry) for registry in ("kz", "jp")}


def test_a_blocked_account_neither_gives_nor_receives_and_its_units_stay(
    client: StackClient, kz: None
) -> None:
    alice = account_with(client, "Alice Energy LLP", 1_000)
    bob = account_with(client, "Bob Cement JSC")
    view = change(client, "kz", alice, "block", "court order 2013-45").json()
    assert view["status"] == "blocked"

    before, sent = snapshot(client), transaction_ids(client, "kz")
    detail = refused(client.transfer("kz", alice, bob, "AAU", 100, period=PERIOD), 422, 2007)
    assert detail == f"transferring account {alice} is blocked"
    refused(client.transfer("kz", PARTY, alice, "AAU", 100, period=PERIOD), 422, 5903)
    assert_nothing_moved(client, before)
    assert transaction_ids(client, "kz") == sent  # nothing stored, nothing sent
    holdings = client.holdings("kz", alice)
    assert (holdings["available"], holdings["reserved"]) == (1_000, 0)

    assert change(client, "kz", alice, "unblock").json()["status"] == "open"
    done = client.settle("kz", accepted(client.transfer("kz", alice, bob, "AAU", 100,
                                                        period=PERIOD)))
    assert done["status_name"] == "COMPLETED"
    assert client.units_held("kz", alice) == 900 and client.units_held("kz", bob) == 100


def test_an_external_transfer_into_a_blocked_jp_account_is_rejected_by_jp_with_5903(
    client: StackClient, kz: None
) -> None:
    hiro = int(client.open_account("jp", "Hiroshima Power KK")["account_id"])
    assert change(client, "jp", hiro, "block", "sanctions review").status_code == 200

    before = snapshot(client)
    transaction_id = accepted(client.transfer("kz", PARTY, hiro, "AAU", 300,
                                              target_registry="JP", period=PERIOD))
    final = client.settle("kz", transaction_id)
    assert final["status_name"] == "TERMINATED"
    assert final["response_codes"] == [5903]
    assert [h["status"] for h in final["history"]] == [1, 6, 5]
    assert client.itl_transaction(transaction_id)["status"] == 6
    jp_view = client.wait_final("jp", transaction_id)
    assert (jp_view["direction"], jp_view["response_codes"]) == ("inbound", [5903])
    assert_nothing_moved(client, before)
    assert client.holdings("kz", PARTY)["reserved"] == 0

    change(client, "jp", hiro, "unblock", "review closed")
    again = accepted(client.transfer("kz", PARTY, hiro, "AAU", 300, target_registry="JP",
                                     period=PERIOD))
    assert client.settle("kz", again)["status_name"] == "COMPLETED"
    assert client.units_held("jp", hiro, "AAU") == 300
    for registry in ("kz", "jp"):
        assert itl_books(client, registry) == books(client, registry)


def test_closing_needs_an_empty_account_and_a_closed_account_refuses_both_sides(
    client: StackClient, kz: None
) -> None:
    carol = account_with(client, "Carol Steel JSC", 500)
    detail = refused(change(client, "kz", carol, "close", "holder dissolved"), 409, 2009)
    assert detail == f"account {carol} holds 500 AAU units of period 1"
    assert client.ok("kz", "GET", f"/accounts/{carol}")["status"] == "open"

    dave = account_with(client, "Dave Grain LLP")
    emptied = client.settle("kz", accepted(client.transfer("kz", carol, dave, "AAU", 500,
                                                           period=PERIOD)))
    assert emptied["status_name"] == "COMPLETED"
    closed = change(client, "kz", carol, "close", "holder dissolved")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"

    # units for a JP account that will try to send some to the closed account
    kenji = int(client.open_account("jp", "Kobe Trading KK")["account_id"])
    client.settle("kz", accepted(client.transfer("kz", PARTY, kenji, "AAU", 50,
                                                 target_registry="JP", period=PERIOD)))
    before, sent = snapshot(client), transaction_ids(client, "kz")
    refused(client.transfer("kz", dave, carol, "AAU", 10, period=PERIOD), 422, 5906)
    detail = refused(client.transfer("kz", carol, dave, "AAU", 1, period=PERIOD), 422, 2008)
    assert detail == f"transferring account {carol} is closed"
    assert transaction_ids(client, "kz") == sent
    inbound = accepted(client.transfer("jp", kenji, carol, "AAU", 10, target_registry="KZ",
                                       period=PERIOD))
    final = client.settle("jp", inbound)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [5906])
    assert client.wait_final("kz", inbound)["response_codes"] == [5906]
    assert client.itl_transaction(inbound)["status"] == 6
    assert_nothing_moved(client, before)

    for action in ("block", "unblock", "close"):
        detail = refused(change(client, "kz", carol, action, "again"), 409, None)
        assert detail.startswith(f"account {carol} is closed: only ")


def test_government_accounts_made_at_start_up_are_never_blocked_or_closed(
    client: StackClient, kz: None
) -> None:
    retirement = 3  # empty, and still needed
    assert client.units_held("kz", retirement) == 0
    for account in (PARTY, retirement):
        assert client.ok("kz", "GET", f"/accounts/{account}")["fixed"] is True
        for action in ("block", "close"):
            detail = refused(change(client, "kz", account, action, "tidy up"), 409, None)
            assert f"government account the registry needs: it is never {action}" in detail
        assert client.ok("kz", "GET", f"/accounts/{account}")["status"] == "open"


def test_issuance_into_a_blocked_or_closed_party_holding_account_is_refused(
    client: StackClient, kz: None
) -> None:
    """An extra Party holding account, opened by the operator, may be blocked and closed;
    issuance into it is then refused with 5903 and 5906, and the decision stays unused."""
    extra = int(client.open_account("kz", "Second Party holding account",
                                    account_type=100)["account_id"])
    decision = client.decide("kz", "issuance", "AAU", 10, "MEP-CP1-late",
                             commitment_period=PERIOD)
    before = snapshot(client)
    for action, code in (("block", 5903), ("close", 5906)):
        assert change(client, "kz", extra, action, "no longer used").status_code == 200
        response = client.call("kz", "POST", "/transactions/issuance",
                               json={"decision_id": decision["decision_id"],
                                     "acquiring_account_id": extra})
        refused(response, 422, code)
    assert client.ok("kz", "GET", f"/decisions/{decision['decision_id']}")[
        "used_quantity"] == 0
    assert_nothing_moved(client, before)


def test_the_operator_opens_only_holding_accounts_and_the_cdm_registry_only_121(
    client: StackClient, kz: None
) -> None:
    """A registry keeps one PPSR and its cancellation, retirement and replacement accounts
    per period itself; 110 and 240-242 are the CDM registry's. Refused with 422 naming
    account_type and why; nothing is opened."""
    accounts = {name: client.ok(name, "GET", "/accounts") for name in ("kz", "cdm")}
    reasons = {
        130: "one previous period surplus reserve (1/CMP.8 paras 23-26), which it keeps "
             "itself: account 4",
        110: "exists only in the CDM registry",
        270: "keeps its ARTICLE_37TER_CANCELLATION account (of the second period only) "
             "itself: 13",
        300: "keeps its RETIREMENT accounts itself, one per commitment period: 3 (period 2), "
             "103 (period 1)",
        411: "keeps its TCER_REPLACEMENT_EXPIRY accounts itself, one per commitment period",
        230: "keeps its VOLUNTARY_CANCELLATION accounts itself, one per commitment period",
        240: "exists only in the CDM registry",
    }
    for account_type, why in reasons.items():
        response = client.call("kz", "POST", "/accounts",
                               json={"holder_name": "Second", "account_type": account_type})
        detail = refused(response, 422, 2004)
        assert detail.startswith(f"account_type {account_type} "), detail
        assert why in detail, detail
    cdm_reasons = {100: "keeps its PARTY_HOLDING account itself: 1100",
                   120: "belongs to a Party's national registry",
                   130: "belongs to a Party's national registry",
                   240: "keeps its EXCESS_ISSUANCE_CANCELLATION account itself: 2240"}
    for account_type, why in cdm_reasons.items():
        response = client.call("cdm", "POST", "/accounts",
                               json={"holder_name": "Second", "account_type": account_type})
        assert why in refused(response, 422, 2004)
    assert {name: client.ok(name, "GET", "/accounts") for name in ("kz", "cdm")} == accounts

    opened = [client.open_account("kz", f"Holder {t}", account_type=t) for t in (121, 120, 100)]
    assert [a["account_type"] for a in opened] == [121, 120, 100]
    participant = client.open_account("cdm", "Project participant")
    assert participant["account_type"] == 121


def test_only_the_operator_changes_an_accounts_status(client: StackClient, kz: None) -> None:
    erin = account_with(client, "Erin Logistics LLP")
    for actor in (f"holder:{erin}", AUTHORISED_BODY):
        response = change(client, "kz", erin, "block", "mine", actor=actor)
        assert response.status_code == 403, response.text
        assert "started by the operator" in response.json()["detail"]
    assert client.ok("kz", "GET", f"/accounts/{erin}")["status"] == "open"
    assert change(client, "kz", 987_654, "block", "who?").status_code == 404
    assert change(client, "kz", erin, "block").status_code == 422  # reason required
    assert change(client, "kz", erin, "block", "   ").status_code == 422
    assert "only blocked accounts" in refused(change(client, "kz", erin, "unblock"), 409, None)
    change(client, "kz", erin, "block", "inquiry")
    assert "only open accounts" in refused(change(client, "kz", erin, "block", "twice"),
                                           409, None)


def test_who_when_and_why_are_shown_with_the_account(client: StackClient, kz: None) -> None:
    frank = account_with(client, "Frank Mining LLP")
    moments = []
    # two operators: each change records the person who made it, in the role it was made
    for action, reason, person in (("block", "suspected fraud", 1), ("unblock", None, 2),
                                   ("close", "holder request", 1)):
        response = change(client, "kz", frank, action, reason,
                          headers=client.as_operator("kz", person))
        assert response.status_code == 200, response.text
        moments.append(datetime.fromisoformat(client.ok("kz", "GET", "/admin/clock")["now"]))
    view = client.ok("kz", "GET", f"/accounts/{frank}")
    assert view["status"] == "closed"
    history = view["status_history"]
    assert [(h["status"], h["by"], h["reason"]) for h in history] == [
        ("blocked", "operator kz-operator-1", "suspected fraud"),
        ("open", "operator kz-operator-2", None),
        ("closed", "operator kz-operator-1", "holder request"),
    ]
    for entry, read_after in zip(history, moments, strict=True):
        at = datetime.fromisoformat(entry["at"])
        assert read_after - timedelta(seconds=30) <= at <= read_after  # the KZ clock
        assert at.year == 2013
    listed = {a["account_id"]: a for a in client.ok("kz", "GET", "/accounts")}
    assert listed[frank]["status"] == "closed"
