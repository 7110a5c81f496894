"""Every transaction kind ends within the time-out, in both books alike (docs/adr/0017):
a registry stopped (SIGSTOP) past its deadline, the ITL stopped while a completion
waits in its inbox, an issuance (national and CDM) that never completes, an external
transfer its proposer never completes after the acquiring registry accepted, an
allowance transfer the acquiring Member State never answers. The simulation clock is
moved past the deadlines instead of waiting for them."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import UnitType
from shared.messaging import inbox_queue_name
from shared.testing.infra import amqp_url

pytestmark = pytest.mark.e2e


YEAR = 2015
MEMBER_STATE_ENV = {"ESD_ENABLED": "true", "ESD_2005_EMISSIONS": "10000"}
# the module's stack (tests/e2e/conftest.py): KZ, and two Member States
REGISTRIES = ("KZ", "DE", "FR")
#: KZ's broker heartbeat is short: stopped a few seconds, it loses its connection and,
#: with it, the clock settings broadcast meanwhile, as after a long pause.
HEARTBEAT_SECONDS = 2
REGISTRY_ENV = {"DE": MEMBER_STATE_ENV, "FR": MEMBER_STATE_ENV,
                "KZ": {"AMQP_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}}
CLOCK_START = "2014-03-01T00:00:00+00:00"
#: The ITL's grace after a deadline (TRANSACTION_TIMEOUT_GRACE_MINUTES, its default).
GRACE = timedelta(minutes=30)
PARTY = 1
#: Messages waiting in the ITL's inbox before a completion report.
BACKLOG = 30
TIMED_OUT = 1104
FINAL = {4, 5, 6, 7}


def consumers(namespace: str, code: str) -> int:
    """How many consumers read ``code``'s inbox now (0 once the broker dropped it)."""

    async def count() -> int:
        connection = await aio_pika.connect(amqp_url())
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(inbox_queue_name(code, namespace),
                                                passive=True)
            return int(queue.declaration_result.consumer_count or 0)
        finally:
            await connection.close()

    return asyncio.run(count())


@pytest.fixture(scope="module", autouse=True)
def no_hold() -> Iterator[None]:
    """The ITL's real-time hold before a time-out off (``TRANSACTION_TIMEOUT_HOLD_SECONDS``
    0, read by the processes of the module's stack): the ITL's own inbox alone keeps it
    from ending a transaction whose answer waits there."""
    os.environ["TRANSACTION_TIMEOUT_HOLD_SECONDS"] = "0"
    yield
    del os.environ["TRANSACTION_TIMEOUT_HOLD_SECONDS"]


@pytest.fixture
def paused(stack: LocalStack) -> Iterator[set[str]]:
    """Services this test stopped; whatever happens, they run again afterwards."""
    stopped: set[str] = set()
    yield stopped
    for name in stopped:
        os.kill(_pid(stack, name), signal.SIGCONT)


def _pid(stack: LocalStack, name: str) -> int:
    pid = stack.services[name].pid
    assert pid is not None
    return pid


def stop(stack: LocalStack, paused: set[str], name: str) -> None:
    os.kill(_pid(stack, name), signal.SIGSTOP)
    paused.add(name)


def resume(stack: LocalStack, paused: set[str], name: str) -> None:
    os.kill(_pid(stack, name), signal.SIGCONT)
    paused.discard(name)


def wait_published(stack: LocalStack, service: str, correlation_id: str,
                   message_type: str, count: int = 1) -> None:
    """Until ``service`` has published (broker confirm) ``count`` messages of
    ``message_type`` for ``correlation_id``: they are on the broker then, whoever reads."""
    store: MongoClient[dict[str, Any]]
    with MongoClient(stack.store_url(service)) as store:
        outbox: Collection[dict[str, Any]] = store[StackDatabases.database_of(service)].outbox
        poll(lambda: outbox.count_documents({"correlation_id": correlation_id,
                                             "message_type": message_type,
                                             "published": True}),
             lambda n: n >= count, f"{message_type} of {correlation_id} from {service}")


