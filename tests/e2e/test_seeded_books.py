"""Books seeded directly in the stores (bench.seed, docs/adr/0025) are consistent: the
registry's books equal the ITL's register, every summary equals a recount, and real
transfers go through the protocol afterwards. Small books: the size is the bench's
business (bench.book_sizes)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bench.seed import (
    PARTY_ACCOUNT,
    Prepared,
    external_transfer,
    seed,
    seed_stack,
    verify_stack,
)
from deploy.local.client import StackClient
from deploy.local.stack import LocalStack
from services.itl.store import ItlStore
from services.registry.store import RegistryStore
from shared.store import make_client
from shared.store.unit_blocks import UnitBlockStore
from tests.integration.test_unit_books import assert_summaries_recount

pytestmark = pytest.mark.e2e

BLOCKS = 101
BLOCK_UNITS = 10

prepared_books: list[Prepared] = []


async def _check_stores(stack: LocalStack) -> list[list[tuple[int, int, int]]]:
    """Both sides' summaries against a recount; the (start, end, account) of KZ's blocks
    in the registry and in the ITL's register."""
    registry, itl = make_client(stack.store_url("kz")), make_client(stack.store_url("itl"))
    try:
        stores: list[UnitBlockStore] = [RegistryStore(registry["registry_kz"], "KZ").units,
                                        ItlStore(itl["itl"]).units]
        shapes = []
        for store in stores:
            await assert_summaries_recount(store)
            docs = await store.collection.find({"registry": "KZ"}).sort(
                "serial_start", 1).to_list()
            shapes.append([(d["serial_start"], d["serial_end"], d["account_id"])
                           for d in docs])
        return shapes
    finally:
        await registry.close()
        await itl.close()


def test_seeded_books_agree_on_both_sides(stack: LocalStack, client: StackClient) -> None:
    prepared, seeded = seed_stack(stack, client, BLOCKS, BLOCK_UNITS)
    prepared_books.append(prepared)
    assert [(r.service, r.blocks_after) for r in seeded] == [("registry", BLOCKS),
                                                             ("itl", BLOCKS)]
    agreement = verify_stack(stack)
    assert agreement.holds, agreement
    assert agreement.registry_blocks == agreement.register_blocks == BLOCKS
    books, register = asyncio.run(_check_stores(stack))
    assert books == register
    for (_, end, left), (start, _, right) in itertools.pairwise(books):
        assert start == end + 1 and left != right
    # each account holds what its completed transactions gave it, read through the API
    assert client.units_held("kz", PARTY_ACCOUNT, "AAU", 2) == prepared.party_units
    assert client.units_held("kz", prepared.person_account, "AAU", 2) \
        == prepared.person_units
    totals = {(r["account_id"], r["blocks"]) for r in client.registry_totals("kz")}
    assert {(PARTY_ACCOUNT, (BLOCKS + 1) // 2),
            (prepared.person_account, BLOCKS // 2)} <= totals
    audit = client.ok("kz", "GET", "/audit",
                      params={"account": f"KZ:{PARTY_ACCOUNT}", "limit": 500},
                      headers=client.as_operator("kz"))
    assert "books_seeded" in {r["action"] for r in audit["records"]}


def test_transfers_go_through_the_protocol_after_seeding(stack: LocalStack,
                                                         client: StackClient) -> None:
    prepared = prepared_books[0]
    target = client.open_account("ch", "seeded books")["account_id"]
    for _ in range(3):
        assert external_transfer(client, target)["status"] == 4
    assert client.units_held("ch", target, "AAU", 2) == 30
    client.settle_share_of_proceeds("kz")  # the shares these first transfers pay, final
    assert client.units_held("kz", PARTY_ACCOUNT, "AAU", 2) \
        == prepared.party_units - 30 - client.units_held("cdm", 1100, "AAU", 2)
    person = client.open_account("kz", "next holder")["account_id"]
    response = client.transfer("kz", prepared.person_account, person, "AAU", 25)
    assert response.status_code < 300, response.text
    assert client.settle("kz", response.json()["transaction_id"])["status"] == 4
    assert client.units_held("kz", person, "AAU", 2) == 25
    agreement = verify_stack(stack)
    assert agreement.holds, agreement
    books, register = asyncio.run(_check_stores(stack))
    assert books == register


def test_seeding_refuses_books_it_cannot_lay_out_and_changes_nothing(
        stack: LocalStack) -> None:
    """After the transfers the two accounts' serials are no longer one range."""
    before = asyncio.run(_check_stores(stack))

    async def again() -> None:
        registry = make_client(stack.store_url("kz"))
        itl = make_client(stack.store_url("itl"))
        try:
            await seed(registry["registry_kz"], itl["itl"], prepared_books[0], BLOCK_UNITS)
        finally:
            await registry.close()
            await itl.close()

    with pytest.raises(ValueError):
        asyncio.run(again())
    assert asyncio.run(_check_stores(stack)) == before
