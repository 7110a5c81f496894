"""Writes of a store transaction sent together: one command for a run of writes.

Inside a transaction (``shared.store.client.in_transaction``) every write made through
a collection of this client (``insert_one``, ``insert_many``, ``update_one``,
``update_many``, ``replace_one``, ``delete_one``, ``delete_many``, ``bulk_write``) is
queued on the transaction's ``Attempt`` instead of being sent. The queue is sent, in the
order written, as one command:

- before a read in the same session of a collection with queued writes (``find``,
  ``find_one``, ``count_documents``, ``distinct``; ``aggregate`` whatever it reads): a
  read sees every write made before it, as before, and a read of a collection nothing
  was written to sends nothing;
- at the end of the transaction's work, before ``commitTransaction``.

The command is MongoDB 8.0's ``bulkWrite`` (writes across collections in one command)
when the server speaks it (wire version 25 or later, SecantusDB among them); on an
older server, one ``bulk_write`` per run of writes to one collection. Both are ordered:
the first failing write stops the rest, and the transaction is aborted as it would have
been by the write alone. A duplicate key is raised as ``DuplicateKeyError``, a write
conflict as the server's error with its ``TransientTransactionError`` label (so
``with_transaction`` retries the whole transaction): callers see the errors they saw when
each write was its own command, only later, when the queue is sent.

A queued write's result is unacknowledged (reading its counts raises): nothing in the
services reads them. Writes outside a transaction, or with no session, are sent at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from bson import ObjectId
from pymongo import (
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateMany,
    UpdateOne,
)
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import BulkWriteError, ClientBulkWriteException, DuplicateKeyError
from pymongo.results import (
    BulkWriteResult,
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)

from shared.store.known import (
    UNKNOWN,
    Knowledge,
    KnownDocuments,
    StaleKnownDocument,
    _Entry,
    _Unknown,
    applied,
    document_id_of,
    matches,
)

Document = dict[str, Any]
#: ``KNOWN_DOCUMENTS`` (``ServiceSettings.known_documents``): documents a process
#: committed are used without reading them back (``on``), read (``off``: several
#: processes write one database), or used and read, a difference failing (``verify``).
KnownDocumentsMode = Literal["on", "off", "verify"]
#: The first wire version of MongoDB 8.0, whose ``bulkWrite`` writes across collections.
CLIENT_BULK_WRITE_WIRE_VERSION = 25
DUPLICATE_KEY = 11000
#: A write called with one positional argument (the document(s), filter or requests).
ONE = range(1, 2)


@dataclass
class _Write:
    """One queued write: its collection and its operation as a bulk-write model's
    arguments (``kind``: insert, update_one, update_many, replace, delete_one,
    delete_many)."""

    collection: BatchingCollection
    kind: str
    args: dict[str, Any]
    #: A write conditioned on a known state (``shared.store.known``): it must match one
    #: document, else that state is stale.
    expect_one: bool = False
    document_id: Any = None

    def model(self, namespace: str | None) -> Any:
        extra: dict[str, Any] = {} if namespace is None else {"namespace": namespace}
        a = self.args
        if self.kind == "insert":
            return InsertOne(a["document"], **extra)
        if self.kind == "update_one":
            return UpdateOne(a["filter"], a["update"], upsert=a.get("upsert"), **extra)
        if self.kind == "update_many":
            return UpdateMany(a["filter"], a["update"], upsert=a.get("upsert"), **extra)
        if self.kind == "replace":
            return ReplaceOne(a["filter"], a["replacement"], upsert=bool(a.get("upsert")),
                              **extra)
        if self.kind == "delete_one":
            return DeleteOne(a["filter"], **extra)
        return DeleteMany(a["filter"], **extra)


@dataclass
class Attempt:
    """One attempt of one store transaction: the writes not sent yet and the outbox
    rows it added (handed to the relay once the transaction has committed)."""

    client: BatchingClient
    writes: list[_Write] = field(default_factory=list)
    outbox: list[Document] = field(default_factory=list)
    #: Reads kept for the rest of the attempt, by (collection full name, what was
    #: asked): forgotten as soon as anything is written to that collection
    #: (``remember``, ``recall``).
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: Per collection, the state the attempt gave each document it wrote (None:
    #: deleted), for a collection whose every write records it here (``overlay``).
    overlays: dict[str, dict[Any, Document | None]] = field(default_factory=dict)
    #: How many times queued writes were sent (``flush`` with writes).
    sends: int = 0
    #: What to do once the transaction has committed, in order (``after_commit``): the
    #: counters of what it recorded (``shared.metrics``), so that an attempt the store
    #: retried, or one abandoned, counts nothing.
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    #: What the attempt knows of the documents of known collections (``find_known``).
    knowledge: Knowledge = field(default_factory=Knowledge)

    def __post_init__(self) -> None:
        self.knowledge.epochs = {name: documents.epoch
                                 for name, documents in self.client.known.items()}

    def forget(self, collection: str) -> None:
        """Drop the reads of ``collection`` kept so far (it is being written)."""
        for key in [k for k in self.memo if k[0] == collection]:
            del self.memo[key]

    async def conclude(self, session: AsyncClientSession) -> None:
        """The end of the attempt's work: the conditions of the known states it used and
        did not write (``shared.store.known``), then every queued write, sent."""
        for (name, document_id), entry in self.knowledge.entries.items():
            if entry.from_known and not entry.checked and isinstance(entry.state, dict):
                collection = self.client.known_collection(name)
                if collection is None:
                    continue
                guard = self.client.known[name].conditions(entry.state)
                entry.checked = True
                self.writes.append(_condition(collection, document_id, guard))
        await self.flush(session)

    async def flush(self, session: AsyncClientSession) -> None:
        """Send the queued writes (one command, or one per run of one collection); a
        write conditioned on a known state that matches nothing raises
        ``StaleKnownDocument`` (that state dropped)."""
        if not self.writes:
            return
        writes, self.writes = self.writes, []
        self.sends += 1
        if await self.client.speaks_client_bulk_write():
            models = [w.model(w.collection.full_name) for w in writes]
            checked = any(w.expect_one for w in writes)
            try:
                result = await self.client.bulk_write(models, session=session, ordered=True,
                                                      verbose_results=checked)
            except ClientBulkWriteException as exc:
                raise _plain_error(exc) from exc
            if checked:
                matched = {i: r.matched_count for i, r in result.update_results.items()}
                self._check([w for i, w in enumerate(writes)
                             if w.expect_one and matched.get(i) != 1])
            return
        for run in _runs(writes):
            if run[0].expect_one:
                answer = await AsyncCollection.update_one(
                    run[0].collection, run[0].args["filter"], run[0].args["update"],
                    session=session)
                self._check([run[0]] if answer.matched_count != 1 else [])
                continue
            try:
                await AsyncCollection.bulk_write(run[0].collection,
                                                 [w.model(None) for w in run],
                                                 ordered=True, session=session)
            except BulkWriteError as exc:
                raise _plain_error(exc) from exc

    def _check(self, stale: list[_Write]) -> None:
        """Drop the known states the conditions of ``stale`` found changed, and raise."""
        for write in stale:
            self.client.known[write.collection.full_name].drop(write.document_id)
        if stale:
            raise StaleKnownDocument(stale[0].collection.full_name, stale[0].document_id)


def _condition(collection: BatchingCollection, document_id: Any, guard: Document) -> _Write:
    """A write that changes nothing and matches the document only while its ``guard``
    fields are as known (``$setOnInsert`` without upsert sets nothing)."""
    return _Write(collection, "update_one",
                  {"filter": {"_id": document_id, **guard},
                   "update": {"$setOnInsert": guard}, "upsert": False},
                  expect_one=True, document_id=document_id)


def _runs(writes: list[_Write]) -> Iterator[list[_Write]]:
    """Consecutive writes to one collection, in order."""
    run: list[_Write] = []
    for write in writes:
        if run and (run[0].collection.full_name != write.collection.full_name
                    or write.expect_one or run[0].expect_one):
            yield run
            run = []
        run.append(write)
    if run:
        yield run


def _plain_error(exc: ClientBulkWriteException | BulkWriteError) -> Exception:
    """The error one write would have raised on its own: the command's error (a write
    conflict, with its labels), else ``DuplicateKeyError`` for a duplicate key."""
    if isinstance(exc, ClientBulkWriteException):
        if exc.error is not None and isinstance(exc.error, Exception):
            return exc.error
        errors: list[Any] = list(exc.write_errors or [])
    else:
        errors = exc.details.get("writeErrors", [])
    for error in errors:
        if error.get("code") == DUPLICATE_KEY:
            return DuplicateKeyError(error.get("errmsg", "duplicate key"), DUPLICATE_KEY,
                                     error)
    return exc


_ATTEMPTS: dict[int, Attempt] = {}
#: Reads made outside any store transaction while one API request is handled, kept for
#: the rest of the request (``request_reads``).
_REQUEST_READS: contextvars.ContextVar[dict[tuple[Any, ...], Any] | None] = (
    contextvars.ContextVar("request_reads", default=None))


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """Within the block (one API request), reads outside a store transaction that ask
    to be kept (``request_reads``) are made once."""
    token = _REQUEST_READS.set({})
    try:
        yield
    finally:
        _REQUEST_READS.reset(token)


def request_reads() -> dict[tuple[Any, ...], Any] | None:
    """The reads kept for the API request being handled (None outside one), by
    (collection full name, what was asked): a read outside a store transaction may be
    answered from here, as if made when first made in the same request. A write to the
    collection by this request drops them."""
    return _REQUEST_READS.get()


def attempt_of(session: AsyncClientSession | None) -> Attempt | None:
    """The transaction attempt running in ``session``, if any."""
    if session is None:
        return None
    return _ATTEMPTS.get(id(session))


@contextlib.contextmanager
def attempting(client: BatchingClient, session: AsyncClientSession) -> Iterator[Attempt]:
    """Queue the writes made in ``session`` on a new ``Attempt`` within the block."""
    attempt = Attempt(client)
    _ATTEMPTS[id(session)] = attempt
    try:
        yield attempt
    finally:
        if _ATTEMPTS.get(id(session)) is attempt:
            del _ATTEMPTS[id(session)]


@dataclass
class Discarded:
    """What ``discarding`` did: ``clean`` is True when nothing written within the block
    was sent (so all of it was dropped), False when some of it was sent (then nothing was
    dropped, and the caller must not commit the transaction)."""

    clean: bool = True


@contextlib.contextmanager
def discarding(session: AsyncClientSession) -> Iterator[Discarded]:
    """Within the block, the writes made in ``session``'s transaction attempt are queued
    as always; at its end they are dropped, unsent, with the outbox rows, kept reads,
    written states and actions to run at commit (``after_commit``: the counters of
    ``shared.metrics``) recorded since it began (work run only for its checks, e.g. the
    rehearsal of a request awaiting approval, docs/adr/0018), so that the transaction
    can go on to write something else. If a read within the block had to send them (a
    read of a collection they write), they are in the transaction and cannot be dropped:
    ``Discarded.clean`` is False and the caller abandons the transaction instead.
    ``RuntimeError`` outside a transaction attempt."""
    attempt = attempt_of(session)
    if attempt is None:
        raise RuntimeError("discarding needs a store transaction")
    writes, outbox, sends = len(attempt.writes), len(attempt.outbox), attempt.sends
    actions = len(attempt.on_commit)
    memo, overlays = copy.deepcopy(attempt.memo), copy.deepcopy(attempt.overlays)
    knowledge = attempt.knowledge.snapshot()
    done = Discarded()
    yield done
    if attempt.sends != sends:
        done.clean = False
        return
    del attempt.writes[writes:]
    del attempt.outbox[outbox:]
    del attempt.on_commit[actions:]
    attempt.memo, attempt.overlays, attempt.knowledge = memo, overlays, knowledge


def know(collection: AsyncCollection[Document], guard: tuple[str, ...]) -> None:
    """Declare ``collection``'s documents known (``BatchingClient.know``); nothing with a
    client that does not batch."""
    client = collection.database.client
    if isinstance(client, BatchingClient):
        client.know(collection, guard)


async def find_known(collection: AsyncCollection[Document], document_id: Any,
                     session: AsyncClientSession | None) -> Document | None:
    """The document of ``collection`` with ``_id`` ``document_id`` (None: none), as
    ``session``'s store transaction sees it: from the states this process knows
    (``BatchingClient.know``, ``shared.store.known``) when it knows it, else read, and
    its state then known for the rest of the transaction and, once it commits, after.
    Outside a transaction, or in a collection that is not known: read."""
    attempt = attempt_of(session)
    client = collection.database.client
    known = client.known.get(collection.full_name) if isinstance(client, BatchingClient) \
        else None
    if attempt is None or known is None or collection.full_name in attempt.knowledge.cleared:
        return await collection.find_one({"_id": document_id}, session=session)
    key = (collection.full_name, document_id)
    entry = attempt.knowledge.entries.get(key)
    if entry is None:
        state = known.get(document_id)
        if state is not None:
            entry = attempt.knowledge.entries[key] = _Entry(state, from_known=True)
            if client.known_documents == "verify":
                await _verify(collection, document_id, state, session)
    if entry is None or isinstance(entry.state, _Unknown):
        read = await collection.find_one({"_id": document_id}, session=session)
        if entry is None:
            attempt.knowledge.entries[key] = _Entry(read)
        else:
            entry.state = read
        return copy.deepcopy(read)
    return copy.deepcopy(entry.state)


async def _verify(collection: AsyncCollection[Document], document_id: Any,
                  state: Document, session: AsyncClientSession | None) -> None:
    """With ``known_documents`` ``verify``: a known state must equal the store's."""
    stored = await collection.find_one({"_id": document_id}, session=session)
    if stored != state or list(stored or {}) != list(state):
        raise AssertionError(f"{collection.full_name} {document_id!r}: known {state!r}, "
                             f"stored {stored!r}")