def move_clock(client: StackClient, via: str, moment: datetime) -> None:
    """Set the whole stack's clock through ``via`` (a running service)."""
    client.ok(via, "PUT", "/admin/clock", json={"now": moment.isoformat()})


def itl_status(client: StackClient, transaction_id: str, status: int) -> Any:
    """The ITL's view of a transaction once it has ``status``."""
    view = poll(lambda: client.call("itl", "GET", f"/transactions/{transaction_id}"),
                lambda r: r.status_code == 200 and r.json()["status"] in {status, *FINAL},
                f"{transaction_id} at {status} in the ITL").json()
    assert view["status"] == status, view
    return view


def view_once(client: StackClient, service: str, path: str, done: Any) -> Any:
    """``GET path`` of ``service`` once it exists and ``done`` holds for it."""
    return poll(lambda: client.call(service, "GET", path),
                lambda r: r.status_code == 200 and bool(done(r.json())),
                f"{path} in {service}").json()


def registry_books(client: StackClient, registry: str) -> dict[tuple[int, int, int], int]:
    """A registry's units per account, unit type and period."""
    return {(r["account_id"], int(UnitType[r["unit_type"]]),
             r["applicable_commitment_period"]): r["units"]
            for r in client.registry_totals(registry.lower())}


def itl_books(client: StackClient, registry: str) -> dict[tuple[int, int, int], int]:
    """The ITL's register of the same."""
    return {(r["account_id"], r["unit_type"], r["applicable_cp"]): r["units"]
            for r in client.itl_totals(registry)}


def assert_books_agree(client: StackClient, *registries: str) -> None:
    for registry in registries:
        assert registry_books(client, registry) == itl_books(client, registry), registry
        assert not [b for b in client.ok("itl", "GET", "/units", params={"registry": registry})
                    if b["reserved_by"] or b["issuing"]], registry


def reserved(client: StackClient, registry: str, account: int) -> int:
    return int(client.holdings(registry, account)["reserved"])


def codes_and_reasons(view: Any) -> tuple[list[int], str]:
    results = view["evaluation_results"]
    return [r["response_code"] for r in results], " ".join(r["message"] for r in results)


@pytest.fixture(scope="module")
def accounts(client: StackClient) -> dict[str, int]:
    """KZ's assigned amount and 100 000 AAUs in its Party holding account, a person
    holding account in KZ and one in DE, a CDM project."""
    # a reviewed inventory keeps the reserve (8 x 1000) below what KZ holds
    client.set_assigned_amount("KZ", 2, 200_000, reviewed_inventory=1_000)
    client.set_assigned_amount("DE", 2, 100_000, reviewed_inventory=1_000)
    issued = client.issue("kz", "AAU", 100_000, "MEP-2014-1")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    client.ok("cdm", "POST", "/projects",
              json={"project_id": "CDM-KZ-1", "title": "Astana wind", "host_party": "KZ"})
    return {"alice": client.open_account("kz", "Alice")["account_id"],
            "berta": client.open_account("de", "Berta GmbH")["account_id"]}


def transfer(client: StackClient, target: int, quantity: int,
             registry: str | None = None) -> Callable[[], str]:
    """Proposing a transfer of AAUs from KZ's Party holding account: its transaction id."""

    def propose() -> str:
        response = client.transfer("kz", PARTY, target, "AAU", quantity,
                                   target_registry=registry)
        assert response.status_code == 202, response.text
        return str(response.json()["transaction_id"])

    return propose


def proposed_while_the_proposer_is_stopped(
    stack: LocalStack, client: StackClient, paused: set[str], proposer: str, propose: Any,
) -> str:
    """Propose through ``propose`` (returns the transaction id) so that the proposer is
    stopped before the ITL's answer reaches it: the ITL is stopped while the proposal is
    published, then the proposer is, then the ITL runs again."""
    stop(stack, paused, "itl")
    transaction_id: str = propose()
    wait_published(stack, proposer, transaction_id, "ProposalSubmitted")
    stop(stack, paused, proposer)
    resume(stack, paused, "itl")
    return transaction_id


