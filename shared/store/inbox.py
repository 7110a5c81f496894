"""The inbox: ids of messages already handled, so a redelivery has no second effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.contracts import Envelope
from shared.store.client import Client, Database, Session, in_transaction

Effect = Callable[[Session], Awaitable[None]]


async def handle_once(
    client: Client, db: Database, envelope: Envelope, effect: Effect, received_at: datetime
) -> bool:
    """Apply ``effect`` and record the message id in one transaction.

    Returns False when the message was handled before (and does nothing then).
    The effect adds its outgoing messages to the outbox in the same transaction.
    """

    async def work(session: Session) -> bool:
        if await db.inbox.find_one({"_id": envelope.message_id}, session=session):
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

    return await in_transaction(client, work)
