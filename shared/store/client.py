"""Store client construction and the transaction runner every service uses."""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from shared.metrics import STORE_TURNS, StoreCommandListener, abandoned, abandoning
from shared.store.batching import (
    BatchingClient,
    KnownDocumentsMode,
    attempt_of,
    attempting,
    find_known,
)

Document = dict[str, Any]
Client = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]
Session = AsyncClientSession
T = TypeVar("T")


def make_client(mongo_url: str, known_documents: KnownDocumentsMode = "on") -> Client:
    """A client for ``MONGO_URL``: SecantusDB, a local mongod or a replica set alike.
    Every command it sends is counted (``shared.metrics``, ``GET /metrics``); inside a
    transaction its writes are sent together (``shared.store.batching``);
    ``known_documents`` (``KNOWN_DOCUMENTS``): whether documents the process committed
    are used without reading them back (docs/adr/0046)."""
    client = BatchingClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000,
                            event_listeners=[StoreCommandListener()])
    client.known_documents = known_documents
    return client


def database_name(mongo_url: str, default: str) -> str:
    """The database named in the URL path, else the service's default name."""
    return parse_uri(mongo_url).get("database") or default


class Turns:
    """Whose turn it is to run a store transaction on one client: one at a time; of those
    waiting, the urgent ones first (work that finishes what was started: a message's
    effect), then the others, each in the order they asked."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    async def acquire(self, urgent: bool) -> None:
        if not self._busy:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        queue = self._waiting[0 if urgent else 1]
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the turn as it was cancelled: pass it on
            elif turn in queue:
                queue.remove(turn)
            raise

    def release(self) -> None:
        """Hand the turn to the next waiting, or free it."""
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._busy = False


#: The turns of each client object (a service process has one client: ``Runtime.client``),
#: by ``id``: clients compare equal when they reach the same server, and two clients must
#: not share turns; an entry goes when its client is collected.
_TURNS: dict[int, Turns] = {}
#: The turns the current context holds (``id`` of each): a transaction started inside
#: one, by the same task or one it started, runs at once instead of waiting.
_HOLDING: ContextVar[frozenset[int]] = ContextVar("store_turns_held", default=frozenset())
#: Whether the current context's transactions go before the others waiting (``urgent``).
_URGENT: ContextVar[bool] = ContextVar("store_turn_urgent", default=False)


@contextmanager
def urgent() -> Iterator[None]:
    """The store transactions started inside the block go before the others waiting for
    their turn: the effect of a message, which finishes a transaction, goes before new
    requests that start one (docs/adr/0026)."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


