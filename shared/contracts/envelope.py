"""The envelope every message travels in (protocol.md 7.3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import Count, SimulatedTime
from shared.codes import SCHEMA_VERSION, MessageType

REGISTRY_CODE_PATTERN = r"^([A-Z]{2}|CDM|ITL)$"


class Envelope(BaseModel):
    """Routing and identity of one message; the payload is typed by ``message_type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str = Field(min_length=1, max_length=64, description="unique per message")
    correlation_id: str = Field(
        min_length=1, max_length=64, description="business key: the transaction id"
    )
    causation_id: str | None = Field(
        default=None, description="message_id of the message that caused this one"
    )
    message_type: MessageType
    schema_version: str = Field(description="DES major/minor plus our payload revision")
    sender: str = Field(pattern=REGISTRY_CODE_PATTERN)
    recipient: str = Field(pattern=REGISTRY_CODE_PATTERN)
    sent_at: SimulatedTime = Field(description="simulation clock time of sending, UTC")
    seq: Count = Field(description="per-correlation sequence number set by the sender")
    payload: dict[str, Any]


def new_message_id() -> str:
    """A fresh, globally unique message id."""
    return uuid.uuid4().hex


def make_envelope(
    *,
    message_type: MessageType,
    sender: str,
    recipient: str,
    correlation_id: str,
    payload: BaseModel,
    sent_at: datetime,
    seq: int = 0,
    causation_id: str | None = None,
    message_id: str | None = None,
) -> Envelope:
    """Wrap a typed payload in an envelope with the current schema version."""
    return Envelope(
        message_id=message_id or new_message_id(),
        correlation_id=correlation_id,
        causation_id=causation_id,
        message_type=message_type,
        schema_version=SCHEMA_VERSION,
        sender=sender,
        recipient=recipient,
        sent_at=sent_at,
        seq=seq,
        payload=payload.model_dump(mode="json"),
    )
