"""The wire contracts match their checked-in JSON Schema snapshots.

A failure here means a message model changed: if the change is deliberate, bump
``SCHEMA_VERSION`` where the wire meaning changed and run ``make schemas``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.codes import MessageType, TransactionType, UnitType
from shared.contracts import (
    PAYLOAD_MODELS,
    AccountRef,
    ProposalSubmitted,
    UndecodableMessage,
    UnitBlockWire,
    decode_envelope,
    decode_payload,
    make_envelope,
)
from shared.contracts.snapshot import SCHEMA_DIR, current_schemas, render


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_contract_matches_its_snapshot(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.exists(), f"no snapshot for {name}: run 'make schemas'"
    assert path.read_text() == render(current_schemas()[name]), (
        f"{name} drifted from its snapshot: run 'make schemas' if the change is deliberate"
    )


def test_every_snapshot_belongs_to_a_contract() -> None:
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(current_schemas())


def test_every_message_type_has_a_payload_model() -> None:
    assert set(PAYLOAD_MODELS) == set(MessageType)


def _proposal(**overrides: object) -> dict[str, object]:
    block = UnitBlockWire(serial_start=1, serial_end=10, originating_registry="KZ",
                          unit_type=UnitType.AAU, original_commitment_period=2,
                          applicable_commitment_period=2)
    proposal = ProposalSubmitted(
        transaction_id="KZ1", transaction_type=TransactionType.ISSUANCE,
        acquiring=AccountRef(registry="KZ", account_type=100, account_id=1),
        blocks=[block],
    ).model_dump(mode="json")
    proposal.update(overrides)
    return proposal


def test_an_envelope_round_trips_through_bytes() -> None:
    envelope = make_envelope(
        message_type=MessageType.PROPOSAL_SUBMITTED, sender="KZ", recipient="ITL",
        correlation_id="KZ1", payload=ProposalSubmitted.model_validate(_proposal()),
        sent_at=datetime(2013, 1, 1, tzinfo=UTC),
    )
    decoded = decode_envelope(envelope.model_dump_json().encode())
    assert decoded == envelope
    payload = decode_payload(decoded)
    assert isinstance(payload, ProposalSubmitted)
    assert payload.blocks[0].quantity == 10


def test_a_block_whose_start_is_after_its_end_is_refused() -> None:
    with pytest.raises(ValidationError, match="serial_start must not be greater"):
        UnitBlockWire(serial_start=10, serial_end=1, originating_registry="KZ",
                      unit_type=UnitType.AAU, original_commitment_period=2,
                      applicable_commitment_period=2)


def test_an_unknown_status_code_is_undecodable_with_the_field_named() -> None:
    envelope = make_envelope(
        message_type=MessageType.PROPOSAL_SUBMITTED, sender="KZ", recipient="ITL",
        correlation_id="KZ1", payload=ProposalSubmitted.model_validate(_proposal()),
        sent_at=datetime(2013, 1, 1, tzinfo=UTC),
    )
    raw = json.loads(envelope.model_dump_json())
    raw["message_type"] = MessageType.TRANSACTION_STATUS_NOTIFIED.value
    raw["payload"] = {"transaction_id": "KZ1", "status": 42}
    with pytest.raises(UndecodableMessage, match="status"):
        decode_payload(decode_envelope(json.dumps(raw).encode()))


def test_more_than_3000_blocks_are_refused_by_the_contract() -> None:
    block = _proposal()["blocks"][0]  # type: ignore[index]
    with pytest.raises(ValidationError, match="3000"):
        ProposalSubmitted.model_validate(_proposal(blocks=[block] * 3001))


def test_the_recording_line_schema_matches_its_snapshot() -> None:
    """The JSON Schema of a recording's lines (docs/recording.md) is checked in like the
    wire's: a change to the file format shows here (and bumps FORMAT_VERSION when a
    reader of the old version could not read it)."""
    from shared.recording.format import SCHEMA_PATH, line_schema

    assert SCHEMA_PATH.exists(), "no recording schema snapshot: run 'make schemas'"
    assert SCHEMA_PATH.read_text() == render(line_schema()), (
        "recording.schema.json drifted from shared/recording/format.py: run 'make schemas' "
        "if the change is deliberate")
