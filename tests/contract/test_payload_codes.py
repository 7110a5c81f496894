"""The response code a payload that breaks its contract is answered with
(``shared.contracts.payload_code``; protocol.md 3.3, docs/adr/0010): the protocol's own
code where it has one, at both sides of each boundary."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.codes import MAX_BLOCKS_PER_TRANSACTION, SCHEMA_VERSION, MessageType, ResponseCode
from shared.contracts import Envelope, UndecodableMessage, decode_payload
from tests.contract.test_number_bounds import BLOCK, PROPOSAL


def proposal(blocks: list[dict[str, Any]], **changes: Any) -> Envelope:
    payload = {**copy.deepcopy(PROPOSAL), "blocks": blocks, "replaced_blocks": [], **changes}
    return Envelope(message_id="m1", correlation_id="KZ1",
                    message_type=MessageType.PROPOSAL_SUBMITTED,
                    schema_version=SCHEMA_VERSION, sender="KZ", recipient="ITL",
                    sent_at=datetime(2014, 1, 1, tzinfo=UTC), seq=0, payload=payload)


def blocks(count: int) -> list[dict[str, Any]]:
    return [{**BLOCK, "serial_start": 10 * i + 1, "serial_end": 10 * i + 10}
            for i in range(count)]


def refusal_code(envelope: Envelope) -> ResponseCode:
    with pytest.raises(UndecodableMessage) as refused:
        decode_payload(envelope)
    return refused.value.code


def test_the_protocols_limit_of_blocks_is_taken_and_one_more_is_2005() -> None:
    decode_payload(proposal(blocks(MAX_BLOCKS_PER_TRANSACTION)))
    assert refusal_code(proposal(blocks(MAX_BLOCKS_PER_TRANSACTION + 1))) == (
        ResponseCode.TOO_MANY_BLOCKS)


def test_a_block_of_one_unit_is_taken_and_a_reversed_block_is_2002() -> None:
    one = {**BLOCK, "serial_start": 7, "serial_end": 7}
    decode_payload(proposal([one]))
    reversed_block = {**BLOCK, "serial_start": 8, "serial_end": 7}
    assert refusal_code(proposal([one, reversed_block])) == (
        ResponseCode.SERIAL_START_AFTER_END)


@pytest.mark.parametrize("changes", [
    {"blocks": []},                                  # too short: no code of its own
    {"transaction_type": "10"},                      # a text where a number belongs
    {"transferring": {"registry": "KZ"}},            # a missing field
    {"acquiring": None},
], ids=["no-blocks", "text-type", "missing-field", "null-account"])
def test_any_other_breach_is_1101(changes: dict[str, Any]) -> None:
    envelope = proposal(blocks(1))
    envelope = envelope.model_copy(update={"payload": {**envelope.payload, **changes}})
    assert refusal_code(envelope) == ResponseCode.MALFORMED_PAYLOAD


def test_too_many_blocks_wins_over_a_reversed_one_among_them() -> None:
    """The contract reports a list that is too long as the one error of the list."""
    too_many = blocks(MAX_BLOCKS_PER_TRANSACTION + 1)
    too_many[0] = {**BLOCK, "serial_start": 9, "serial_end": 1}
    assert refusal_code(proposal(too_many)) == ResponseCode.TOO_MANY_BLOCKS
