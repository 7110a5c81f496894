"""Store client construction and the transaction runner every service uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.uri_parser import parse_uri

from shared.metrics import StoreCommandListener
from shared.store.batching import BatchingClient, attempting

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]
Session = AsyncClientSession
T = TypeVar("T")


def make_client(mongo_url: str) -> Client:
    """A client for ``MONGO_URL``: SecantusDB, a local mongod or a replica set alike.
    Every command it sends is counted (``shared.metrics``, ``GET /metrics``); inside a
    transaction its writes are sent together (``shared.store.batching``)."""
    return BatchingClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000,
                            event_listeners=[StoreCommandListener()])


def database_name(mongo_url: str, default: str) -> str:
    """The database named in the URL path, else the service's default name."""
    return parse_uri(mongo_url).get("database") or default


async def in_transaction(
    client: Client, work: Callable[[Session], Awaitable[T]],
    committed: Callable[[list[Document]], None] | None = None,
) -> T:
    """Run ``work`` in one multi-document transaction, retried on WriteConflict.

    With a ``BatchingClient`` (``make_client``) the writes ``work`` makes are queued and
    sent together, before a read of a collection they write and at the end of ``work``
    (``shared.store.batching``). Once the transaction has committed, ``committed`` gets
    the outbox rows it added (``shared.store.outbox.enqueue``), in the order added
    (none: an empty list).
    """
    # Not causally consistent: a retried attempt's first command would carry
    # ``readConcern.afterClusterTime``, which SecantusDB refuses on ``bulkWrite``; each
    # transaction has its own session, so there is no earlier operation to follow.
    async with client.start_session(causal_consistency=False) as session:
        if not isinstance(client, BatchingClient):
            return await session.with_transaction(work)
        added: list[Document] = []

        async def attempt(s: Session) -> T:
            with attempting(client, s) as this:
                result = await work(s)
                await this.flush(s)
            added[:] = this.outbox
            return result

        result = await session.with_transaction(attempt)
        if committed is not None:
            committed(list(added))
        return result


async def next_sequence(db: Database, name: str, session: Session, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers of the counter ``name``; returns the first.

    Runs inside the caller's transaction, so two writers conflict and one retries;
    a small read-then-update instead of findAndModify, which scans collections.
    """
    doc = await db.counters.find_one({"_id": name}, session=session)
    first = int(doc["value"]) + 1 if doc else 1
    await db.counters.update_one(
        {"_id": name}, {"$set": {"value": first + count - 1}}, upsert=True, session=session
    )
    return first
