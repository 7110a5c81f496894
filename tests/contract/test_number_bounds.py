"""Every number on the wire is bounded (shared.bounds): the JSON Schema of every contract
gives each integer and number a minimum and a maximum within the signed 64-bit range
(or a table of codes), and a message that carries a number beyond them is undecodable,
with a reason that names the field, before anything is stored."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.bounds import CLOCK_MAX, INT64_MAX, INT64_MIN, MAX_SERIAL
from shared.codes import SCHEMA_VERSION, MessageType
from shared.contracts import (
    PAYLOAD_MODELS,
    Envelope,
    UndecodableMessage,
    decode_envelope,
    decode_payload,
)
from shared.contracts.snapshot import current_schemas
from shared.testing.schemas import bounds, number_leaves, number_nodes

BLOCK = {"serial_start": 1, "serial_end": 10, "originating_registry": "KZ", "unit_type": 1,
         "original_commitment_period": 2, "applicable_commitment_period": 2,
         "lulucf_activity": 1, "track": 1}
PROPOSAL = {"transaction_id": "KZ1", "transaction_type": 10,
            "transferring": {"registry": "KZ", "account_type": 100, "account_id": 1},
            "acquiring": {"registry": "KZ", "account_type": 121, "account_id": 1001},
            "notification_id": 1, "blocks": [BLOCK], "track": 1, "replaced_blocks": [BLOCK]}
DEADLINE = "2014-01-01T00:00:00Z"
RESULT = {"response_code": 1104, "serial_start": 1}
TRANSFER = {"transfer_id": "DEESD1", "year": 2015, "quantity": 10,
            "transferring_state": "DE", "acquiring_state": "FR"}
OUTCOME = {"transfer_id": "DEESD1", "accepted": False, "response_code": 4113}
KEY = {"account_type": 121, "account_id": 1001, "unit_type": 1, "supp_unit_type": 0,
       "applicable_commitment_period": 2}
TOTAL = {**KEY, "units": 10, "blocks": 1}
HELD = {**BLOCK, "account_type": 121, "account_id": 1001}
#: A valid payload of each message type, with every integer field it can carry.
EXAMPLES: dict[MessageType, dict[str, Any]] = {
    MessageType.PROPOSAL_SUBMITTED: PROPOSAL,
    MessageType.PROPOSAL_FORWARDED: {**PROPOSAL, "deadline": DEADLINE},
    MessageType.MESSAGE_ACK: {"acked_message_id": "m0", "accepted": False,
                              "response_codes": [1104]},
    MessageType.TRANSACTION_STATUS_NOTIFIED: {"transaction_id": "KZ1", "status": 2,
                                              "evaluation_results": [RESULT],
                                              "deadline": DEADLINE},
    MessageType.TRANSACTION_STATUS_QUERIED: {"transaction_id": "KZ1"},
    MessageType.TRANSACTION_STATUS_REPORTED: {"transaction_id": "KZ1", "status": 2,
                                              "status_at": DEADLINE,
                                              "evaluation_results": [RESULT],
                                              "deadline": DEADLINE},
    MessageType.ALLOWANCE_TRANSFER_SUBMITTED: TRANSFER,
    MessageType.ALLOWANCE_TRANSFER_FORWARDED: {**TRANSFER, "deadline": DEADLINE},
    MessageType.ALLOWANCE_TRANSFER_ANSWERED: OUTCOME,
    MessageType.ALLOWANCE_TRANSFER_NOTIFIED: OUTCOME,
    MessageType.NOTICE_ISSUED: {"notice_id": 1, "notice_type": 1, "status": 1, "unit_type": 1,
                                "target_value": 5, "commitment_period": 2,
                                "lulucf_activity": 1, "blocks": [BLOCK],
                                "fulfilled_quantity": 0},
    MessageType.TIME_OUT_DUE: {"transaction_id": "KZ1", "deadline": DEADLINE},
    MessageType.RECONCILIATION_INITIATED: {"reconciliation_id": "REC1",
                                           "snapshot_at": DEADLINE,
                                           "open_transactions": ["KZ1"]},
    MessageType.TOTALS_REQUESTED: {"reconciliation_id": "REC1"},
    MessageType.TOTALS_REPORTED: {"reconciliation_id": "REC1", "totals": [TOTAL]},
    MessageType.UNIT_BLOCKS_REQUESTED: {"reconciliation_id": "REC1", "keys": [KEY]},
    MessageType.UNIT_BLOCKS_REPORTED: {"reconciliation_id": "REC1", "blocks": [HELD]},
    MessageType.AUDIT_TRAIL_REQUESTED: {"reconciliation_id": "REC1", "blocks": [HELD],
                                        "begin_at": DEADLINE, "end_at": DEADLINE},
    MessageType.AUDIT_TRAIL_REPORTED: {"reconciliation_id": "REC1", "transactions": [{
        "transaction_id": "KZ1", "transaction_type": 10, "status": 4, "status_at": DEADLINE,
        "transferring": PROPOSAL["transferring"], "acquiring": PROPOSAL["acquiring"],
        "blocks": [BLOCK]}]},
    MessageType.RECONCILIATION_RESULT_NOTIFIED: {"reconciliation_id": "REC1", "status": 4,
                                                 "phase": 3, "response_codes": [7001],
                                                 "blocks": [HELD]},
}
OUT_OF_RANGE = [2**63, -(2**63) - 1, 10**30]


def replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def envelope(message_type: MessageType, payload: dict[str, Any]) -> Envelope:
    return Envelope(message_id="m1", correlation_id="KZ1", message_type=message_type,
                    schema_version=SCHEMA_VERSION, sender="ITL", recipient="KZ",
                    sent_at=datetime(2014, 1, 1, tzinfo=UTC), seq=0, payload=payload)


@pytest.mark.parametrize("name", sorted(current_schemas()))
def test_every_number_of_every_contract_is_bounded_within_64_bits(name: str) -> None:
    schema = current_schemas()[name]
    found = list(number_nodes(schema, lambda ref: schema["$defs"][ref.rsplit("/", 1)[-1]]))
    # only these carry no number at all: anywhere else an empty walk is a broken walk
    assert found or name in ("TimeOutDue.json", "TransactionStatusQueried.json",
                             "ReconciliationInitiated.json", "TotalsRequested.json"), name
    for where, node in found:
        if "enum" in node:
            assert all(INT64_MIN <= v <= INT64_MAX for v in node["enum"]), where
            continue
        low, high = bounds(node)
        assert low is not None and high is not None, f"{name}: {where} is unbounded: {node}"
        assert INT64_MIN <= low <= high <= INT64_MAX, f"{name}: {where}: {low}..{high}"


def test_every_message_type_has_an_example_here() -> None:
    assert set(EXAMPLES) == set(PAYLOAD_MODELS)
    for message_type, example in EXAMPLES.items():
        PAYLOAD_MODELS[message_type].model_validate(example)


@pytest.mark.parametrize("message_type", sorted(EXAMPLES))
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_number_beyond_its_bound_is_undecodable_naming_the_field(
    message_type: MessageType, value: int,
) -> None:
    example = EXAMPLES[message_type]
    paths = list(number_leaves(example))
    assert paths or message_type in (MessageType.TRANSACTION_STATUS_QUERIED,
                                     MessageType.TIME_OUT_DUE,
                                     MessageType.RECONCILIATION_INITIATED,
                                     MessageType.TOTALS_REQUESTED)
    for path in paths:
        where = ".".join(map(str, path))
        with pytest.raises(UndecodableMessage) as refused:
            decode_payload(envelope(message_type, replaced(example, path, value)))
        assert f"{where}:" in str(refused.value), (where, str(refused.value))


def test_serials_stop_at_the_last_serial_number() -> None:
    model = PAYLOAD_MODELS[MessageType.PROPOSAL_SUBMITTED]
    block = {**BLOCK, "serial_start": MAX_SERIAL, "serial_end": MAX_SERIAL}
    model.model_validate({**PROPOSAL, "blocks": [block]})
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**PROPOSAL, "blocks": [{**block, "serial_end": MAX_SERIAL + 1}]})
    assert "blocks.0.serial_end" in str(refused.value)


@pytest.mark.parametrize("field", ["seq"])
@pytest.mark.parametrize("value", [*OUT_OF_RANGE, -1])
def test_an_envelope_number_beyond_its_bound_is_undecodable(field: str, value: int) -> None:
    document = envelope(MessageType.TRANSACTION_STATUS_QUERIED, {"transaction_id": "KZ1"}
                        ).model_dump(mode="json")
    with pytest.raises(UndecodableMessage) as refused:
        decode_envelope(json.dumps({**document, field: value}).encode())
    assert f"{field}:" in str(refused.value)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z",
                                    "1989-12-31T23:59:59Z"])
def test_a_date_time_outside_the_clocks_range_is_undecodable(moment: str) -> None:
    for message_type in (MessageType.TRANSACTION_STATUS_NOTIFIED,
                         MessageType.TIME_OUT_DUE):
        payload = {**EXAMPLES[message_type], "deadline": moment}
        with pytest.raises(UndecodableMessage) as refused:
            decode_payload(envelope(message_type, payload))
        assert "deadline:" in str(refused.value)
    document = envelope(MessageType.TRANSACTION_STATUS_QUERIED, {"transaction_id": "KZ1"}
                        ).model_dump(mode="json")
    with pytest.raises(UndecodableMessage) as refused:
        decode_envelope(json.dumps({**document, "sent_at": moment}).encode())
    assert "sent_at:" in str(refused.value)
    assert CLOCK_MAX.year == 2099
