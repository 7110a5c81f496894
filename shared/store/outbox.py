"""The outbox: messages stored with the state change that caused them, then published.

A relay publishes unpublished rows in order, with confirms, and marks them. A crash
between publish and mark publishes the row again; the receiver's inbox drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aio_pika.exceptions import DeliveryError

from shared.clock import SimulationClock
from shared.contracts import Envelope
from shared.logs import log_event
from shared.messaging import Broker, RecipientNotPermitted
from shared.store.client import Database, Session

log = logging.getLogger("shared.outbox")


async def enqueue(db: Database, envelope: Envelope, session: Session) -> None:
    """Add ``envelope`` to the outbox inside the caller's transaction."""
    await db.outbox.insert_one(
        {
            "_id": envelope.message_id,
            "enqueued_ns": time.time_ns(),
            "published": False,
            "correlation_id": envelope.correlation_id,
            "message_type": envelope.message_type.value,
            "recipient": envelope.recipient,
            "envelope": envelope.model_dump(mode="json"),
        },
        session=session,
    )


async def ensure_outbox_indexes(db: Database) -> None:
    await db.outbox.create_index([("published", 1), ("enqueued_ns", 1)])
    await db.outbox.create_index("correlation_id")
    await db.inbox.create_index("correlation_id")


class OutboxRelay:
    """Publishes the outbox of one service instance."""

    def __init__(self, db: Database, broker: Broker, clock: SimulationClock) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Tell the relay that new rows were committed."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drain(self) -> int:
        """Publish every unpublished row now; returns how many were published."""
        published = 0
        while True:
            rows = (
                await self.db.outbox.find({"published": False})
                .sort("enqueued_ns", 1)
                .limit(100)
                .to_list()
            )
            if not rows:
                return published
            for row in rows:
                fields: dict[str, object] = {"published": True,
                                             "published_at": self.clock.now()}
                try:
                    await self.broker.publish(Envelope.model_validate(row["envelope"]))
                    published += 1
                except (DeliveryError, RecipientNotPermitted) as exc:
                    # No queue takes it (recipient unknown to the broker), or this service
                    # may not address it: retrying would hold back every later message,
                    # so it is set aside with the reason.
                    fields["undeliverable"] = repr(exc)
                    log_event(log, "outbox_message_undeliverable", logging.ERROR,
                              message_id=row["_id"], recipient=row["recipient"],
                              transaction_id=row["correlation_id"])
                await self.db.outbox.update_one({"_id": row["_id"]}, {"$set": fields})

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_event(log, "outbox_publish_failed", logging.ERROR, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
