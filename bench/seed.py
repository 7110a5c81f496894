"""Seed consistent books of many unit blocks into a registry and the ITL's register.

    python -m bench.seed --blocks 100000 [--block-units 10] [--workdir DIR]

Loading a million blocks through the protocol would take days (one proposal moves
what the registry chooses; every block is a store transaction in two services), so the
books are made in two steps (docs/adr/0025):

1. **Through the real protocol** (``prepare``): KZ's authorised body decides and its
   operators issue ``blocks * block_units`` AAUs of period 2 into KZ's Party holding
   account (``PARTY_ACCOUNT``, 1), a person holding account is opened, and an internal
   transfer moves ``blocks // 2 * block_units`` of them into it. Every record a service
   keeps of these (decision, issuance and transfer transactions, audit trail, the ITL's
   register and summaries, its issuance limits) is the service's own.
2. **Directly in the two stores** (``seed``), with the registry and the ITL stopped (or
   quiescent): the blocks of those two accounts, two contiguous serial ranges in the
   registry's books and identically in the ITL's register, are laid out again over the
   same serials as ``blocks`` blocks of ``block_units`` units held alternately by the
   Party holding account and the person account, so that no two neighbours merge and
   each account keeps exactly the units its transactions gave it. Only ``units`` and its
   summaries change: the old blocks are deleted, the new ones written in batches (the
   collection's indexes dropped first and built again after the load, which SecantusDB
   does about twice as fast as maintaining them during it; the set of indexes is the
   service's own, ``ensure_indexes``), and the summaries get what the change adds, computed
   with the services' own tallies (``SummaryChanges``), in one store transaction that also
   writes an audit record ``books_seeded``.

Afterwards the registry's books equal the ITL's register serial for serial, every
summary equals a recount, every account's holdings equal what its completed transactions
moved, and transfers go through the real protocol (``verify``; tests in
``tests/integration/test_seed.py``). ``python -m bench.seed`` runs both steps on a local
stack it starts (data on disk under ``--workdir``), checks the result, makes one external
transfer KZ -> CH, prints how long each step took, and stops the stack;
``bench.book_sizes`` uses the same functions to measure latency against book size.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import ASCENDING

from deploy.local.client import StackClient
from deploy.local.stack import LocalStack, running_stack
from services.itl.store import ItlStore
from services.registry.store import RegistryStore
from shared.audit import AuditTrail, account_key, service_actor
from shared.codes import AccountType
from shared.store import Client, Database, Document, Session, in_transaction, make_client
from shared.store.unit_blocks import (
    SummaryChanges,
    UnitBlockStore,
    doc_holder,
    doc_to_block,
    fork_node,
)

#: The registry whose books are seeded, and its Party holding account, which issuance
#: credits and the bench's transfers debit.
REGISTRY = "KZ"
PARTY_ACCOUNT = 1
#: Units (tonnes) per seeded block.
BLOCK_UNITS = 10
#: Documents per ``insert_many`` (SecantusDB's wire limit is 48 MB; a block document
#: is about 300 bytes).
BATCH = 10_000
#: Fields that say where a block lies or who holds it; the rest must be equal in every
#: block laid out again.
_PLACE = frozenset({"_id", "serial_start", "serial_end", "fork", "registry", "account_type",
                    "account_id"})


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` made through the protocol: the person account's number and the
    units (tonnes) each account holds."""

    person_account: int
    party_units: int
    person_units: int


@dataclass
class Seeded:
    """What ``seed`` did to one service's store: blocks before and after, seconds spent
    per step (``delete``, ``insert``, ``indexes``, ``summaries``)."""

    service: str
    blocks_before: int
    blocks_after: int
    seconds: dict[str, float] = field(default_factory=dict)