def test_an_internal_transfer_whose_registry_is_stopped_past_the_time_out_ends_in_both_books(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    before = registry_books(client, "kz")

    tx = proposed_while_the_proposer_is_stopped(
        stack, client, paused, "kz", transfer(client, accounts["alice"], 50))
    approved = itl_status(client, tx, 2)
    deadline = datetime.fromisoformat(approved["deadline"])
    assert [b["quantity"] for b in client.ok("itl", "GET", "/units", params={"registry": "KZ"})
            if b["reserved_by"] == tx] == [50]

    # KZ stays stopped until the broker drops its connection: the clock setting that
    # follows never reaches it (its clock queue went with the connection)
    poll(lambda: consumers(stack.namespace, "KZ"), lambda n: n == 0,
         "KZ's connection dropped by the broker")
    # the ITL ends it on its own once the deadline and the grace have passed
    move_clock(client, "itl", deadline + GRACE + timedelta(minutes=1))
    ended = itl_status(client, tx, 5)
    codes, reasons = codes_and_reasons(ended)
    assert codes == [TIMED_OUT] and "KZ did not complete it by the deadline" in reasons
    assert not [b for b in client.ok("itl", "GET", "/units", params={"registry": "KZ"})
                if b["reserved_by"] == tx]

    # KZ wakes up with the ITL's 2 first in its inbox: past the deadline on the stack's
    # clock, it ends the transfer too instead of completing it
    resume(stack, paused, "kz")
    final = client.wait_final("kz", tx)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [TIMED_OUT])
    assert registry_books(client, "kz") == before
    assert reserved(client, "kz", PARTY) == 0
    assert client.units_held("kz", accounts["alice"]) == 0
    assert_books_agree(client, "KZ")
    assert client.itl_transaction(tx)["status"] == 5


def test_a_registry_past_its_deadline_ends_the_transaction_and_the_itl_follows_at_once(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    before = registry_books(client, "kz")

    tx = proposed_while_the_proposer_is_stopped(
        stack, client, paused, "kz", transfer(client, accounts["alice"], 30))
    deadline = datetime.fromisoformat(itl_status(client, tx, 2)["deadline"])
    # past the deadline, within the grace: the ITL does not end it itself, KZ does
    move_clock(client, "itl", deadline + timedelta(minutes=1))
    resume(stack, paused, "kz")
    final = client.wait_final("kz", tx)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [TIMED_OUT])
    ended = itl_status(client, tx, 5)
    codes, reasons = codes_and_reasons(ended)
    assert codes == [TIMED_OUT] and "had passed when the registry could act" in reasons
    assert registry_books(client, "kz") == before
    assert_books_agree(client, "KZ")


