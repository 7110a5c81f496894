"""The inbox: ids of messages already handled, so a redelivery has no second effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.contracts import Envelope
from shared.contracts.validity import MessageRefusal, duplicate_refusal
from shared.logs import holding_logs
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

    Returns False when this very message was handled before (and nothing of this
    handling is stored then). Raises ``MessageIdReused`` (1102) when the inbox holds
    another message under the same id, nothing stored either. The effect adds its
    outgoing messages to the outbox in the same transaction; ``committed`` gets them once
    it has committed (``in_transaction``).

    The inbox row is the transaction's first write, so the inbox costs no command of its
    own: with the writes sent together (``shared.store.batching``) it goes with the
    effect's writes, first, and a message handled before fails there on the row's
    duplicate key, which aborts the transaction with everything the effect did. Only
    then is the stored row read, to tell a redelivery (False) from an id reused with
    other content (1102). An effect that fails for a message handled before (its state
    has moved on since) is a redelivery too: the inbox is read whenever the
    transaction fails, and the failure stands only for a message not handled before.
    What the effect logs is held back (``shared.logs.holding_logs``) and logged once the
    message is known not to have been handled before.
    """
    row = {
        "_id": envelope.message_id,
        "correlation_id": envelope.correlation_id,
        "message_type": envelope.message_type.value,
        "sender": envelope.sender,
        "received_at": received_at,
        "envelope": envelope.model_dump(mode="json"),
    }

    async def work(session: Session) -> None:
        await db.inbox.insert_one(dict(row), session=session)
        await effect(session)

    with holding_logs() as held:
        try:
            await in_transaction(client, work, committed)
        except Exception:
            handled = await db.inbox.find_one({"_id": envelope.message_id})
            if handled is None:
                held.emit()
                raise
        else:
            held.emit()
            return True
    # handled before: nothing of this handling happened, nor is logged
    refusal = duplicate_refusal(handled["envelope"], envelope)
    if refusal is not None:
        raise MessageIdReused(refusal, handled["envelope"])
    return False