def prepare(client: StackClient, blocks: int, block_units: int = BLOCK_UNITS) -> Prepared:
    """Step 1, through the real protocol on a running stack: set KZ's assigned amount
    for period 2, issue ``blocks * block_units`` AAUs into ``PARTY_ACCOUNT``, open a
    person holding account and transfer ``blocks // 2 * block_units`` units into it
    (internal transfer, four-eyes approved), each waited for until final."""
    if blocks < 2:
        raise ValueError("at least two blocks: one per account")
    total = blocks * block_units
    person_units = blocks // 2 * block_units
    client.set_assigned_amount(REGISTRY, 2, total)
    issued = client.issue(REGISTRY.lower(), "AAU", total, f"seed-{blocks}")
    _final_completed(client.wait_final(REGISTRY.lower(), issued["transaction_id"], 300))
    person = client.open_account(REGISTRY.lower(), "seeded books")["account_id"]
    response = client.transfer(REGISTRY.lower(), PARTY_ACCOUNT, person, "AAU", person_units)
    if response.status_code >= 300:
        raise RuntimeError(f"internal transfer refused: {response.text}")
    _final_completed(client.settle(REGISTRY.lower(), response.json()["transaction_id"], 300))
    return Prepared(person, total - person_units, person_units)


def _final_completed(view: Any) -> None:
    if view["status"] != 4:
        raise RuntimeError(f"transaction {view.get('transaction_id')} ended with status "
                           f"{view['status']}, not completed")


def lay_out(first: int, counts: dict[int, int], block_units: int
            ) -> Iterator[tuple[int, int, int]]:
    """(serial start, serial end, account) of blocks laid over serials from ``first``:
    ``block_units`` each, taken alternately from the accounts of ``counts`` (account ->
    blocks it gets, in the given order, at most one more for the first than the second),
    so that no two neighbours belong to one account."""
    accounts = list(counts)
    if len(accounts) != 2 or not 0 <= counts[accounts[0]] - counts[accounts[1]] <= 1:
        raise ValueError(f"two accounts, the first with as many blocks or one more: {counts}")
    for index in range(sum(counts.values())):
        start = first + index * block_units
        yield start, start + block_units - 1, accounts[index % 2]


async def _blocks_of(units: UnitBlockStore, accounts: list[int]) -> list[Document]:
    docs: list[Document] = await units.collection.find(
        {"registry": REGISTRY, "account_id": {"$in": accounts}}).to_list()
    return sorted(docs, key=lambda d: (d["origin"], d["serial_start"]))


def _plan(docs: list[Document], accounts: list[int], block_units: int, where: str
          ) -> tuple[int, dict[int, Document], dict[int, int]]:
    """The first serial, a template document per account and the blocks per account of
    the new layout, after checking that ``docs`` can be laid out again: unreserved
    blocks of identical units, contiguous serials, each account holding a multiple of
    ``block_units`` units, the first account as many blocks as the second or one
    more."""
    if not docs:
        raise ValueError(f"{where}: no blocks to lay out")
    alike = {tuple(sorted((k, v) for k, v in d.items() if k not in _PLACE)) for d in docs}
    if len(alike) != 1:
        raise ValueError(f"{where}: the blocks differ in more than serials and holder")
    if any(d.get("reserved_by") or d.get("issuing") for d in docs):
        raise ValueError(f"{where}: a block is reserved or being issued: not quiescent")
    for left, right in itertools.pairwise(docs):
        if right["serial_start"] != left["serial_end"] + 1:
            raise ValueError(f"{where}: the serials are not contiguous at "
                             f"{left['serial_end']}..{right['serial_start']}")
    templates: dict[int, Document] = {}
    counts: dict[int, int] = {}
    for account in accounts:
        held = [d for d in docs if d["account_id"] == account]
        units = sum(d["serial_end"] - d["serial_start"] + 1 for d in held)
        if not held or units % block_units:
            raise ValueError(f"{where}: account {account} holds {units} units, not a "
                             f"positive multiple of {block_units}")
        templates[account] = {k: v for k, v in held[0].items()
                              if k not in ("_id", "serial_start", "serial_end", "fork")}
        counts[account] = units // block_units
    return docs[0]["serial_start"], templates, counts