async def in_transaction(
    client: Client, work: Callable[[Session], Awaitable[T]],
    committed: Callable[[list[Document]], None] | None = None,
) -> T:
    """Run ``work`` in one multi-document transaction, one at a time per ``client``.

    The store transactions of one client (one service process) take turns (``Turns``;
    those started inside ``urgent()`` first, otherwise in the order they asked): two of
    them never overlap, so they never meet a write conflict on the documents every
    transfer of a registry writes (the transferring account, its summaries and biggest
    block, the transaction counter, the share-of-proceeds ledger; docs/adr/0026). A
    transaction started inside one holding the turn (nested, also from a task it
    started) runs at once. The store still detects conflicts with writers outside this
    process (another instance, a tool): ``with_transaction`` retries the whole ``work``
    on a ``TransientTransactionError``, so correctness never rests on the turns.

    Counted in ``GET /metrics`` (``shared.metrics``): a transaction the store refused
    and that is retried ends as ``abort``; one that ``work`` itself ends by raising (a
    refused request, a rehearsal, docs/adr/0018) as ``abandon``; the real seconds spent
    waiting for the turn and holding it.

    With a ``BatchingClient`` (``make_client``) the writes ``work`` makes are queued and
    sent together, before a read of a collection they write and at the end of ``work``
    (``shared.store.batching``, docs/adr/0024). Once the transaction has committed,
    ``committed`` gets the outbox rows it added (``shared.store.outbox.enqueue``), in the
    order added (none: an empty list).
    """
    turns = _TURNS.get(id(client))
    if turns is None:
        turns = _TURNS[id(client)] = Turns()
        weakref.finalize(client, _TURNS.pop, id(client), None)
    held = _HOLDING.get()
    if id(turns) in held:
        return await _run(client, work, committed)
    asked = time.perf_counter()
    await turns.acquire(_URGENT.get())
    got = time.perf_counter()
    STORE_TURNS.labels(phase="wait").inc(got - asked)
    token = _HOLDING.set(held | {id(turns)})
    try:
        return await _run(client, work, committed)
    finally:
        _HOLDING.reset(token)
        turns.release()
        STORE_TURNS.labels(phase="held").inc(time.perf_counter() - got)


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the store transaction running in ``session`` has committed
    (an attempt the store retries, or work that raises, runs none of its actions); at
    once when ``session`` runs no batched transaction attempt (``shared.store.batching``).
    For counters of what a transaction recorded (``shared.metrics``): counted where it
    happens, once, and only if it happened."""
    attempt = attempt_of(session)
    if attempt is None:
        action()
    else:
        attempt.on_commit.append(action)


async def _run(client: Client, work: Callable[[Session], Awaitable[T]],
               committed: Callable[[list[Document]], None] | None) -> T:
    added: list[Document] = []
    actions: list[Callable[[], None]] = []

    async def batched(session: Session) -> T:
        if not isinstance(client, BatchingClient):
            return await work(session)
        with attempting(client, session) as this:
            result = await work(session)
            await this.conclude(session)
        added[:] = this.outbox
        actions[:] = [*this.on_commit,
                      functools.partial(this.knowledge.commit, client.known)]
        return result

    async def attempt(session: Session) -> T:
        try:
            return await batched(session)
        except PyMongoError as exc:
            if not exc.has_error_label("TransientTransactionError"):
                abandoning()
            raise
        except BaseException:
            abandoning()
            raise

    # Not causally consistent: a retried attempt's first command would carry
    # ``readConcern.afterClusterTime``, which SecantusDB refuses on ``bulkWrite``; each
    # transaction has its own session, so there is no earlier operation to follow.
    async with client.start_session(causal_consistency=False) as session:
        try:
            result = await session.with_transaction(attempt)
        finally:
            abandoned()
    for action in actions:
        action()
    if committed is not None:
        committed(list(added))
    return result


async def insert_apart(client: Client, collection: AsyncCollection[Document],
                       documents: list[Document], replacing: Document,
                       per_transaction: int) -> None:
    """Insert ``documents`` into ``collection`` in store transactions of their own,
    ``per_transaction`` documents each, the first one deleting what matches
    ``replacing`` (what an earlier attempt of the same work left): for writes too large
    for one store transaction (a reconciliation's snapshot of a million blocks, about
    100 MB, fails with ``TransactionTooLargeForCache``, code 388).

    Called from a store transaction, they run at once, in its turn (``in_transaction``):
    no other store transaction of the process runs between that transaction's reads and
    its commit. They commit before it, whatever becomes of it; if it is tried again, the
    documents are written again, replacing those."""
    for first in range(0, max(len(documents), 1), per_transaction):
        batch = documents[first:first + per_transaction]

        async def work(session: Session, batch: list[Document] = batch,
                       clear: bool = first == 0) -> None:
            if clear:
                await collection.delete_many(replacing, session=session)
            if batch:
                await collection.insert_many(batch, session=session)

        await in_transaction(client, work)


async def next_sequence(db: Database, name: str, session: Session, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers of the counter ``name``; returns the first.

    Runs inside the caller's transaction: the transactions of one process take turns
    (``in_transaction``), and a writer from elsewhere conflicts and one of the two
    retries; a small read-then-update instead of findAndModify, which scans collections.
    The counter's value is read once per process and then known (``find_known``,
    docs/adr/0046): the update is conditioned on it, so a number is never given twice.
    """
    client = db.client
    if isinstance(client, BatchingClient):
        client.know(db.counters, guard=("value",))
    doc = await find_known(db.counters, name, session)
    first = int(doc["value"]) + 1 if doc else 1
    await db.counters.update_one(
        {"_id": name}, {"$set": {"value": first + count - 1}}, upsert=True, session=session
    )
    return first