def recall(session: AsyncClientSession | None, key: tuple[Any, ...]) -> Any:
    """A read kept in ``session``'s attempt under ``key`` (its first item the collection's
    full name), as a deep copy; None when there is none."""
    attempt = attempt_of(session)
    if attempt is None or key not in attempt.memo:
        return None
    return copy.deepcopy(attempt.memo[key])


def remember(session: AsyncClientSession | None, key: tuple[Any, ...], value: Any) -> None:
    """Keep a read in ``session``'s attempt until its collection is written (``recall``)."""
    attempt = attempt_of(session)
    if attempt is not None:
        attempt.memo[key] = copy.deepcopy(value)


def overlay(session: AsyncClientSession | None, collection: str
            ) -> dict[Any, Document | None] | None:
    """Where the writers of ``collection`` record, for ``session``'s attempt, each
    document's state after their writes (None: deleted): with every write to the
    collection recorded, a read may be answered from the store as committed plus this
    overlay without sending the queued writes first (``read_through``). None outside a
    transaction (writes are sent at once there)."""
    attempt = attempt_of(session)
    if attempt is None:
        return None
    return attempt.overlays.setdefault(collection, {})


async def read_through(collection: AsyncCollection[Document], query: Document,
                       session: AsyncClientSession | None,
                       written: dict[Any, Document | None],
                       stored: list[Document] | None = None,
                       matches: Callable[[Document], bool] | None = None) -> list[Document]:
    """The documents matching ``query`` as the transaction sees them, without sending its
    queued writes: the store's answer with the documents in ``written`` (the
    collection's ``overlay``) replaced by their state there. ``stored``: the store's
    answer, already read in this transaction (by a wider look-up, at any point of it:
    the overlay holds every write since); None reads it. ``matches`` tells whether a
    written state matches ``query``; by default ``query`` holds equalities on top-level
    fields only."""
    def equal(doc: Document) -> bool:
        return all(doc.get(k) == v for k, v in query.items())

    if stored is None:
        cursor: AsyncCursor[Document] = AsyncCursor(collection, query, session=session)
        stored = [doc async for doc in cursor]
    found = [dict(doc) for doc in stored if doc["_id"] not in written]
    found += [dict(doc) for doc in written.values()
              if doc is not None and (matches or equal)(doc)]
    return found


