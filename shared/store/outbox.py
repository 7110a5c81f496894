"""The outbox: messages stored with the state change that caused them, then published.

A store transaction adds its outgoing messages to the ``outbox`` collection (``enqueue``)
with the state change that caused them. Once it has committed, the rows are handed to
this process's relay in memory (``OutboxRelay.hand``): the relay publishes them in
order, with confirms. The marks of published rows ride on the process's next store
transaction, with its own writes (``take_marks``, ``shared.service.Runtime``), or, when
none comes within ``MARK_DELAY_SECONDS``, are written by the relay in one update. Nothing
reads the outbox on this path.

A crash or restart can leave rows unpublished, or published and not yet marked; so can
a commit whose outcome the driver could not learn. The relay finds them with a sweep of
the collection when it starts and then every ``sweep_seconds`` (rows not already in its
hands), and publishes them again: the receiver's inbox drops a copy it has handled
(docs/adr/0024). One task publishes, sweeps and marks, so a row is never in its hands
twice.

When the process traces (``shared.tracing``), a row keeps the trace context of the
span that wrote it, and the relay publishes it in a span of that trace whose context
rides in the message's headers (docs/adr/0044).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from aio_pika.exceptions import DeliveryError
from pymongo.errors import PyMongoError

from shared.clock import SimulationClock
from shared.contracts import Envelope
from shared.logs import log_event
from shared.messaging import Broker, RecipientNotPermitted
from shared.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_ROWS_COMMITTED,
    OUTBOX_ROWS_MARKED,
    OUTBOX_ROWS_PUBLISHED,
    doing,
)
from shared.store.batching import attempt_of
from shared.store.client import Database, Document, Session
from shared.tracing import TRACE_FIELD, outbox_context, publishing

log = logging.getLogger("shared.outbox")
#: Real seconds between the relay's sweeps of the collection for rows left unpublished.
SWEEP_SECONDS = 30.0
#: Rows published before they are marked in one update.
MARK_BATCH = 100
#: Real seconds published rows wait for a store transaction to mark them with its own
#: writes before the relay marks them with an update of its own.
MARK_DELAY_SECONDS = 2.0


async def enqueue(db: Database, envelope: Envelope, session: Session) -> None:
    """Add ``envelope`` to the outbox inside the caller's transaction; the relay gets
    the row when the transaction has committed (``in_transaction``'s ``committed``)."""
    row: Document = {
        "_id": envelope.message_id,
        "enqueued_ns": time.time_ns(),
        "published": False,
        "correlation_id": envelope.correlation_id,
        "message_type": envelope.message_type.value,
        "recipient": envelope.recipient,
        "envelope": envelope.model_dump(mode="json"),
    }
    trace_context = outbox_context()
    if trace_context is not None:
        row[TRACE_FIELD] = trace_context  # the span that wrote it is the publish's parent
    await db.outbox.insert_one(row, session=session)
    attempt = attempt_of(session)
    if attempt is not None:
        attempt.outbox.append(row)


async def ensure_outbox_indexes(db: Database) -> None:
    await db.outbox.create_index([("published", 1), ("enqueued_ns", 1)])
    await db.outbox.create_index("correlation_id")
    await db.inbox.create_index("correlation_id")


class OutboxRelay:
    """Publishes the outbox of one service instance: rows handed to it after their
    transaction committed, and rows its sweep finds left over."""

    def __init__(self, db: Database, broker: Broker, clock: SimulationClock,
                 sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.sweep_seconds = sweep_seconds
        self._queue: deque[Document] = deque()
        #: Ids of rows handed over or found and not yet marked published.
        self._held: set[str] = set()
        #: Ids of rows published whose mark failed (a conflict with a transaction cut
        #: off by a crash, the store away): marked again by this relay alone, after a
        #: pause, never by a store transaction of the service (``take_marks``).
        self._unmarked: list[str] = []
        #: Ids of rows found by a sweep (left by an earlier life), until marked.
        self._swept: set[str] = set()
        #: Ids of rows published and not yet marked: the next store transaction of this
        #: process marks them with its own writes, or the relay does after a pause.
        self._to_mark: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def hand(self, rows: list[Document]) -> None:
        """Publish ``rows`` (outbox rows of a committed transaction, in order)."""
        for row in rows:
            if row["_id"] not in self._held:
                self._held.add(row["_id"])
                self._queue.append(row)
                OUTBOX_ROWS_COMMITTED.inc()
                OUTBOX_BACKLOG.inc()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drain(self) -> int:
        """Sweep: publish every unpublished row of the collection not in this relay's
        hands, oldest first; returns how many were published."""
        published = 0
        while True:
            rows = await self._unpublished()
            if not rows:
                await self._mark_pending()
                return published
            self._swept.update(row["_id"] for row in rows)
            self.hand(rows)
            published += await self._publish_handed()

    async def _unpublished(self) -> list[Document]:
        """Up to ``MARK_BATCH`` unpublished rows not in this relay's hands, oldest first."""
        held = list(self._held)
        query: Document = {"published": False}
        if held:
            query["_id"] = {"$nin": held}
        return await (self.db.outbox.find(query).sort("enqueued_ns", 1).limit(MARK_BATCH)
                      .to_list())

    async def _publish_handed(self, defer_marks: bool = False) -> int:
        """Publish the handed rows in order and mark them, up to ``MARK_BATCH`` per
        update (``defer_marks``: leave the marks to the next store transaction or to
        ``MARK_DELAY_SECONDS`` later, ``take_marks``); a row that cannot be delivered is
        set aside with the reason."""
        published = 0
        while self._queue:
            done: list[str] = []
            try:
                while self._queue and len(done) < MARK_BATCH:
                    row = self._queue[0]
                    try:
                        with publishing(row) as headers:
                            await self.broker.publish(
                                Envelope.model_validate(row["envelope"]), headers)
                        published += 1
                    except (DeliveryError, RecipientNotPermitted) as exc:
                        # No queue takes it (recipient unknown to the broker), or this
                        # service may not address it: retrying would hold back every
                        # later message, so it is set aside with the reason.
                        log_event(log, "outbox_message_undeliverable", logging.ERROR,
                                  message_id=row["_id"], recipient=row["recipient"],
                                  transaction_id=row["correlation_id"])
                        if await self._write_marks(
                                [row["_id"]], {**self.mark_fields(),
                                               "undeliverable": repr(exc)}):
                            self._forget([row["_id"]])
                        else:
                            self._unmarked.append(row["_id"])
                    else:
                        done.append(row["_id"])
                    OUTBOX_ROWS_PUBLISHED.inc()
                    OUTBOX_BACKLOG.dec()
                    self._queue.popleft()
            finally:
                if done and defer_marks:
                    # rows an earlier life left are marked by the relay alone: a
                    # transaction of that life may still hold them
                    self._unmarked.extend(i for i in done if i in self._swept)
                    self._to_mark.extend(i for i in done if i not in self._swept)
                elif done:
                    await self._mark(done)
        return published

    def take_marks(self) -> list[str]:
        """The ids of rows published and not marked yet, for a store transaction to mark
        with its own writes (``mark_fields``); give them back with ``untake_marks`` if it
        does not commit, or confirm them with ``marked``."""
        ids, self._to_mark = self._to_mark, []
        return ids

    def untake_marks(self, ids: list[str]) -> None:
        """Rows a store transaction took to mark and did not: marked later."""
        self._to_mark = ids + self._to_mark
        if ids:
            self._wake.set()

    def marked(self, ids: list[str]) -> None:
        """Rows a committed store transaction marked."""
        if ids:
            self._forget(ids)

    def mark_fields(self) -> Document:
        """What marking a row sets."""
        return {"published": True, "published_at": self.clock.now()}

    async def _mark(self, ids: list[str]) -> None:
        """Mark ``ids`` published; if that fails, they are marked again later by this
        relay alone (``_unmarked``)."""
        if await self._write_marks(ids, self.mark_fields()):
            self._forget(ids)
        else:
            self._unmarked.extend(ids)

    async def _write_marks(self, ids: list[str], fields: Document) -> bool:
        """Set ``fields`` on the rows ``ids`` in one store transaction, tried once:
        whether it committed. A row may still be written by a transaction of an earlier
        life of this service that was cut off mid-way (the server aborts it after its
        transaction lifetime): its mark then conflicts at once and is tried again after a
        pause, instead of waiting on it while newer rows wait to be published."""
        try:
            async with self.db.client.start_session() as session:  # noqa: SIM117
                async with await session.start_transaction():
                    await self.db.outbox.update_many({"_id": {"$in": ids}}, {"$set": fields},
                                                     session=session)
        except PyMongoError as exc:
            log_event(log, "outbox_mark_deferred", logging.WARNING, rows=len(ids),
                      error=repr(exc))
            return False
        return True

    async def _mark_pending(self) -> None:
        """Mark, in one update, the rows no store transaction has taken to mark and those
        whose mark failed before."""
        ids = self._unmarked + self.take_marks()
        self._unmarked = []
        if ids:
            await self._mark(ids)

    def _forget(self, ids: list[str]) -> None:
        self._held.difference_update(ids)
        self._swept.difference_update(ids)
        OUTBOX_ROWS_MARKED.inc(len(ids))

    async def _run(self) -> None:
        swept_at = 0.0
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - swept_at >= self.sweep_seconds:
                    with doing("sweep"):
                        await self.drain()
                    swept_at = time.monotonic()
                with doing("relay"):
                    await self._publish_handed(defer_marks=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_event(log, "outbox_publish_failed", logging.ERROR, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            timeout = max(0.0, self.sweep_seconds - (time.monotonic() - swept_at))
            if self._to_mark or self._unmarked:
                timeout = min(timeout, MARK_DELAY_SECONDS)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                try:
                    with doing("relay"):
                        await self._mark_pending()
                except Exception as exc:
                    log_event(log, "outbox_mark_failed", logging.ERROR, error=repr(exc))
