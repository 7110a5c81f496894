"""Flows a-e through every real process: ITL, KZ, CH (a Party with a second-period
commitment) and CDM over RabbitMQ and the store."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pymongo import MongoClient

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import UnitType
from shared.recording.format import SCHEMA_PATH, read_recording

pytestmark = pytest.mark.e2e

ASSIGNED_AMOUNT = 100_000
PARTY_HOLDING = 1


@pytest.fixture(scope="module")
def kz_with_aaus(client: StackClient) -> dict[str, Any]:
    """Flow a: KZ's assigned amount is recorded at the ITL and issued as AAUs."""
    client.set_assigned_amount("KZ", 2, ASSIGNED_AMOUNT)
    proposed = client.issue("kz", "AAU", ASSIGNED_AMOUNT, "MEP-2013-001")
    final = client.settle("kz", proposed["transaction_id"])
    alice = client.open_account("kz", "Alice Energy LLP")
    bob = client.open_account("kz", "Bob Cement JSC")
    zora = client.open_account("ch", "Zurich Power AG")
    return {"issuance": final, "alice": alice["account_id"], "bob": bob["account_id"],
            "zora": zora["account_id"]}


def itl_units(client: StackClient, registry: str) -> dict[tuple[int, str], int]:
    """Units per (account, unit type) in the ITL's register for one registry."""
    out: dict[tuple[int, str], int] = {}
    for row in client.itl_totals(registry):
        key = (row["account_id"], _unit_name(row["unit_type"]))
        out[key] = out.get(key, 0) + row["units"]
    return out


def registry_units(client: StackClient, registry: str) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for row in client.registry_totals(registry.lower()):
        key = (row["account_id"], row["unit_type"])
        out[key] = out.get(key, 0) + row["units"]
    return out


def _unit_name(code: int | str) -> str:
    return UnitType(int(code)).name if str(code).isdigit() else str(code)


