"""Many transfers at once from the same account (docs/adr/0026): external transfers
KZ -> CH of period-2 AAUs from KZ's Party holding account, each with four-eyes approval
and its share of proceeds to the CDM registry, and internal transfers from the same
account into one person holding account, all started together. Every one completes; no
service meets a write conflict or retries a store transaction (counted by each service
in ``GET /metrics``); the books of every service recount to their maintained summaries
and the ITL's register agrees with each registry."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, StackDatabases
from services.itl.store import ITL_TALLIES
from shared.codes import UnitType
from shared.store import make_client
from shared.store.unit_blocks import HOLDINGS, UnitBlockStore

pytestmark = pytest.mark.e2e

REGISTRIES = ("KZ", "CH")
PARTY_HOLDING = 1
ISSUED = 1_000_000
EXTERNAL = 16
INTERNAL = 8
QUANTITY = 100
SERVICES = ("kz", "itl", "ch", "cdm")
#: Real seconds a request may wait for its answer: all 24 wait for KZ's turn
#: (docs/adr/0026), a few seconds each on a loaded machine.
HTTP_TIMEOUT = 180.0


def recounted(stack: LocalStack, service: str) -> tuple[dict[str, dict[str, int]],
                                                      dict[str, dict[str, int]]]:
    """A service's summaries as stored and as a recount of its blocks counts them
    (``UnitBlockStore.summary_counts`` and ``recount_counts``)."""

    async def read() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        store_client = make_client(stack.store_url(service))
        try:
            store = UnitBlockStore(store_client[StackDatabases.database_of(service)].units,
                                   ITL_TALLIES if service == "itl" else (HOLDINGS,))
            return await store.summary_counts(), await store.recount_counts()
        finally:
            await store_client.close()

    return asyncio.run(read())


def unit_name(code: int | str) -> str:
    return UnitType(int(code)).name if str(code).isdigit() else str(code)


def test_transfers_from_one_account_at_once_complete_without_a_write_conflict(
    client: StackClient, stack: LocalStack
) -> None:
    client.set_assigned_amount("KZ", 2, ISSUED)
    client.settle("kz", client.issue("kz", "AAU", ISSUED, "MEP-2013-001")["transaction_id"])
    zora = client.open_account("ch", "Zurich Power AG")["account_id"]
    alice = client.open_account("kz", "Alice Energy LLP")["account_id"]
    for registry, person in (("kz", 1), ("kz", 2), ("ch", 1)):
        client.as_operator(registry, person)  # tokens fetched before the threads start
    before = {s: client.metrics(s) for s in SERVICES}

    def external(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, zora, "AAU", QUANTITY,
                               target_registry="CH")

    def internal(_: int) -> Any:
        return client.transfer("kz", PARTY_HOLDING, alice, "AAU", QUANTITY)

    with ThreadPoolExecutor(max_workers=EXTERNAL + INTERNAL) as pool:
        started = [*pool.map(external, range(EXTERNAL)), *pool.map(internal, range(INTERNAL))]
    assert [r.status_code for r in started] == [202] * (EXTERNAL + INTERNAL), \
        [r.text for r in started if r.status_code != 202]
    finals = [client.settle("kz", r.json()["transaction_id"]) for r in started]
    assert [f["status_name"] for f in finals] == ["COMPLETED"] * (EXTERNAL + INTERNAL)
    shares = client.settle_share_of_proceeds("kz")
    assert len(shares) == EXTERNAL
    assert {s["status_name"] for s in shares} == {"COMPLETED"}

    share = 2 * EXTERNAL * QUANTITY // 100
    assert client.units_held("ch", zora, "AAU") == EXTERNAL * QUANTITY
    assert client.units_held("kz", alice, "AAU") == INTERNAL * QUANTITY
    assert client.units_held("cdm", 1100, "AAU") == share
    assert client.units_held("kz", PARTY_HOLDING, "AAU") == \
        ISSUED - (EXTERNAL + INTERNAL) * QUANTITY - share
    for service in SERVICES:
        grown = client.metrics(service).minus(before[service])
        assert grown.total("store_transactions_total", outcome="commit") > 0, service
        assert grown.total("store_transactions_total", outcome="abort") == 0, service
        assert grown.total("store_write_conflicts_total") == 0, service
        stored, recount = recounted(stack, service)
        assert stored == recount, service
    for registry in ("KZ", "CH", "CDM"):
        itl = {(r["account_id"], unit_name(r["unit_type"])): r["units"]
               for r in client.itl_totals(registry)}
        books = {(r["account_id"], unit_name(r["unit_type"])): r["units"]
                 for r in client.registry_totals(registry.lower())}
        assert itl == books, registry
