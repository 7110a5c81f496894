"""The registry's inbox: maps each message from the ITL to its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.registry.handlers import RegistryService
from shared.codes import ITL_CODE, MessageType
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
    """The consumer's handler: decode the payload and call the matching handler."""

    async def dispatch(envelope: Envelope) -> None:
        if envelope.sender != ITL_CODE:
            raise PermanentFailure(f"registries accept messages only from the ITL, "
                                   f"not from {envelope.sender}")
        payload = decode_payload(envelope)
        match envelope.message_type:
            case MessageType.TRANSACTION_STATUS_NOTIFIED:
                assert isinstance(payload, TransactionStatusNotified)
                await service.on_status_notified(envelope, payload)
            case MessageType.PROPOSAL_FORWARDED:
                assert isinstance(payload, ProposalForwarded)
                await service.on_proposal_forwarded(envelope, payload)
            case MessageType.MESSAGE_ACK:
                assert isinstance(payload, MessageAck)
                await service.on_message_ack(envelope, payload)
            case MessageType.TRANSACTION_STATUS_REPORTED:
                assert isinstance(payload, TransactionStatusReported)
                await service.on_status_reported(envelope, payload)
            case other if other in service.message_handlers:
                await service.message_handlers[other](envelope, payload)
            case _:
                raise PermanentFailure(
                    f"a registry does not handle {envelope.message_type.value}"
                )

    return dispatch
