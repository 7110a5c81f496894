"""The registry's inbox: maps each message from the ITL to its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.registry.handlers import RegistryService
from shared.contracts import (
    Envelope,
    MessageAck,
    ProposalForwarded,
    TransactionStatusNotified,
    TransactionStatusReported,
    decode_payload,
)
from shared.messaging import PermanentFailure


def make_dispatch(service: RegistryService) -> Callable[[Envelope], Awaitable[None]]:
    """The consumer's handler: decode the payload and call the matching handler.

    Version, recipient and sender (only the ITL) were checked before
    (``Runtime.screened``)."""

    async def dispatch(envelope: Envelope) -> None:
        payload = decode_payload(envelope)
        match payload:
            case TransactionStatusNotified():
                await service.on_status_notified(envelope, payload)
            case ProposalForwarded():
                await service.on_proposal_forwarded(envelope, payload)
            case MessageAck():
                await service.on_message_ack(envelope, payload)
            case TransactionStatusReported():
                await service.on_status_reported(envelope, payload)
            case _ if envelope.message_type in service.message_handlers:
                await service.message_handlers[envelope.message_type](envelope, payload)
            case _:
                raise PermanentFailure(
                    f"a registry does not handle {envelope.message_type.value}"
                )

    return dispatch