async def seed(registry_db: Database, itl_db: Database, prepared: Prepared,
               block_units: int = BLOCK_UNITS, batch: int = BATCH) -> list[Seeded]:
    """Step 2, with the registry and the ITL stopped or quiescent: lay the blocks of
    ``PARTY_ACCOUNT`` and ``prepared.person_account`` out again as blocks of
    ``block_units`` units, alternately held, in the registry's database ``registry_db``
    and the ITL's ``itl_db`` (see the module's docstring). Checks first that both hold
    the same blocks for the two accounts; changes nothing if not (``ValueError``)."""
    accounts = [PARTY_ACCOUNT, prepared.person_account]
    registry = RegistryStore(registry_db, REGISTRY)
    itl = ItlStore(itl_db)
    books = await _blocks_of(registry.units, accounts)
    register = await _blocks_of(itl.units, accounts)
    shape = [(d["serial_start"], d["serial_end"], d["account_id"]) for d in books]
    if shape != [(d["serial_start"], d["serial_end"], d["account_id"]) for d in register]:
        raise ValueError("the registry's books and the ITL's register differ for the "
                         "accounts to seed: is a transaction still open?")
    plans = {name: _plan(docs, accounts, block_units, name)
             for name, docs in (("registry", books), ("itl", register))}

    async def load(name: str, code: str, store: UnitBlockStore, docs: list[Document],
                   indexes: Callable[[], Awaitable[None]]) -> Seeded:
        first, templates, counts = plans[name]
        report = Seeded(name, len(docs), sum(counts.values()))
        changes = SummaryChanges(store.tallies)
        started = time.perf_counter()
        await store.collection.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        for doc in docs:
            changes.add(doc, -1)
        await _drop_indexes(store)
        report.seconds["delete"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        pending: list[Document] = []
        for start, end, account in lay_out(first, counts, block_units):
            doc = {**templates[account], "serial_start": start, "serial_end": end,
                   "fork": fork_node(start, end)}
            changes.add(doc, +1)
            pending.append(doc)
            if len(pending) == batch:
                await store.collection.insert_many(pending, ordered=False)
                pending = []
        if pending:
            await store.collection.insert_many(pending, ordered=False)
        report.seconds["insert"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await indexes()
        report.seconds["indexes"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await _apply_summaries(store, changes, report, code, accounts)
        report.seconds["summaries"] = round(time.perf_counter() - started, 1)
        return report

    # the two services' store servers load at the same time
    return list(await asyncio.gather(
        load("registry", REGISTRY, registry.units, books, registry.ensure_indexes),
        load("itl", "ITL", itl.units, register, itl.ensure_indexes)))


async def _drop_indexes(store: UnitBlockStore) -> None:
    """Drop the block collection's indexes but ``_id``: a bulk load then builds each
    index once, after the load (``ensure_indexes`` makes them again)."""
    async for index in await store.collection.list_indexes():
        if index["name"] != "_id_":
            await store.collection.drop_index(index["name"])


async def _apply_summaries(store: UnitBlockStore, changes: SummaryChanges,
                           report: Seeded, service: str, accounts: list[int]) -> None:
    """What the new layout adds to the summaries, as ``_Writer.flush`` applies it, and
    ``service``'s audit record of the seeding, in one store transaction."""
    client: Client = store.collection.database.client
    audit = AuditTrail(store.collection.database, service)

    async def work(session: Session) -> None:
        requests = changes.requests()
        if requests:
            await store.summaries.bulk_write(requests, ordered=False, session=session)
        await audit.record(session, "books_seeded",
                           accounts=[account_key(REGISTRY, a) for a in accounts],
                           actor=service_actor(audit.service, "bench.seed"),
                           details={"blocks_before": report.blocks_before,
                                    "blocks_after": report.blocks_after})

    await in_transaction(client, work)


@dataclass
class Agreement:
    """What ``verify`` found: blocks in the registry's books and in the ITL's register
    of the registry, whether they agree serial for serial (holder, attributes), and
    whether each side's summaries equal a recount."""

    registry_blocks: int
    register_blocks: int
    books_equal_register: bool
    registry_summaries_equal_recount: bool
    itl_summaries_equal_recount: bool

    @property
    def holds(self) -> bool:
        return (self.books_equal_register and self.registry_summaries_equal_recount
                and self.itl_summaries_equal_recount)


async def verify(registry_db: Database, itl_db: Database) -> Agreement:
    """Recount both sides (scans: tests and the tool's own check, not timed)."""
    registry = RegistryStore(registry_db, REGISTRY).units
    itl = ItlStore(itl_db).units

    async def shapes(store: UnitBlockStore) -> list[tuple[Any, ...]]:
        docs = await store.collection.find({"registry": REGISTRY}).sort(
            [("origin", ASCENDING), ("serial_start", ASCENDING)]).to_list()
        return [(doc_to_block(d), doc_holder(d), d.get("reserved_by"), bool(d.get("issuing")))
                for d in docs]

    async def summaries_equal(store: UnitBlockStore) -> bool:
        return await store.recount_counts() == await store.summary_counts()

    books, register = await shapes(registry), await shapes(itl)
    return Agreement(len(books), len(register), books == register,
                     await summaries_equal(registry), await summaries_equal(itl))


def stop_services(stack: LocalStack, names: tuple[str, ...] = ("kz", "itl")) -> None:
    """Stop the services whose stores are seeded (their store servers keep running)."""
    for name in names:
        stack.stop_service(name)


def start_services(stack: LocalStack, names: tuple[str, ...] = ("itl", "kz")) -> None:
    """Start the seeded services again; a loaded machine may take minutes."""
    for name in names:
        stack.restart(name, timeout=600)


def seed_stack(stack: LocalStack, client: StackClient, blocks: int,
               block_units: int = BLOCK_UNITS) -> tuple[Prepared, list[Seeded]]:
    """Both steps on a running local stack: ``prepare``, stop KZ and the ITL, ``seed``
    their stores, start them again."""
    prepared = prepare(client, blocks, block_units)
    stop_services(stack)

    async def run() -> list[Seeded]:
        registry, itl = (make_client(stack.store_url("kz")),
                         make_client(stack.store_url("itl")))
        try:
            return await seed(registry["registry_kz"], itl["itl"], prepared, block_units)
        finally:
            await registry.close()
            await itl.close()

    try:
        return prepared, asyncio.run(run())
    finally:
        start_services(stack)


def verify_stack(stack: LocalStack) -> Agreement:
    """``verify`` on a local stack's KZ and ITL stores."""

    async def run() -> Agreement:
        registry, itl = (make_client(stack.store_url("kz")),
                         make_client(stack.store_url("itl")))
        try:
            return await verify(registry["registry_kz"], itl["itl"])
        finally:
            await registry.close()
            await itl.close()

    return asyncio.run(run())


def external_transfer(client: StackClient, target: int, quantity: int = 10) -> Any:
    """One external transfer KZ -> CH of ``quantity`` AAUs from ``PARTY_ACCOUNT`` into
    CH's account ``target``, settled; returns KZ's view."""
    response = client.transfer(REGISTRY.lower(), PARTY_ACCOUNT, target, "AAU", quantity,
                               target_registry="CH",
                               target_type=int(AccountType.PERSON_HOLDING))
    if response.status_code >= 300:
        raise RuntimeError(f"external transfer refused: {response.text}")
    return client.settle(REGISTRY.lower(), response.json()["transaction_id"], 120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000,
                        help="unit blocks in KZ's books and in the ITL's register")
    parser.add_argument("--block-units", type=int, default=BLOCK_UNITS)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="the stack's directory (data on disk); a temporary one "
                             "by default")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kyoto-seed-"))
    with running_stack(workdir, storage=str(workdir / "data")) as stack:
        client = StackClient({n: s.url for n, s in stack.services.items()},
                             issuer=stack.issuer)
        try:
            started = time.perf_counter()
            prepared, seeded = seed_stack(stack, client, args.blocks, args.block_units)
            print(f"seeded {args.blocks} blocks in {time.perf_counter() - started:.0f} s "
                  f"(person account {prepared.person_account})")
            for report in seeded:
                print(f"  {report.service}: {report.blocks_before} -> {report.blocks_after} "
                      f"blocks, seconds {report.seconds}")
            agreement = verify_stack(stack)
            print(f"  {agreement}")
            target = client.open_account("ch", "seeded books")["account_id"]
            view = external_transfer(client, target)
            print(f"  external transfer {view['transaction_id']}: status {view['status']}")
            return 0 if agreement.holds and view["status"] == 4 else 1
        finally:
            client.close()


if __name__ == "__main__":
    raise SystemExit(main())