def test_a_completion_reported_in_time_is_never_undone_by_the_time_out(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    alice_before = client.units_held("kz", accounts["alice"])

    tx = proposed_while_the_proposer_is_stopped(
        stack, client, paused, "kz", transfer(client, accounts["alice"], 20))
    deadline = datetime.fromisoformat(itl_status(client, tx, 2)["deadline"])
    wait_published(stack, "itl", tx, "TransactionStatusNotified")
    # the ITL stops; DE's issuances queue up in its inbox, then KZ completes in time and
    # its report waits behind them
    stop(stack, paused, "itl")
    issuances = [client.issue("de", "AAU", 10, f"DE-2014-{n}")["transaction_id"]
                 for n in range(BACKLOG)]
    resume(stack, paused, "kz")
    assert client.wait_final("kz", tx)["status_name"] == "COMPLETED"
    wait_published(stack, "kz", tx, "TransactionStatusNotified")
    # then the stack's clock passes the deadline and the grace, and the ITL wakes up:
    # its time-out sweep runs at once, before the report is read
    move_clock(client, "kz", deadline + GRACE + timedelta(hours=1))
    resume(stack, paused, "itl")
    completed = client.wait_final("itl", tx)
    assert completed["status_name"] == "COMPLETED", completed
    assert client.units_held("kz", accounts["alice"]) == alice_before + 20
    assert_books_agree(client, "KZ")
    for issuance in issuances:
        assert client.settle("de", issuance)["status_name"] == "COMPLETED"
    assert_books_agree(client, "DE")


def test_a_national_issuance_that_never_completes_frees_its_issuing_blocks(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    before = registry_books(client, "kz")
    decision = client.decide("kz", "issuance", "AAU", 500, "MEP-2014-9", commitment_period=2)

    def propose() -> str:
        tx = client.ok("kz", "POST", "/transactions/issuance",
                       json={"decision_id": decision["decision_id"]})
        return str(tx["transaction_id"])

    tx = proposed_while_the_proposer_is_stopped(stack, client, paused, "kz", propose)
    deadline = datetime.fromisoformat(itl_status(client, tx, 2)["deadline"])
    issuing = [b for b in client.ok("itl", "GET", "/units", params={"registry": "KZ"})
               if b["reserved_by"] == tx]
    assert [(b["quantity"], b["issuing"]) for b in issuing] == [(500, True)]
    move_clock(client, "itl", deadline + GRACE + timedelta(minutes=1))
    assert codes_and_reasons(itl_status(client, tx, 5))[0] == [TIMED_OUT]
    assert not [b for b in client.ok("itl", "GET", "/units", params={"registry": "KZ"})
                if b["reserved_by"] == tx or b["issuing"]]
    resume(stack, paused, "kz")
    final = client.wait_final("kz", tx)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [TIMED_OUT])
    # nothing was issued, and the decision counts the units no more
    assert registry_books(client, "kz") == before
    again = client.ok("kz", "GET", f"/decisions/{decision['decision_id']}")
    assert (again["used_quantity"], again["state"]) == (0, "recorded")
    assert_books_agree(client, "KZ")


def test_a_cdm_issuance_that_never_completes_frees_its_issuing_blocks(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    requests: list[Any] = []

    def propose() -> str:
        request = client.ok("cdm", "POST", "/projects/CDM-KZ-1/issuances",
                            json={"unit_type": "CER", "quantity": 300,
                                  "acquiring_registry": "KZ", "acquiring_account_type": 121,
                                  "acquiring_account_id": accounts["alice"]})
        requests.append(request)
        return str(request["issuance_transaction"])

    tx = proposed_while_the_proposer_is_stopped(stack, client, paused, "cdm", propose)
    deadline = datetime.fromisoformat(itl_status(client, tx, 2)["deadline"])
    assert [(b["quantity"], b["issuing"]) for b in
            client.ok("itl", "GET", "/units", params={"registry": "CDM"})
            if b["reserved_by"] == tx] == [(300, True)]
    move_clock(client, "itl", deadline + GRACE + timedelta(minutes=1))
    assert codes_and_reasons(itl_status(client, tx, 5))[0] == [TIMED_OUT]
    assert not [b for b in client.ok("itl", "GET", "/units", params={"registry": "CDM"})
                if b["issuing"]]
    resume(stack, paused, "cdm")
    request_id = requests[0]["request_id"]
    failed = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request_id}"),
                  lambda r: r["state"] != "issuing", "CDM issuance request")
    assert (failed["state"], failed["forward_transaction"]) == ("failed", None)
    final = client.wait_final("cdm", tx)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [TIMED_OUT])
    assert client.units_held("kz", accounts["alice"], "CER") == 0
    assert_books_agree(client, "CDM", "KZ")


