"""The inbox: ids of messages already handled, so a redelivery has no second effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.contracts import Envelope
from shared.contracts.validity import MessageRefusal, duplicate_refusal
from shared.store.client import Client, Database, Document, Session, in_transaction

Effect = Callable[[Session], Awaitable[None]]


class MessageIdReused(Exception):
    """A message id the inbox holds came again with different content (1102,
    protocol.md 7.5): the message is refused, nothing is recorded."""

    def __init__(self, refusal: MessageRefusal, stored: Document) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal
        self.stored = stored


async def handle_once(
    client: Client, db: Database, envelope: Envelope, effect: Effect, received_at: datetime,
    committed: Callable[[list[Document]], None] | None = None,
) -> bool:
    """Apply ``effect`` and record the message id in one transaction.

    Returns False when this very message was handled before (and does nothing then).
    Raises ``MessageIdReused`` (1102), before any write, when the inbox holds another
    message under the same id. The effect adds its outgoing messages to the outbox in
    the same transaction; ``committed`` gets them once it has committed
    (``in_transaction``). The inbox row is written with the effect's last writes, in
    the same command (``shared.store.batching``): the look-up before the effect is the
    inbox's one command.
    """

    async def work(session: Session) -> bool:
        handled = await db.inbox.find_one({"_id": envelope.message_id}, session=session)
        if handled is not None:
            refusal = duplicate_refusal(handled["envelope"], envelope)
            if refusal is not None:
                raise MessageIdReused(refusal, handled["envelope"])
            return False
        await effect(session)
        await db.inbox.insert_one(
            {
                "_id": envelope.message_id,
                "correlation_id": envelope.correlation_id,
                "message_type": envelope.message_type.value,
                "sender": envelope.sender,
                "received_at": received_at,
                "envelope": envelope.model_dump(mode="json"),
            },
            session=session,
        )
        return True

    return await in_transaction(client, work, committed)