async def _flush_before_read(session: AsyncClientSession | None,
                             collection: str | None = None) -> None:
    """Send the queued writes of ``session``'s transaction when they include a write
    to ``collection`` (any, when None): a read sees what the transaction wrote."""
    attempt = attempt_of(session)
    if attempt is None or session is None:
        return
    if collection is None or any(w.collection.full_name == collection
                                 for w in attempt.writes):
        await attempt.flush(session)


class BatchingCursor(AsyncCursor[Document]):
    """A ``find`` cursor that sends its session's queued writes before its first read."""

    async def _refresh(self) -> int:
        await _flush_before_read(self._session, self._collection.full_name)
        return await super()._refresh()


class BatchingCollection(AsyncCollection[Document]):
    """A collection whose writes inside a transaction are queued (module docstring)."""

    def _queue_write(self, session: AsyncClientSession, kind: str, **args: Any) -> None:
        """Queue one write on ``session``'s attempt (``_queueing`` found one); in a known
        collection, work out the document's state after it (``shared.store.known``)."""
        attempt = attempt_of(session)
        assert attempt is not None
        self._forget(session)
        known = self._known()
        if known is None:
            attempt.writes.append(_Write(self, kind, args))
            return
        knowledge = attempt.knowledge
        document_id = document_id_of(kind, args)
        if isinstance(document_id, _Unknown):
            knowledge.cleared.add(self.full_name)
            attempt.writes.append(_Write(self, kind, args))
            return
        key = (self.full_name, document_id)
        entry = knowledge.entries.get(key)
        if entry is None:
            state = known.get(document_id) if kind != "insert" else None
            entry = knowledge.entries[key] = (_Entry(state, from_known=True) if state
                                              else _Entry(UNKNOWN))
        if entry.from_known and not entry.checked and isinstance(entry.state, dict):
            entry.checked = True
            guard = known.conditions(entry.state)
            own = args.get("filter", {})
            # the write's own filter stands: conditioned only where the known state
            # matches it (else the condition goes alone, and the write as it was)
            if kind == "update_one" and all(own.get(k, v) == v for k, v in guard.items()) \
                    and matches(entry.state, own, self.codec_options):
                args = {**args, "filter": {**own, **guard}, "upsert": False}
                entry.state = applied(entry.state, kind, args, self.codec_options)
                attempt.writes.append(_Write(self, kind, args, expect_one=True,
                                             document_id=document_id))
                return
            attempt.writes.append(_condition(self, document_id, guard))
        entry.state = applied(entry.state, kind, args, self.codec_options)
        attempt.writes.append(_Write(self, kind, args))

    def _known(self) -> KnownDocuments | None:
        """This collection's known documents (``BatchingClient.know``), if it has any."""
        client = self.database.client
        if not isinstance(client, BatchingClient):
            return None
        return client.known.get(self.full_name)

    def _unknown(self, session: AsyncClientSession | None) -> None:
        """A write not worked out here (sent at once, or ``find_one_and_update``): every
        known document of this collection is dropped, at once or when the attempt
        commits."""
        known = self._known()
        if known is None:
            return
        attempt = attempt_of(session)
        if attempt is None:
            known.clear()
        else:
            attempt.knowledge.cleared.add(self.full_name)

    def _queueing(self, args: tuple[Any, ...], kwargs: dict[str, Any], arity: range,
                  keywords: frozenset[str] = frozenset({"session"})
                  ) -> AsyncClientSession | None:
        """The session whose attempt takes a write called with ``args`` (their number in
        ``arity``) and ``kwargs`` (among ``keywords``); None when the write is sent at
        once (outside a transaction, or with arguments the queue does not carry), after
        dropping the reads of this collection kept so far."""
        session = kwargs.get("session")
        if len(args) in arity and not set(kwargs) - keywords \
                and attempt_of(session) is not None:
            return session
        self._forget(session)
        self._unknown(session)
        return None

    def _forget(self, session: AsyncClientSession | None) -> None:
        """A write to this collection (queued or sent): drop the reads of it kept in the
        session's attempt and for the API request being handled."""
        attempt = attempt_of(session)
        if attempt is not None:
            attempt.forget(self.full_name)
        kept = _REQUEST_READS.get()
        if kept:
            for key in [k for k in kept if k[0] == self.full_name]:
                del kept[key]

    async def insert_one(self, *args: Any, **kwargs: Any) -> InsertOneResult:
        session = self._queueing(args, kwargs, ONE)
        if session is None:
            return await super().insert_one(*args, **kwargs)
        document = _with_id(args[0])
        self._queue_write(session, "insert", document=document)
        return InsertOneResult(document["_id"], False)

    async def insert_many(self, *args: Any, **kwargs: Any) -> InsertManyResult:
        session = self._queueing(args, kwargs, ONE)
        if session is None:
            return await super().insert_many(*args, **kwargs)
        ids = []
        for document in args[0]:
            ids.append(_with_id(document)["_id"])
            self._queue_write(session, "insert", document=document)
        return InsertManyResult(ids, False)

    def _queued_update(self, kind: str, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> UpdateResult | None:
        """Queue an update or replacement called with (filter, update[, upsert]) and
        ``session``/``upsert`` keywords only; None when it must be sent at once."""
        session = self._queueing(args, kwargs, range(2, 4),
                                 frozenset({"session", "upsert"}))
        if session is None:
            return None
        upsert = bool(args[2] if len(args) == 3 else kwargs.get("upsert", False))
        if kind == "replace":
            self._queue_write(session, kind, filter=args[0], replacement=args[1],
                              upsert=upsert)
        else:
            self._queue_write(session, kind, filter=args[0], update=args[1], upsert=upsert)
        return UpdateResult({}, False)

    async def update_one(self, *args: Any, **kwargs: Any) -> UpdateResult:
        queued = self._queued_update("update_one", args, kwargs)
        return queued if queued is not None else await super().update_one(*args, **kwargs)

    async def update_many(self, *args: Any, **kwargs: Any) -> UpdateResult:
        queued = self._queued_update("update_many", args, kwargs)
        return queued if queued is not None else await super().update_many(*args, **kwargs)

    async def replace_one(self, *args: Any, **kwargs: Any) -> UpdateResult:
        queued = self._queued_update("replace", args, kwargs)
        return queued if queued is not None else await super().replace_one(*args, **kwargs)

    def _queued_delete(self, kind: str, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> DeleteResult | None:
        """Queue a deletion called with (filter) and ``session`` only; None when it must
        be sent at once."""
        session = self._queueing(args, kwargs, ONE)
        if session is None:
            return None
        self._queue_write(session, kind, filter=args[0])
        return DeleteResult({}, False)

    async def delete_one(self, *args: Any, **kwargs: Any) -> DeleteResult:
        queued = self._queued_delete("delete_one", args, kwargs)
        return queued if queued is not None else await super().delete_one(*args, **kwargs)

    async def delete_many(self, *args: Any, **kwargs: Any) -> DeleteResult:
        queued = self._queued_delete("delete_many", args, kwargs)
        return queued if queued is not None else await super().delete_many(*args, **kwargs)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> BulkWriteResult:
        session = self._queueing(args, kwargs, ONE, frozenset({"session", "ordered"}))
        if session is None:
            return await super().bulk_write(*args, **kwargs)
        for request in args[0]:
            kind, write = _as_write(request)
            self._queue_write(session, kind, **write)
        return BulkWriteResult({}, False)

    def find(self, *args: Any, **kwargs: Any) -> BatchingCursor:
        return BatchingCursor(self, *args, **kwargs)

    async def count_documents(self, *args: Any, **kwargs: Any) -> int:
        await _flush_before_read(kwargs.get("session"), self.full_name)
        return await super().count_documents(*args, **kwargs)

    async def aggregate(self, *args: Any, **kwargs: Any) -> AsyncCommandCursor[Document]:
        await _flush_before_read(kwargs.get("session"))
        return await super().aggregate(*args, **kwargs)

    async def distinct(self, *args: Any, **kwargs: Any) -> list[Any]:
        await _flush_before_read(kwargs.get("session"), self.full_name)
        return await super().distinct(*args, **kwargs)

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        session = kwargs.get("session")
        await _flush_before_read(session, self.full_name)
        self._forget(session)
        self._unknown(session)
        return await super().find_one_and_update(*args, **kwargs)

    async def drop(self, *args: Any, **kwargs: Any) -> None:
        self._unknown(None)
        await super().drop(*args, **kwargs)


def _with_id(document: Document) -> Document:
    """``document``, given an ``_id`` when it has none (as the driver does on insert)."""
    if "_id" not in document:
        document["_id"] = ObjectId()
    return document


def _as_write(request: Any) -> tuple[str, dict[str, Any]]:
    """A collection ``bulk_write`` request as a queued write's kind and arguments."""
    document: Any = getattr(request, "_doc", None)
    if isinstance(request, InsertOne):
        return "insert", {"document": _with_id(document)}
    kinds = {UpdateOne: "update_one", UpdateMany: "update_many", ReplaceOne: "replace",
             DeleteOne: "delete_one", DeleteMany: "delete_many"}
    kind = kinds[type(request)]
    args: dict[str, Any] = {"filter": request._filter}
    if kind in ("update_one", "update_many"):
        args.update(update=document, upsert=request._upsert)
    elif kind == "replace":
        args.update(replacement=document, upsert=request._upsert)
    return kind, args


class BatchingDatabase(AsyncDatabase[Document]):
    """A database whose collections are ``BatchingCollection``."""

    def __getitem__(self, name: str) -> BatchingCollection:
        return BatchingCollection(self, name)

    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> BatchingCollection:
        return BatchingCollection(self, name, False, *args, **kwargs)


class BatchingClient(AsyncMongoClient[Document]):
    """A client whose databases are ``BatchingDatabase``; it learns once whether its
    server speaks MongoDB 8.0's ``bulkWrite``."""

    _client_bulk_write: bool | None = None
    _known: dict[str, KnownDocuments] | None = None
    #: Whether ``know`` keeps anything, and whether a known state is checked against a
    #: read (``KnownDocumentsMode``).
    known_documents: KnownDocumentsMode = "on"

    def __getitem__(self, name: str) -> BatchingDatabase:
        return BatchingDatabase(self, name)

    @property
    def known(self) -> dict[str, KnownDocuments]:
        """The known collections of this client, by full name (``know``)."""
        if self._known is None:
            self._known = {}
        return self._known

    def know(self, collection: AsyncCollection[Document], guard: tuple[str, ...]) -> None:
        """Keep the committed states of ``collection``'s documents that this process's
        store transactions read by ``_id`` or wrote, for ``find_known`` (docs/adr/0046);
        a write based on a known state is conditioned on its ``guard`` fields. Nothing
        when ``known_documents`` is ``off`` (several processes writing one database)."""
        if self.known_documents == "off":
            return
        if collection.full_name not in self.known:
            self.known[collection.full_name] = KnownDocuments(collection.full_name, guard)

    def known_collection(self, full_name: str) -> BatchingCollection | None:
        """The collection of a known collection's full name."""
        if full_name not in self.known:
            return None
        database, _, name = full_name.partition(".")
        return self[database][name]

    async def drop_database(self, name_or_database: Any, *args: Any, **kwargs: Any) -> None:
        name = getattr(name_or_database, "name", name_or_database)
        for full_name, known in self.known.items():
            if full_name.startswith(f"{name}."):
                known.clear()
        await super().drop_database(name_or_database, *args, **kwargs)

    async def speaks_client_bulk_write(self) -> bool:
        """Whether the server takes writes to several collections in one ``bulkWrite``
        (MongoDB 8.0, wire version 25, or later)."""
        if self._client_bulk_write is None:
            hello = await self.admin.command("hello")
            self._client_bulk_write = (int(hello.get("maxWireVersion", 0))
                                       >= CLIENT_BULK_WRITE_WIRE_VERSION)
        return self._client_bulk_write
