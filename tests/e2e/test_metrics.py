"""``GET /metrics`` of every service of an external transfer (KZ, the acquiring registry
CH, the ITL, the CDM registry that receives the share of proceeds) moves as the transfer
goes: HTTP requests by route and status, messages in and out and their handling
latency, transactions by status, the ITL's checks by response code, dead letters by
type and reason, the outbox backlog (shared/metrics.py, docs/adr/0043); and the log
lines of a handled message carry its transaction id and message id (shared/logs.py).
One stack for the module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import ResponseCode
from shared.testing.infra import publish_and_collect_dead_letters

pytestmark = pytest.mark.e2e

SERVICES = ("kz", "ch", "itl", "cdm")
PARTY_HOLDING = 1
ASSIGNED_AMOUNT = 100_000
#: Units of the external transfer: KZ's first international transfer of AAUs, so the
#: share of proceeds (2 %) goes to the CDM registry's Adaptation Fund account.
TRANSFERRED = 3000

Labels = tuple[tuple[str, str], ...]


class Samples(dict[tuple[str, Labels], float]):
    """Every sample of a ``/metrics`` page (counters, gauges, histograms' ``_count``...)
    by (sample name, sorted labels)."""

    @classmethod
    def scrape(cls, client: StackClient, service: str) -> Samples:
        response = client.call(service, "GET", "/metrics")
        response.raise_for_status()
        samples = cls()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        return samples

    def get_sum(self, name: str, **labels: str) -> float:
        """The sum of ``name`` over the samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(value for (sample, sample_labels), value in self.items()
                   if sample == name and wanted <= set(sample_labels))

    def minus(self, earlier: Mapping[tuple[str, Labels], float]) -> Samples:
        return Samples({key: value - earlier.get(key, 0.0) for key, value in self.items()})


def scrape_all(client: StackClient) -> dict[str, Samples]:
    return {service: Samples.scrape(client, service) for service in SERVICES}


@pytest.fixture(scope="module")
def accounts(client: StackClient) -> dict[str, int]:
    client.set_assigned_amount("KZ", 2, ASSIGNED_AMOUNT)
    issued = client.issue("kz", "AAU", ASSIGNED_AMOUNT, "MEP-2013-001")
    assert client.settle("kz", issued["transaction_id"])["status_name"] == "COMPLETED"
    return {"zora": client.open_account("ch", "Zurich Power AG")["account_id"]}


@pytest.fixture(scope="module")
def transfer(client: StackClient, accounts: dict[str, int]) -> dict[str, Any]:
    """The external transfer KZ -> CH, settled everywhere with its share of proceeds,
    and every service's samples before and after it."""
    before = scrape_all(client)
    response = client.transfer("kz", PARTY_HOLDING, accounts["zora"], "AAU", TRANSFERRED,
                               target_registry="CH")
    assert response.status_code == 202, response.text
    transaction_id = response.json()["transaction_id"]
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"
    shares = client.settle_share_of_proceeds("kz")
    assert [s["status_name"] for s in shares] == ["COMPLETED"]
    def settled(now: dict[str, Samples]) -> bool:
        """Every relay has published what it was handed, and every message published
        has been handled (a receiver counts a message once it has acknowledged it, a
        moment after its effect is visible through the API)."""
        grown = {s: now[s].minus(before[s]) for s in SERVICES}
        return (all(now[s].get_sum("outbox_backlog") == 0 for s in SERVICES)
                and sum(g.get_sum("messages_published_total") for g in grown.values())
                == sum(g.get_sum("messages_handled_total") for g in grown.values()))

    after = poll(lambda: scrape_all(client), settled,
                 "every message published and handled")
    return {"transaction_id": transaction_id, "share_id": shares[0]["transaction_id"],
            "grown": {s: after[s].minus(before[s]) for s in SERVICES}, "after": after}


def test_the_transfer_request_is_counted_by_route_method_and_status_with_its_latency(
        transfer: dict[str, Any]) -> None:
    kz = transfer["grown"]["kz"]
    route = {"handler": "/transactions/external-transfer", "method": "POST"}
    assert kz.get_sum("http_requests_total", **route, status="202") == 1
    assert kz.get_sum("http_requests_total", **route) == 1
    assert kz.get_sum("http_request_duration_seconds_count", **route) == 1
    assert kz.get_sum("http_request_duration_seconds_sum", **route) > 0
    # the polling of the transaction is counted under its route's template
    assert kz.get_sum("http_requests_total", handler="/transactions/{transaction_id}",
                      method="GET", status="200") >= 1


def test_messages_in_and_out_are_counted_by_type_with_their_handling_latency(
        transfer: dict[str, Any]) -> None:
    grown = transfer["grown"]
    kz, ch, itl, cdm = (grown[s] for s in SERVICES)
    # the transfer and its share of proceeds: two proposals from KZ, each forwarded by
    # the ITL to its acquiring registry
    assert kz.get_sum("messages_published_total", message_type="ProposalSubmitted") == 2
    assert itl.get_sum("messages_handled_total", message_type="ProposalSubmitted") == 2
    assert itl.get_sum("messages_published_total", message_type="ProposalForwarded") == 2
    assert ch.get_sum("messages_handled_total", message_type="ProposalForwarded") == 1
    assert cdm.get_sum("messages_handled_total", message_type="ProposalForwarded") == 1
    for service, samples in grown.items():
        handled = samples.get_sum("messages_handled_total")
        assert handled >= 1, service
        # every handled envelope's handling time is observed, under its type
        for (name, labels), value in samples.items():
            if name == "messages_handled_total" and value:
                message_type = dict(labels)["message_type"]
                assert samples.get_sum("message_handling_seconds_count",
                                       message_type=message_type, outcome="handled") == \
                    value, (service, message_type)
        assert samples.get_sum("message_handling_seconds_sum", outcome="handled") > 0


def test_transactions_are_counted_by_the_statuses_they_entered(
        transfer: dict[str, Any]) -> None:
    grown: dict[str, Samples] = transfer["grown"]

    def entered(service: str, status: str) -> float:
        return grown[service].get_sum("transaction_statuses_total", status=status)

    # KZ: both proposals proposed (1), accepted (8), completed (4) in its own register
    assert entered("kz", "PROPOSED") == 2
    assert entered("kz", "COMPLETED") == 2
    # the ITL checked both without discrepancy and completed them
    assert entered("itl", "CHECKED_NO_DISCREPANCY") == 2
    assert entered("itl", "COMPLETED") == 2
    # each acquiring registry recorded the one it received and completed it
    for acquiring in ("ch", "cdm"):
        assert entered(acquiring, "COMPLETED") == 1, acquiring
    for service in SERVICES:
        assert entered(service, "TERMINATED") == 0, service


def test_the_itls_checks_are_counted_by_outcome_and_response_code(
        client: StackClient, transfer: dict[str, Any]) -> None:
    itl = transfer["grown"]["itl"]
    assert itl.get_sum("itl_proposals_checked_total", result="no_discrepancy") == 2
    assert itl.get_sum("itl_proposals_checked_total", result="discrepancy") == 0
    before = Samples.scrape(client, "itl")
    # one AAU beyond the assigned amount: refused by the ITL with 4001
    refused = client.issue("kz", "AAU", 1, "MEP-2013-002")
    final = client.settle("kz", refused["transaction_id"])
    assert final["response_codes"] == [int(ResponseCode.ISSUANCE_OVER_LIMIT)]
    grown = Samples.scrape(client, "itl").minus(before)
    assert grown.get_sum("itl_proposals_checked_total", result="discrepancy") == 1
    assert grown.get_sum("itl_proposals_checked_total", result="no_discrepancy") == 0
    assert grown.get_sum("itl_check_discrepancies_total", response_code="4001") == 1
    assert grown.get_sum("itl_check_discrepancies_total") == 1
    assert grown.get_sum("transaction_statuses_total", status="CHECKED_DISCREPANCY") == 1
    assert grown.get_sum("transaction_statuses_total", status="TERMINATED") == 1


def test_the_outbox_backlog_is_a_gauge_back_at_zero(transfer: dict[str, Any]) -> None:
    for service in SERVICES:
        after = transfer["after"][service]
        assert ("outbox_backlog", ()) in after, service
        assert after.get_sum("outbox_rows_committed_total") == \
            after.get_sum("outbox_rows_published_total"), service


def test_dead_letters_are_counted_by_type_and_reason(
        stack: LocalStack, client: StackClient, transfer: dict[str, Any]) -> None:
    assert stack.broker is not None
    before = Samples.scrape(client, "kz")
    reasons = asyncio.run(publish_and_collect_dead_letters(
        stack.namespace, stack.broker.identities, [("ITL", "KZ", b"\x00 not json")]))["KZ"]
    assert len(reasons) == 1
    # counted once the broker has confirmed the dead letter, which the test may read first
    grown = poll(lambda: Samples.scrape(client, "kz").minus(before),
                 lambda now: now.get_sum("messages_dead_lettered_total") > 0,
                 "KZ counted its dead letter")
    assert grown.get_sum("messages_dead_lettered_total", message_type="undecodable",
                         reason="undecodable", response_code="") == 1
    assert grown.get_sum("messages_dead_lettered_total") == 1
    assert grown.get_sum("message_handling_seconds_count", message_type="undecodable",
                         outcome="refused") == 1
    assert grown.get_sum("messages_handled_total") == 0


def test_the_log_lines_of_a_handled_message_carry_its_transaction_and_message_ids(
        stack: LocalStack, client: StackClient, mongo: StackDatabases,
        transfer: dict[str, Any]) -> None:
    transaction_id = transfer["transaction_id"]
    # the clock set over HTTP (not moved: by 0 s, this service only) is a line too
    moved = client.call("itl", "PUT", "/admin/clock",
                        json={"advance_seconds": 0, "broadcast": False})
    assert moved.status_code == 200, moved.text
    lines = [json.loads(line) for line in (stack.log_dir / "itl.log").read_text()
             .splitlines()]  # one JSON object per line, every line
    (clock_set,) = [line for line in lines if line["event"] == "clock_set"]
    assert clock_set["set_by"] == "ITL" and clock_set["broadcast"] is False
    assert clock_set["http_path"] == "/admin/clock"
    assert datetime.fromisoformat(clock_set["now"]) == \
        datetime.fromisoformat(moved.json()["now"])
    changes = [line for line in lines if line["event"] == "transaction_status_changed"
               and line.get("transaction_id") == transaction_id]
    assert changes, "the ITL logged no status change of the transfer"
    handled = {row["_id"] for row in mongo[mongo.database_of("itl")].inbox.find(
        {"correlation_id": transaction_id}, {"_id": 1})}
    for line in changes:
        # bound by the consumer while it handled the message, not named by the event
        assert line["message_id"] in handled, line


def test_a_transfer_awaiting_approval_enters_no_status(
        client: StackClient, accounts: dict[str, int], transfer: dict[str, Any]) -> None:
    """A transfer awaiting a second person (four-eyes approval, docs/adr/0018) is only
    rehearsed: no transaction of the register enters PROPOSED until it is approved; a
    rejected one never does."""
    before = Samples.scrape(client, "kz")
    for _ in range(2):  # the first of a kind may be abandoned rather than discarded
        pending = client.transfer("kz", PARTY_HOLDING, accounts["zora"], "AAU", 5,
                                  target_registry="CH", approve=False)
        assert pending.status_code == 202, pending.text
        approval_id = pending.json()["approval_id"]
        rejected = client.reject("kz", approval_id, "the buyer withdrew")
        assert rejected.status_code == 200, rejected.text
    grown = Samples.scrape(client, "kz").minus(before)
    assert grown.get_sum("transaction_statuses_total") == 0
    assert grown.get_sum("messages_published_total") == 0
