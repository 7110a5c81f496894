"""What the store work of a transfer costs against the size of the books.

    python -m bench.books [--sizes 1000 10000 100000] [--repeats 15] [--skip-before]

Seeds books of 10^3, 10^4 and 10^5 unit blocks (documents written directly with
``insert_many``, then indexes and summaries built as at a service's start) on one
SecantusDB server (``MONGO_URL`` to use another), and times, in the same run, each store
operation a transfer or a holdings read needs: the query shapes used before the
maintained summaries (docs/adr/0023) next to the ones used now. Each operation runs on
every size in turn, round after round, so that the load of a shared machine weighs on
all sizes alike. Prints the median of each and the ratio of the largest size to the
smallest, and writes ``bench/results/books.json``.

The books: blocks of 10 units of KZ's period-2 AAUs, alternately in KZ's Party holding
account (1) and in one of 100 person holding accounts, so nothing merges and account 1
holds half of them; one block in a hundred is reserved by an open transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.itl.store import AAUS_ISSUED, CPR_HOLDINGS, ITL_TALLIES
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    OUT_OF_CIRCULATION_ACCOUNT_TYPES,
    AccountType,
    TransactionType,
    UnitType,
)
from shared.store import Client, Document, Session, in_transaction, make_client
from shared.store.unit_blocks import Holder, UnitBlockStore, fork_node
from shared.testing.infra import start_store

RESULTS = Path(__file__).parent / "results"
BLOCK = 10  # units per seeded block
AAU_KZ = UnitAttributes("KZ", UnitType.AAU, 2, 2)
PARTY = Holder("KZ", AccountType.PARTY_HOLDING, 1)
CPR_TYPES = [int(UnitType.AAU), int(UnitType.RMU), int(UnitType.ERU_FROM_AAU),
             int(UnitType.ERU_FROM_RMU), int(UnitType.CER)]


def seed_docs(count: int) -> list[Document]:
    """``count`` blocks of consistent books (see the module's docstring)."""
    docs = []
    for i in range(count):
        start = BLOCK * i + 1
        end = start + BLOCK - 1
        person = i % 2 == 1
        docs.append({
            "origin": "KZ", "serial_start": start, "serial_end": end,
            "fork": fork_node(start, end), "unit_type": int(UnitType.AAU),
            "original_cp": 2, "applicable_cp": 2, "lulucf_activity": None,
            "project_id": None, "track": None, "expiry_date": None, "registry": "KZ",
            "account_type": int(AccountType.PERSON_HOLDING if person
                                else AccountType.PARTY_HOLDING),
            "account_id": 1000 + i % 100 if person else 1,
            "reserved_by": f"KZ{i}" if i % 100 == 99 else None, "issuing": False,
            "reserved_for_type": None,
        })
    return docs


async def seeded(client: Client, count: int) -> UnitBlockStore:
    store = UnitBlockStore(client["books_bench"][f"units_{count}"], ITL_TALLIES)
    await store.collection.drop()
    await store.summaries.drop()
    docs = seed_docs(count)
    for i in range(0, len(docs), 5000):
        await store.collection.insert_many(docs[i:i + 5000])
    await store.ensure_indexes()  # as a service's start: indexes, then summaries
    return store


# the query shapes before docs/adr/0023, kept here to measure against


async def before_overlap(store: UnitBlockStore, serials: SerialRange,
                         session: Session | None) -> list[Document]:
    return await store.collection.find(
        {"origin": "KZ", "serial_start": {"$lte": serials.end},
         "serial_end": {"$gte": serials.start}},
        session=session).sort("serial_start", 1).to_list()


async def before_sum(store: UnitBlockStore, match: Document,
                     session: Session | None = None) -> int:
    cursor = await store.collection.aggregate([
        {"$match": match},
        {"$group": {"_id": None, "units": {"$sum": {"$add": [
            {"$subtract": ["$serial_end", "$serial_start"]}, 1]}}}}], session=session)
    rows = await cursor.to_list()
    return int(rows[0]["units"]) if rows else 0


async def before_totals(store: UnitBlockStore, match: Document) -> list[Document]:
    cursor = await store.collection.aggregate([
        {"$match": match},
        {"$group": {"_id": {"registry": "$registry", "account_type": "$account_type",
                            "account_id": "$account_id", "unit_type": "$unit_type",
                            "applicable_cp": "$applicable_cp"},
                    "units": {"$sum": {"$add": [
                        {"$subtract": ["$serial_end", "$serial_start"]}, 1]}},
                    "blocks": {"$sum": 1}}}])
    return list(await cursor.to_list())


CPR_MATCH: Document = {
    "registry": "KZ", "applicable_cp": 2, "unit_type": {"$in": CPR_TYPES},
    "account_type": {"$nin": sorted(int(t) for t in OUT_OF_CIRCULATION_ACCOUNT_TYPES)},
    "issuing": {"$ne": True},
    "reserved_for_type": {"$ne": int(TransactionType.EXTERNAL_TRANSFER)},
}
AAU_MATCH: Document = {"origin": "KZ", "original_cp": 2,
                       "unit_type": {"$in": [int(UnitType.AAU), int(UnitType.ERU_FROM_AAU)]}}
CHOOSE_MATCH: Document = {"registry": "KZ", "account_id": 1, "unit_type": 1, "applicable_cp": 2,
                          "reserved_by": None,
                          "$or": [{"expiry_date": None}, {"expiry_date": {"$gte": "2013-01-01"}}]}


def operations(client: Client, store: UnitBlockStore, count: int
               ) -> dict[str, Callable[[], Awaitable[Any]]]:
    """name -> one run of the operation on books of ``count`` blocks."""
    middle = BLOCK * (count // 2) + 1  # a block of account 1 in the middle of the books
    at_start = SerialRange(middle, middle + BLOCK - 1)
    inside = SerialRange(middle + 3, middle + 5)
    account = {"registry": "KZ", "account_id": 1}

    async def in_txn(work: Callable[[Session], Awaitable[Any]]) -> Any:
        return await in_transaction(client, work)

    async def walk_50_units(session: Session) -> int:
        units = 0
        async with aclosing(store.walk({**account, "unit_type": 1, "applicable_cp": 2},
                                       session=session, units=50)) as docs:
            async for doc in docs:
                if doc.get("reserved_by") is None:
                    units += doc["serial_end"] - doc["serial_start"] + 1
                    if units >= 50:
                        break
        return units

    async def figures_before(session: Session) -> tuple[int, int]:
        """The reserve check's holdings and the AAUs issued, summed over the blocks."""
        return (await before_sum(store, CPR_MATCH, session),
                await before_sum(store, AAU_MATCH, session))

    async def figures_after(session: Session) -> tuple[int, int]:
        return (await store.tally(CPR_HOLDINGS, ("KZ", 2), session),
                await store.tally(AAUS_ISSUED, ("KZ", 2), session))

    async def account_holdings_before() -> None:
        """GET /accounts/1/holdings before: every block of the account and its totals."""
        await store.held(account)
        await before_totals(store, account)

    async def account_holdings_after() -> None:
        """GET /accounts/1/holdings?limit=100 now: summaries and one page of blocks."""
        await store.totals("KZ", 1)
        await store.page(account, 100)

    async def itl_transfer_store_work(session: Session) -> None:
        """The ITL's store work for one external transfer of 5 units, then undone: block
        check, reserve figure, reservation (a split), release (a merge)."""
        block = UnitBlock(AAU_KZ, SerialRange(middle, middle + 4))
        assert await store.check_reservable([block], PARTY, "BENCH", session) == []
        await store.tally(CPR_HOLDINGS, ("KZ", 2), session)
        await store.reserve([block], "BENCH", session, int(TransactionType.EXTERNAL_TRANSFER))
        await store.release("BENCH", session)

    return {
        "overlap_lookup/before": lambda: in_txn(lambda s: before_overlap(store, at_start, s)),
        "overlap_lookup/after": lambda: in_txn(lambda s: store.overlapping("KZ", at_start, s)),
        "overlap_inside_a_block/before": lambda: in_txn(
            lambda s: before_overlap(store, inside, s)),
        "overlap_inside_a_block/after": lambda: in_txn(
            lambda s: store.overlapping("KZ", inside, s)),
        "merge_neighbour_lookup/after": lambda: in_txn(lambda s: store.collection.find_one(
            {"origin": "KZ", "serial_end": middle - 1}, session=s)),
        "reserve_check_figures/before": lambda: in_txn(figures_before),
        "reserve_check_figures/after": lambda: in_txn(figures_after),
        "choose_units_to_transfer/before": lambda: in_txn(
            lambda s: store.collection.find(CHOOSE_MATCH, session=s).to_list()),
        "choose_units_to_transfer/after": lambda: in_txn(walk_50_units),
        "registry_holdings/before": lambda: before_totals(store, {"registry": "KZ"}),
        "registry_holdings/after": lambda: store.totals("KZ"),
        "itl_totals/before": lambda: before_totals(store, {}),
        "itl_totals/after": lambda: store.totals(),
        "account_holdings_page_of_100/before": account_holdings_before,
        "account_holdings_page_of_100/after": account_holdings_after,
        "itl_transfer_store_work/after": lambda: in_txn(itl_transfer_store_work),
    }


async def timed(runs: dict[int, Callable[[], Awaitable[Any]]], repeats: int
                ) -> dict[str, float]:
    """Median wall time in milliseconds of ``repeats`` runs per size after one warm-up,
    the sizes taken in turn within each round so that the machine's load (shared cores)
    weighs on every size alike."""
    samples: dict[int, list[float]] = {count: [] for count in runs}
    for run in runs.values():
        await run()
    for _ in range(repeats):
        for count, run in runs.items():
            started = time.perf_counter()
            await run()
            samples[count].append((time.perf_counter() - started) * 1000)
    return {str(count): round(statistics.median(s), 2) for count, s in samples.items()}


async def measure(sizes: list[int], repeats: int, before: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="books-bench-") as data:
        server = start_store(storage=data)
        client = make_client(server.url)
        try:
            stores: dict[int, UnitBlockStore] = {}
            seeding: dict[str, float] = {}
            for count in sizes:
                started = time.perf_counter()
                stores[count] = await seeded(client, count)
                seeding[str(count)] = round(time.perf_counter() - started, 1)
                print(f"seeded {count} blocks in {seeding[str(count)]} s", flush=True)
            runs = {count: operations(client, store, count) for count, store in stores.items()}
            timings: dict[str, dict[str, float]] = {}
            for name in runs[sizes[0]]:
                if name.endswith("/before") and not before:
                    continue
                # the scans take tens of seconds at 10^5 blocks: fewer rounds of them
                rounds = max(3, repeats // 5) if name.endswith("/before") else repeats
                timings[name] = await timed({c: r[name] for c, r in runs.items()}, rounds)
                print(f"{name:40s} " + "  ".join(f"{c:>7}: {t:9.2f} ms"
                                                  for c, t in timings[name].items()),
                      flush=True)
            for store in stores.values():
                await store.collection.drop()
                await store.summaries.drop()
        finally:
            await client.close()
            server.stop()
    small, large = str(sizes[0]), str(sizes[-1])
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "store": "SecantusDB (secantusd-py), data on disk",
        "sizes_blocks": sizes,
        "repeats": repeats,
        "seconds_to_seed": seeding,
        "median_ms": timings,
        f"ratio_{large}_to_{small}": {
            name: round(t[large] / t[small], 2) for name, t in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-before", action="store_true",
                        help="time only the query shapes used now")
    parser.add_argument("--out", type=Path, default=RESULTS / "books.json")
    args = parser.parse_args()
    result = asyncio.run(measure(sorted(args.sizes), args.repeats, not args.skip_before))
    ratios = next(v for k, v in result.items() if k.startswith("ratio_"))
    print(f"\nratio of {result['sizes_blocks'][-1]} blocks to {result['sizes_blocks'][0]}:")
    for name, ratio in ratios.items():
        print(f"  {name:40s} {ratio:8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