def test_a_aau_issuance_on_decision_is_completed_after_itl_approval(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    issuance = kz_with_aaus["issuance"]
    assert issuance["status_name"] == "COMPLETED"
    assert [h["status"] for h in issuance["history"]] == [1, 2, 4]
    assert issuance["reference"] == "MEP-2013-001"
    assert client.units_held("kz", PARTY_HOLDING, "AAU") == ASSIGNED_AMOUNT
    assert client.itl_transaction(issuance["transaction_id"])["status"] == 4
    assert itl_units(client, "KZ") == registry_units(client, "KZ")


def test_aau_issuance_beyond_the_assigned_amount_is_refused_with_4001(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    before = registry_units(client, "KZ")
    proposed = client.issue("kz", "AAU", 1, "MEP-2013-002")
    final = client.settle("kz", proposed["transaction_id"])
    assert final["status_name"] == "TERMINATED"
    assert final["response_codes"] == [4001]
    assert registry_units(client, "KZ") == before


def test_b_internal_transfer_splits_blocks_and_merging_restores_them(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    alice, bob = kz_with_aaus["alice"], kz_with_aaus["bob"]
    first = client.transfer("kz", PARTY_HOLDING, alice, "AAU", 5000)
    assert first.status_code == 202, first.text
    assert client.settle("kz", first.json()["transaction_id"])["status_name"] == "COMPLETED"
    second = client.transfer("kz", alice, bob, "AAU", 2000)
    done = client.settle("kz", second.json()["transaction_id"])
    assert [h["status"] for h in done["history"]] == [1, 2, 4]
    assert client.units_held("kz", alice, "AAU") == 3000
    assert client.units_held("kz", bob, "AAU") == 2000
    assert len(client.holdings("kz", alice)["blocks"]) == 1

    back = client.transfer("kz", bob, alice, "AAU", 2000)
    client.settle("kz", back.json()["transaction_id"])
    blocks = client.holdings("kz", alice)["blocks"]
    assert [(b["serial_start"], b["serial_end"]) for b in blocks] == [(1, 5000)]
    assert client.units_held("kz", bob) == 0
    assert itl_units(client, "KZ") == registry_units(client, "KZ")


def test_c_external_transfer_kz_to_ch_is_accepted_and_all_three_books_agree(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    zora = kz_with_aaus["zora"]
    party_before = client.units_held("kz", PARTY_HOLDING, "AAU")
    response = client.transfer("kz", PARTY_HOLDING, zora, "AAU", 3000, target_registry="CH")
    assert response.status_code == 202, response.text
    transaction_id = response.json()["transaction_id"]
    kz_view = client.settle("kz", transaction_id)
    assert kz_view["status_name"] == "COMPLETED"
    assert [h["status"] for h in kz_view["history"]] == [1, 8, 4]
    ch_view = client.wait_final("ch", transaction_id)
    assert ch_view["direction"] == "inbound"
    assert [h["status"] for h in ch_view["history"]] == [1, 8, 4]
    assert client.itl_transaction(transaction_id)["status"] == 4

    # the first international transfer of period-2 AAUs owes 2 % to the Adaptation Fund
    (share,) = poll(lambda: client.ok("kz", "GET", "/share-of-proceeds"),
                    lambda rows: bool(rows) and bool(rows[0]["transactions"]),
                    "share of proceeds levied")
    assert (share["kind"], share["transferred"], share["due"], share["contributed"]) == (
        "first_international_transfers_of_aau", 3000, 60, 60)
    (sop_id,) = share["transactions"]
    sop = client.settle("kz", sop_id)
    assert sop["status_name"] == "COMPLETED"
    assert sop["supplementary_type"] == 47
    assert (sop["acquiring"]["registry"], sop["acquiring"]["account_id"]) == ("CDM", 1100)
    assert client.units_held("cdm", 1100, "AAU") == 60

    assert client.units_held("kz", PARTY_HOLDING, "AAU") == party_before - 3000 - 60
    ch_blocks = client.holdings("ch", zora)["blocks"]
    assert sum(b["quantity"] for b in ch_blocks) == 3000
    assert {b["originating_registry"] for b in ch_blocks} == {"KZ"}
    assert itl_units(client, "KZ") == registry_units(client, "KZ")
    assert itl_units(client, "CH") == registry_units(client, "CH")
    assert itl_units(client, "CDM") == registry_units(client, "CDM")
    reported = client.ok("itl", "GET", "/parties/KZ/periods/2")["share_of_proceeds"]
    assert reported["first_international_transfers_of_aau"] == {
        "transferred": 3000, "due": 60, "contributed": 60, "owed": 0}


def test_each_service_counts_its_store_commands_transactions_and_messages(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    services = ("kz", "itl")
    before = {s: client.metrics(s) for s in services}
    response = client.transfer("kz", PARTY_HOLDING, kz_with_aaus["bob"], "AAU", 7)
    assert response.status_code == 202, response.text
    client.settle("kz", response.json()["transaction_id"])
    grown = {s: client.metrics(s).minus(before[s]) for s in services}
    kz, itl = grown["kz"], grown["itl"]
    # an internal transfer: one proposal KZ -> ITL, one answer back, one completion
    assert kz.total("messages_published_total", message_type="ProposalSubmitted") == 1
    assert itl.total("messages_handled_total", message_type="ProposalSubmitted") == 1
    assert itl.total("messages_published_total") >= 1
    assert kz.total("messages_handled_total") >= 1
    for counters in (kz, itl):
        commits = counters.total("store_transactions_total", outcome="commit")
        assert commits >= 2
        assert counters.total("store_commands_total", command="commitTransaction") == commits
        assert counters.total("store_commands_total") > commits


def test_d_transfer_of_more_units_than_held_is_refused_with_3002_and_changes_nothing(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    before = registry_units(client, "KZ")
    response = client.transfer("kz", kz_with_aaus["alice"], kz_with_aaus["bob"], "AAU",
                               10_000_000)
    assert response.status_code == 422
    assert response.json()["response_code"] == 3002
    assert "fewer than the 10000000 requested" in response.json()["detail"]
    assert registry_units(client, "KZ") == before


def test_d_internal_transfer_to_an_unknown_account_is_refused_with_5902(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    before = registry_units(client, "KZ")
    response = client.transfer("kz", PARTY_HOLDING, 999_999, "AAU", 10)
    assert response.status_code == 422
    assert response.json()["response_code"] == 5902
    assert registry_units(client, "KZ") == before


def test_d_external_transfer_to_an_unknown_ch_account_is_rejected_with_5902(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    kz_before, ch_before = registry_units(client, "KZ"), registry_units(client, "CH")
    response = client.transfer("kz", PARTY_HOLDING, 424_242, "AAU", 10, target_registry="CH")
    transaction_id = response.json()["transaction_id"]
    final = client.settle("kz", transaction_id)
    assert final["status_name"] == "TERMINATED"
    assert final["response_codes"] == [5902]
    assert [h["status"] for h in final["history"]] == [1, 6, 5]
    assert client.itl_transaction(transaction_id)["status"] == 6
    assert registry_units(client, "KZ") == kz_before
    assert registry_units(client, "CH") == ch_before
    assert client.holdings("kz", PARTY_HOLDING)["reserved"] == 0
    assert itl_units(client, "KZ") == registry_units(client, "KZ")


def test_d_external_transfer_breaking_the_commitment_period_reserve_is_refused_with_5001(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    party = client.ok("itl", "GET", "/parties/KZ/periods/2")
    assert party["commitment_period_reserve"] == ASSIGNED_AMOUNT * 9 // 10
    breach = party["holdings"] - party["commitment_period_reserve"] + 1
    before = registry_units(client, "KZ")
    response = client.transfer("kz", PARTY_HOLDING, kz_with_aaus["zora"], "AAU", breach,
                               target_registry="CH")
    final = client.settle("kz", response.json()["transaction_id"])
    assert final["status_name"] == "TERMINATED"
    assert final["response_codes"] == [5001]
    assert registry_units(client, "KZ") == before
    assert itl_units(client, "KZ") == registry_units(client, "KZ")


def test_e_cer_issuance_by_the_cdm_registry_is_forwarded_to_a_kz_account(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    alice = kz_with_aaus["alice"]
    client.ok("cdm", "POST", "/projects", json={
        "project_id": "CDM-0042", "title": "Almaty landfill gas", "host_party": "UZ"})
    request = client.ok("cdm", "POST", "/projects/CDM-0042/issuances", json={
        "unit_type": "CER", "quantity": 1000, "acquiring_registry": "KZ",
        "acquiring_account_id": alice})
    assert request["share_of_proceeds"] == 20
    assert request["forwarded_quantity"] == 980
    issuance = client.settle("cdm", request["issuance_transaction"])
    assert issuance["status_name"] == "COMPLETED"
    forwarded = _wait_request_state(client, request["request_id"], "completed")
    client.settle("kz", forwarded["forward_transaction"])
    assert client.units_held("kz", alice, "CER") == 980
    assert client.units_held("cdm", 1100, "CER") == 20
    assert client.units_held("cdm", 1, "CER") == 0
    cer = client.holdings("kz", alice)["blocks"]
    assert {b["project_id"] for b in cer if b["unit_type"] == "CER"} == {"CDM-0042"}
    assert itl_units(client, "CDM") == registry_units(client, "CDM")
    assert itl_units(client, "KZ") == registry_units(client, "KZ")


def test_cdm_issuance_for_an_ldc_project_takes_no_share_of_proceeds(
    client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    client.ok("cdm", "POST", "/projects", json={
        "project_id": "CDM-0077", "title": "Sahel cookstoves", "host_party": "ML",
        "least_developed_country": True})
    request = client.ok("cdm", "POST", "/projects/CDM-0077/issuances", json={
        "quantity": 500, "acquiring_registry": "KZ",
        "acquiring_account_id": kz_with_aaus["bob"]})
    assert request["share_of_proceeds"] == 0
    done = _wait_request_state(client, request["request_id"], "completed")
    assert done["share_of_proceeds_transaction"] is None
    client.settle("kz", done["forward_transaction"])
    assert client.units_held("kz", kz_with_aaus["bob"], "CER") == 500


def _wait_request_state(client: StackClient, request_id: str, state: str) -> Any:
    view = poll(lambda: client.ok("cdm", "GET", f"/issuances/{request_id}"),
                lambda v: v["state"] in (state, "failed"), f"issuance request {state}")
    assert view["state"] == state, view
    return view


def test_each_service_owns_its_database_and_reads_only_its_own_inbox(
    stack: LocalStack, client: StackClient, kz_with_aaus: dict[str, Any]
) -> None:
    mongo = StackDatabases(stack)
    try:
        owners = {"itl": "ITL", "registry_kz": "KZ", "registry_ch": "CH", "cdm": "CDM"}
        assert set(owners) <= set(mongo.names())
        # each service's database alone on a store server of its own (docs/adr/0022)
        assert len({store.url for store in stack.stores.values()}) == len(stack.services)
        for service in stack.services:
            server: MongoClient[dict[str, Any]]
            with MongoClient(stack.store_url(service)) as server:
                kept = set(server.list_database_names()) - {"admin", "config", "local"}
            assert kept == {StackDatabases.database_of(service)}, service
        for database, code in owners.items():
            recipients = mongo[database].inbox.distinct("envelope.recipient")
            senders = mongo[database].outbox.distinct("envelope.sender")
            assert recipients == [code], database
            assert senders == [code], database
    finally:
        mongo.close()


# the recording (docs/recording.md, docs/adr/0034): the stack records by default

#: Flow c's hops as the ITL sees them: (sender, recipient, label).
TRANSFER_HOPS = [
    ("KZ", "ITL", "ProposalSubmitted"),
    ("ITL", "CH", "ProposalForwarded"),
    ("CH", "ITL", "TransactionStatusNotified - status 8 ACCEPTED"),
    ("ITL", "KZ", "TransactionStatusNotified - status 8 ACCEPTED"),
    ("KZ", "ITL", "TransactionStatusNotified - status 4 COMPLETED"),
    ("ITL", "CH", "TransactionStatusNotified - status 4 COMPLETED"),
]


def kyoto_sim(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``kyoto-sim`` command line against ``stack``'s broker namespace."""
    done = subprocess.run(
        [sys.executable, "-m", "shared.recording.cli", *args], capture_output=True,
        text=True, check=False, timeout=120,
        env={**os.environ, "AMQP_URL": stack.broker_url, "AMQP_NAMESPACE": stack.namespace})
    assert done.returncode == 0, done.stderr
    return done


def arrows(mermaid_text: str) -> list[str]:
    """The arrows of a Mermaid sequence diagram, as written."""
    return [line.strip() for line in mermaid_text.splitlines()
            if line.startswith("    P") and ": " in line]


@pytest.fixture(scope="module")
def recorded_transfer(stack: LocalStack, client: StackClient, kz_with_aaus: dict[str, Any],
                      tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An external transfer KZ -> CH (proposed by KZ's first operator, approved by the
    second), its flow exported by ``kyoto-sim export --transaction``."""
    response = client.transfer("kz", PARTY_HOLDING, kz_with_aaus["zora"], "AAU", 1000,
                               target_registry="CH")
    assert response.status_code == 202, response.text
    transaction_id = response.json()["transaction_id"]
    assert client.settle("kz", transaction_id)["status_name"] == "COMPLETED"
    client.wait_final("ch", transaction_id)
    path = tmp_path_factory.mktemp("recording") / "transfer.jsonl.gz"
    kyoto_sim(stack, "export", "-o", str(path), "--transaction", transaction_id)
    return {"transaction_id": transaction_id, "path": path}


def test_the_recording_holds_a_transfers_flow_in_order_with_envelopes_intact_and_commands(
    client: StackClient, recorded_transfer: dict[str, Any]
) -> None:
    transaction_id, path = recorded_transfer["transaction_id"], recorded_transfer["path"]
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text()))
    with gzip.open(path, "rt") as lines:
        for line in lines:
            validator.validate(json.loads(line))
    recording = read_recording(path)
    assert recording.header.selection.transactions == [transaction_id]
    assert set(recording.header.configuration["registries"]) == {"KZ", "CH", "JP"}

    messages = [e for e in recording.events if e.kind == "message"]
    # every message of the flow, each as the ITL stored it (envelope intact) ...
    itl_journal = client.ok("itl", "GET", "/messages",
                            params={"correlation_id": transaction_id})
    stored = {row["message_id"]: row["envelope"] for row in itl_journal}
    assert [m.properties.message_id for m in messages] == [m.body["message_id"]
                                                           for m in messages]
    assert {m.body["message_id"]: m.body for m in messages} == stored
    # ... in the order of the flow, each after the message that caused it ...
    assert [(m.body["sender"], m.body["recipient"], m.body["message_type"])
            for m in messages] == [(s, r, label.split(" - ")[0])
                                   for s, r, label in TRANSFER_HOPS]
    assert [m.body["payload"].get("status") for m in messages] == [None, None, 8, 8, 4, 4]
    seen: set[str] = set()
    for m in messages:
        assert m.body["causation_id"] is None or m.body["causation_id"] in seen
        seen.add(m.body["message_id"])
    # ... published under each sender's own broker user
    assert {(m.body["sender"], m.properties.user_id.rsplit(".", 1)[-1]) for m in messages
            if m.properties.user_id} == {("KZ", "KZ"), ("ITL", "ITL"), ("CH", "CH")}

    commands = [e.body for e in recording.events if e.kind == "command"]
    proposed, approved = commands
    assert (proposed["service"], proposed["operation"], proposed["method"],
            proposed["path"], proposed["status"]) == (
        "KZ", "propose_external_transfer", "POST", "/transactions/external-transfer", 202)
    assert proposed["actor"]["subject"] == "kz-operator-1"
    assert "KZ:operator" in proposed["actor"]["roles"]
    assert proposed["body"]["quantity"] == 1000
    assert proposed["body"]["acquiring_registry"] == "CH"
    approval_id = proposed["answer"]["approval_id"]
    assert (approved["operation"], approved["path"], approved["status"]) == (
        "approve", f"/approvals/{approval_id}/approve", 202)
    assert approved["actor"]["subject"] == "kz-operator-2"
    assert approved["answer"]["transaction_id"] == transaction_id
    first_message = messages[0].seq
    assert next(e.seq for e in recording.events if e.kind == "command") < first_message


def test_the_itl_draws_a_transactions_flow_with_numbered_hops_and_statuses(
    client: StackClient, recorded_transfer: dict[str, Any]
) -> None:
    transaction_id = recorded_transfer["transaction_id"]
    answer = client.call("itl", "GET", f"/transactions/{transaction_id}/diagram")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/vnd.mermaid")
    text = answer.text
    assert text.startswith("sequenceDiagram\n")
    ids = {"KZ": "P1", "ITL": "P2", "CH": "P3"}
    assert arrows(text) == [f"{ids[s]}->>{ids[r]}: {n}. {label}"
                            for n, (s, r, label) in enumerate(TRANSFER_HOPS, start=1)]
    page = client.call("itl", "GET", f"/transactions/{transaction_id}/diagram",
                       params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert '<pre class="mermaid">' in page.text
    assert "1. ProposalSubmitted" in page.text
    missing = client.call("itl", "GET", "/transactions/KZ999999/diagram")
    assert missing.status_code == 404


def test_the_command_line_draws_the_recorded_flow_with_its_commands(
    stack: LocalStack, recorded_transfer: dict[str, Any], tmp_path: Path
) -> None:
    transaction_id, path = recorded_transfer["transaction_id"], recorded_transfer["path"]
    out = tmp_path / "flow.mmd"
    kyoto_sim(stack, "diagram", str(path), "--transaction", transaction_id, "-o", str(out))
    labels = [arrow.split(": ", 1)[1] for arrow in arrows(out.read_text())]
    approval = labels[1].split("approval_id ")[1]
    assert labels[:4] == [
        "1. POST /transactions/external-transfer",
        f"2. HTTP 202 - approval_id {approval}",
        f"3. POST /approvals/{approval}/approve",
        f"4. HTTP 202 - transaction_id {transaction_id}, approval_id {approval}, "
        "status_name PROPOSED",
    ]
    assert labels[4:] == [f"{n}. {label}"
                          for n, (_, _, label) in enumerate(TRANSFER_HOPS, start=5)]
    html = tmp_path / "flow.html"
    kyoto_sim(stack, "diagram", str(path), "--transaction", transaction_id, "-o", str(html))
    assert html.read_text().startswith("<!doctype html>")


def test_the_whole_run_is_exported_from_its_start_with_the_stacks_configuration(
    stack: LocalStack, client: StackClient, recorded_transfer: dict[str, Any],
    tmp_path: Path,
) -> None:
    status = kyoto_sim(stack, "record", "status").stdout
    assert " in 1 runs" in status, status
    path = tmp_path / "run.jsonl"
    kyoto_sim(stack, "export", "-o", str(path))
    recording = read_recording(path)
    assert recording.events[0].kind == "run_started"
    assert recording.header.configuration == json.loads(json.dumps(stack.configuration()))
    settings = recording.header.configuration["services"]["kz"]["settings"]
    assert settings["REGISTRY_CODE"] == "KZ"
    assert not [name for name in settings if "URL" in name or "SECRET" in name]
    # the commands of the run, at the ITL too, and the transfer's messages among the rest
    assert any(e.kind == "command" and e.body["service"] == "ITL"
               and e.body["route"] == "/parties/{code}/periods/{cp}"
               and e.body["actor"]["subject"] == "itl-admin" for e in recording.events)
    ids = {e.body["message_id"] for e in recording.events if e.kind == "message"}
    itl_journal = client.ok("itl", "GET", "/messages",
                            params={"correlation_id": recorded_transfer["transaction_id"]})
    assert {row["message_id"] for row in itl_journal} <= ids
