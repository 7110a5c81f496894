"""Messaging plumbing over aio-pika (topology, confirmed publishing, safe consuming)."""

from shared.messaging.broker import Broker, EnvelopeHandler, PermanentFailure
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    MAIN_EXCHANGE,
    dead_letter_queue_name,
    inbox_queue_name,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "MAIN_EXCHANGE",
    "Broker",
    "EnvelopeHandler",
    "PermanentFailure",
    "dead_letter_queue_name",
    "inbox_queue_name",
]
