"""Messages as a service would send them, for the tests."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.codes import ITL_CODE, MessageType, TransactionStatus
from shared.contracts import Envelope, TransactionStatusNotified, make_envelope


def status_from_itl(transaction_id: str, recipient: str = "KZ",
                    status: TransactionStatus = TransactionStatus.COMPLETED,
                    sent_at: datetime | None = None) -> Envelope:
    """The ITL's ``TransactionStatusNotified`` of ``transaction_id`` to ``recipient``,
    sent at ``sent_at`` (simulated time; now by default)."""
    return make_envelope(
        message_type=MessageType.TRANSACTION_STATUS_NOTIFIED, sender=ITL_CODE,
        recipient=recipient, correlation_id=transaction_id,
        payload=TransactionStatusNotified(transaction_id=transaction_id, status=status),
        sent_at=sent_at or datetime.now(UTC))
