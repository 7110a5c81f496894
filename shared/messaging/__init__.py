"""Messaging plumbing over aio-pika (topology, broker identities, confirmed publishing,
safe consuming)."""

from shared.messaging.broker import (
    Broker,
    BrokerNotProvisioned,
    EnvelopeHandler,
    PermanentFailure,
    RecipientNotPermitted,
    TlsSettings,
    with_heartbeat,
)
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    MAIN_EXCHANGE,
    Topology,
    dead_letter_queue_name,
    inbox_queue_name,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "MAIN_EXCHANGE",
    "Broker",
    "BrokerNotProvisioned",
    "EnvelopeHandler",
    "PermanentFailure",
    "RecipientNotPermitted",
    "TlsSettings",
    "Topology",
    "dead_letter_queue_name",
    "inbox_queue_name",
    "with_heartbeat",
]