def test_an_external_transfer_its_proposer_never_completes_after_acceptance_ends_in_all_books(
    stack: LocalStack, client: StackClient, accounts: dict[str, int], paused: set[str],
) -> None:
    kz_before = registry_books(client, "kz")
    de_before = registry_books(client, "de")

    tx = proposed_while_the_proposer_is_stopped(
        stack, client, paused, "kz", transfer(client, accounts["berta"], 100, "DE"))
    # DE accepts; the ITL now waits for KZ's completion, with a deadline of its own
    accepted = itl_status(client, tx, 8)
    deadline = datetime.fromisoformat(accepted["deadline"])
    accepted_at = datetime.fromisoformat(accepted["history"][-1]["at"])
    assert abs(deadline - accepted_at - timedelta(hours=24)) < timedelta(seconds=1)
    move_clock(client, "itl", deadline + GRACE + timedelta(minutes=1))
    ended = itl_status(client, tx, 5)
    codes, reasons = codes_and_reasons(ended)
    assert codes == [TIMED_OUT] and "KZ did not complete it" in reasons
    inbound = client.wait_final("de", tx)
    assert inbound["status_name"] == "TERMINATED"
    assert client.units_held("de", accounts["berta"]) == 0
    # KZ wakes up to the 8 past its deadline: it debits nothing and releases the units
    # and the share of proceeds it had set aside
    resume(stack, paused, "kz")
    final = client.wait_final("kz", tx)
    assert (final["status_name"], final["response_codes"]) == ("TERMINATED", [TIMED_OUT])
    assert registry_books(client, "kz") == kz_before
    assert registry_books(client, "de") == de_before
    assert reserved(client, "kz", PARTY) == 0
    assert_books_agree(client, "KZ", "DE")


def test_an_allowance_transfer_left_unanswered_is_refused_and_both_ledgers_agree(
    stack: LocalStack, client: StackClient, paused: set[str],
) -> None:
    stop(stack, paused, "fr")
    proposed = client.ok("de", "POST", f"/esd/years/{YEAR}/transfers",
                         json={"acquiring_state": "FR", "quantity": 100})
    transfer_id = proposed["transfer_id"]
    forwarded = view_once(client, "itl", f"/esd-transfers/{transfer_id}",
                          lambda t: t["state"] == "forwarded")
    deadline = datetime.fromisoformat(forwarded["deadline"])
    assert client.ok("de", "GET", f"/esd/years/{YEAR}/ledger")["reserved_out"] == 100
    move_clock(client, "itl", deadline + GRACE + timedelta(minutes=1))
    at_itl = view_once(client, "itl", f"/esd-transfers/{transfer_id}",
                       lambda t: t["state"] != "forwarded")
    assert (at_itl["state"], at_itl["response_code"]) == ("refused", TIMED_OUT)
    at_de = view_once(client, "de", f"/esd/transfers/{transfer_id}",
                      lambda t: t["state"] != "proposed")
    assert (at_de["state"], at_de["response_code"]) == ("refused", TIMED_OUT)
    # FR wakes up to the forwarded transfer past its deadline: it refuses, books nothing
    resume(stack, paused, "fr")
    at_fr = view_once(client, "fr", f"/esd/transfers/{transfer_id}", lambda t: True)
    assert (at_fr["state"], at_fr["response_code"]) == ("refused", TIMED_OUT)
    de_ledger = client.ok("de", "GET", f"/esd/years/{YEAR}/ledger")
    fr_ledger = client.ok("fr", "GET", f"/esd/years/{YEAR}/ledger")
    assert (de_ledger["reserved_out"], de_ledger["transferred_out"]) == (0, 0)
    assert (fr_ledger["reserved_in"], fr_ledger["transferred_in"]) == (0, 0)
    assert fr_ledger["limit"] == de_ledger["limit"] == 300
    # FR's late refusal changes nothing at the ITL
    answered = poll(lambda: client.ok("itl", "GET", "/messages",
                                      params={"correlation_id": transfer_id}),
                    lambda rows: any(r["message_type"] == "AllowanceTransferAnswered"
                                     for r in rows), "FR's late answer at the ITL")
    assert [r["message_type"] for r in answered if r["direction"] == "out"] == [
        "AllowanceTransferForwarded", "TimeOutDue", "AllowanceTransferNotified",
        "AllowanceTransferNotified"]
    assert client.ok("itl", "GET", f"/esd-transfers/{transfer_id}")["state"] == "refused"
