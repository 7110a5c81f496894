"""Reconciliation through the real processes (protocol.md 5; docs/adr/0030): the ITL
reconciles a registry while transfers go on and finds it consistent (status 5); a block
deleted, altered, duplicated or moved behind the protocol's back, and a completion the
acquiring registry lost, are each found at their phase with their blocks and accounts,
the blocks are frozen at the ITL (3005) until an operator resolves the reconciliation
(status 6); a registry set inconsistent as a whole is refused (1203); bad reconciliation
messages are refused and change nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy.local.client import StackClient, poll
from deploy.local.stack import LocalStack, StackDatabases
from shared.codes import MessageType, ResponseCode
from shared.contracts import (
    TotalsReported,
    UnitBlocksReported,
    make_envelope,
    new_message_id,
)
from shared.messaging import inbox_queue_name
from shared.testing.infra import publish_as, purge_queue

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH")
HTTP_TIMEOUT = 60.0
PARTY_HOLDING = 1
ISSUED = 1_000_000
ACCOUNT_PREFIX = "KZ:"


@pytest.fixture(scope="module")
def issued(client: StackClient) -> dict[str, int]:
    """KZ's period-2 AAUs issued into its Party holding account, and a CH account."""
    client.set_assigned_amount("KZ", 2, ISSUED * 10)
    client.settle("kz", client.issue("kz", "AAU", ISSUED, "MEP-2013-R01")["transaction_id"])
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    return {"zora": zora}


def funded_account(client: StackClient, name: str, quantity: int) -> tuple[int, dict[str, Any]]:
    """A new KZ person holding account given ``quantity`` AAUs by an internal transfer;
    returns it and the one block the registry holds there."""
    account = client.open_account("kz", name)["account_id"]
    moved = client.transfer("kz", PARTY_HOLDING, account, "AAU", quantity)
    assert moved.status_code == 202, moved.text
    client.settle("kz", moved.json()["transaction_id"])
    blocks = client.ok("kz", "GET", f"/accounts/{account}/holdings")["blocks"]
    assert len(blocks) == 1, blocks
    return account, blocks[0]


def kz_block(mongo: StackDatabases, account: int) -> dict[str, Any]:
    docs = list(mongo["registry_kz"].units.find({"account_id": account}))
    assert len(docs) == 1, docs
    return docs[0]


def proposal_code(client: StackClient, registry: str, source: int, target: int,
                  unit_type: str, quantity: int) -> list[int]:
    """Propose a transfer and return the response codes it ended with at the ITL."""
    response = client.transfer(registry, source, target, unit_type, quantity)
    assert response.status_code == 202, response.text
    final = client.settle(registry, response.json()["transaction_id"])
    assert final["status_name"] == "TERMINATED", final
    return [r["response_code"] for r in final["evaluation_results"]]


def resolve(client: StackClient, view: dict[str, Any], reason: str,
            transaction_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if transaction_id is not None:
        body["transaction_id"] = transaction_id
    done: dict[str, Any] = client.ok(
        "itl", "POST", f"/reconciliations/{view['reconciliation_id']}/resolution", json=body)
    return done


def test_a_clean_stack_reconciles_to_completed_while_transfers_run(
        client: StackClient, issued: dict[str, int]) -> None:
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    for registry, person in (("kz", 1), ("kz", 2), ("ch", 1)):
        client.as_operator(registry, person)

    def external(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, issued["zora"], "AAU", 100,
                               target_registry="CH")

    def internal(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, alice, "AAU", 100)

    with ThreadPoolExecutor(max_workers=8) as pool:
        moving = [pool.submit(external, i) for i in range(4)] + \
                 [pool.submit(internal, i) for i in range(4)]
        views = [client.reconcile(code) for code in ("KZ", "CH", "CDM")]
        started = [f.result() for f in moving]
    assert [v["status"] for v in views] == [5, 5, 5], views
    assert all(v["phase"] == 1 and not v["flagged"] for v in views), views
    for response in started:
        assert response.status_code == 202, response.text
        client.settle("kz", response.json()["transaction_id"])
    client.settle_share_of_proceeds("kz")
    # and once they are all final
    assert [client.reconcile(code)["status"] for code in ("KZ", "CH", "CDM")] == [5, 5, 5]
    kz = client.ok("kz", "GET", f"/reconciliations/{views[0]['reconciliation_id']}")
    assert kz["status"] == 5 and kz["answered_phases"] == 1 and kz["blocks"] >= 1
