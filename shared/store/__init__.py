"""Store helpers: client from MONGO_URL, transactions, inbox and outbox."""

from shared.store.batching import find_known, know
from shared.store.client import (
    Client,
    Database,
    Document,
    Session,
    after_commit,
    database_name,
    in_transaction,
    insert_apart,
    make_client,
    next_sequence,
    urgent,
)
from shared.store.inbox import MessageIdReused, handle_once
from shared.store.outbox import OutboxRelay, enqueue, ensure_outbox_indexes

__all__ = [
    "Client",
    "Database",
    "Document",
    "MessageIdReused",
    "OutboxRelay",
    "Session",
    "after_commit",
    "database_name",
    "enqueue",
    "ensure_outbox_indexes",
    "find_known",
    "handle_once",
    "in_transaction",
    "insert_apart",
    "know",
    "make_client",
    "next_sequence",
    "urgent",
]
