"""The faults the fuzzing found (docs/adr/0020), each at its boundary: a boolean is no
number and no code; a number is no date; a message is decoded as strictly as its
contract; a check made in a
handler answers 422 naming its field; every description says how errors are answered;
and the message strategies draw what the contracts allow and malformed variants they
refuse."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Annotated, Any

import hypothesis
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from shared.api_errors import document_errors, invalid_input
from shared.bounds import (
    ISO_TEXT,
    MAX_QUANTITY,
    NOT_BOOLEAN,
    ClockStepSeconds,
    Identifier,
    Quantity,
    SimulatedDay,
    SimulatedTime,
    Units,
)
from shared.codes import SCHEMA_VERSION, MessageType, TransactionStatus, UnitType
from shared.contracts import (
    UndecodableMessage,
    UnitBlockWire,
    decode_envelope,
    decode_payload,
)
from shared.http_types import UnitTypeField
from shared.testing.message_fuzz import Contract, from_schema, junk_variant, valid_document


class Numbers(BaseModel):
    quantity: Quantity
    units: Units
    account: Identifier
    step: ClockStepSeconds
    period: Annotated[int, Field(ge=1, le=2), NOT_BOOLEAN] = 2


class Codes(BaseModel):
    unit_type: UnitType
    by_name: UnitTypeField | None = None
    statuses: list[TransactionStatus] = []


GOOD = {"quantity": 1, "units": 0, "account": 1, "step": 0.0}


@pytest.mark.parametrize("field", ["quantity", "units", "account", "step", "period"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_no_number(field: str, value: bool) -> None:
    with pytest.raises(ValidationError) as refused:
        Numbers.model_validate({**GOOD, field: value})
    (error,) = refused.value.errors()
    assert error["loc"] == (field,)
    assert "not the boolean" in error["msg"]


def test_the_numbers_next_to_the_booleans_still_pass() -> None:
    taken = Numbers.model_validate({"quantity": MAX_QUANTITY, "units": 1, "account": 1,
                                    "step": 1, "period": 1})
    assert (taken.quantity, taken.units, taken.step, taken.period) == (MAX_QUANTITY, 1,
                                                                       1.0, 1)
    with pytest.raises(ValidationError):
        Numbers.model_validate({**GOOD, "quantity": MAX_QUANTITY + 1})
    assert Numbers.model_json_schema()["properties"]["period"]["maximum"] == 2


@pytest.mark.parametrize("document", [{"unit_type": True}, {"unit_type": False},
                                      {"unit_type": 1.0}, {"unit_type": 1, "by_name": 1.5},
                                      {"unit_type": 1, "by_name": True},
                                      {"unit_type": 1, "statuses": [4, True]}])
def test_a_boolean_or_a_fraction_is_no_code(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Codes.model_validate(document)
    with pytest.raises(ValidationError):
        Codes.model_validate_json(json.dumps(document))


def test_codes_still_come_by_number_and_by_name() -> None:
    taken = Codes.model_validate({"unit_type": 1, "by_name": "cer", "statuses": [4]})
    assert (taken.unit_type, taken.by_name, taken.statuses) == (
        UnitType.AAU, UnitType.CER, [TransactionStatus.COMPLETED])
    assert Codes.model_json_schema()["$defs"]["UnitType"]["enum"] == list(range(1, 8))


def envelope(**changes: Any) -> dict[str, Any]:
    document = {"message_id": "m-1", "correlation_id": "KZ1",
                "message_type": "TransactionStatusNotified", "schema_version": SCHEMA_VERSION,
                "sender": "ITL", "recipient": "KZ", "sent_at": "2013-01-01T00:00:00Z",
                "seq": 0, "payload": {"transaction_id": "KZ1", "status": 4}}
    document.update(changes)
    return document


@pytest.mark.parametrize(("changes", "field"), [
    ({"seq": "1"}, "seq"), ({"seq": 1.0}, "seq"), ({"seq": True}, "seq"),
    ({"message_id": 7}, "message_id"), ({"sent_at": 1356998400}, "sent_at"),
])
def test_an_envelope_is_decoded_as_strictly_as_its_contract(changes: dict[str, Any],
                                                             field: str) -> None:
    with pytest.raises(UndecodableMessage) as refused:
        decode_envelope(json.dumps(envelope(**changes)).encode())
    assert str(refused.value).startswith(f"invalid envelope: {field}: ")


@pytest.mark.parametrize("status", ["4", 4.0, True])
def test_a_payload_is_decoded_as_strictly_as_its_contract(status: Any) -> None:
    decoded = decode_envelope(json.dumps(envelope(
        payload={"transaction_id": "KZ1", "status": status})).encode())
    with pytest.raises(UndecodableMessage) as refused:
        decode_payload(decoded)
    assert "status" in str(refused.value)


def test_a_valid_message_still_decodes_with_its_dates_and_codes() -> None:
    decoded = decode_envelope(json.dumps(envelope(payload={
        "transaction_id": "KZ1", "status": 4, "deadline": "2013-01-02T00:00:00Z"})).encode())
    payload = decode_payload(decoded)
    assert payload.model_dump()["status"] == TransactionStatus.COMPLETED
    assert decoded.seq == 0


class Body(BaseModel):
    a: int


def test_a_check_in_a_handler_answers_422_naming_its_field_as_fastapi_does() -> None:
    app = FastAPI()
    document_errors(app)

    @app.post("/things/{thing_id}")
    async def change(thing_id: int, body: Body) -> dict[str, int]:
        if body.a > thing_id:
            raise invalid_input(("body", "a"), "must not exceed thing_id", body.a)
        return {"a": body.a}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    client = TestClient(app)
    answer = client.post("/things/1", json={"a": 2})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "a"]
    assert answer.json()["detail"][0]["msg"] == "must not exceed thing_id"
    described = app.openapi()["paths"]
    responses = described["/things/{thing_id}"]["post"]["responses"]
    assert {"200", "400", "404", "422"} <= set(responses)
    either = responses["422"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/HTTPValidationError"} in either
    assert {"$ref": "#/components/schemas/Refusal"} in either
    assert set(described["/plain"]["get"]["responses"]) == {"200"}
    assert client.post("/things/1", content=b'{"a": "\xff"}',
                       headers={"content-type": "application/json"}).status_code in (400, 422)
    with pytest.raises(RequestValidationError):
        raise invalid_input(("query", "x"), "no")


CONTRACT = Contract.load()


@pytest.mark.parametrize("message_type", list(MessageType))
def test_the_strategies_draw_what_each_contract_allows(message_type: MessageType) -> None:
    @hypothesis.settings(max_examples=15, database=None, deadline=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(valid_document(CONTRACT, message_type, "ITL", "KZ"),
                      st.randoms(use_true_random=True))
    def check(document: dict[str, Any], rnd: random.Random) -> None:
        assert not CONTRACT.violated(document)
        assert from_schema(CONTRACT.payloads[message_type]) is not None
        variant = junk_variant(rnd, CONTRACT, document)
        if variant is not None:
            label, body = variant
            try:
                changed = json.loads(body.decode("utf-8"))
            except (ValueError, RecursionError):
                return  # not UTF-8, not JSON or too deep: malformed by construction
            assert not isinstance(changed, dict) or CONTRACT.violated(changed), label

    check()


class Days(BaseModel):
    day: SimulatedDay
    now: Annotated[SimulatedTime, ISO_TEXT] | None = None


@pytest.mark.parametrize("document", [{"day": 0}, {"day": 86400}, {"day": 1.5},
                                      {"day": True}, {"day": "2013-01-01", "now": 0},
                                      {"day": "2013-01-01", "now": 1e9},
                                      {"day": "1989-12-31"}, {"day": "2100-01-01"}])
def test_a_date_or_moment_is_iso_text_within_the_clocks_range(
        document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):  # an API body, as FastAPI validates it
        Days.model_validate(document)
    with pytest.raises(ValidationError):  # a message, as the consumers decode it
        Days.model_validate_json(json.dumps(document), strict=True)


def test_the_dates_at_the_ends_of_the_clocks_range_are_taken() -> None:
    both = {"day": "1990-01-01", "now": "1990-01-01T00:00:00Z"}
    for first in (Days.model_validate(both),
                  Days.model_validate_json(json.dumps(both), strict=True)):
        assert (first.day.year, first.now and first.now.year) == (1990, 1990)
    assert Days.model_validate({"day": "2099-12-31"}).day.year == 2099
    assert Days.model_json_schema()["properties"]["day"] == {
        "format": "date", "title": "Day", "type": "string"}


def test_a_moment_without_a_time_zone_is_read_as_utc() -> None:
    """``2013-01-01T00:00:00`` is UTC and comes out aware, comparable with the clock's
    times (a naive one failed the clock's own checks with 500); an offset is kept."""
    naive = Days.model_validate({"day": "2013-01-01", "now": "2013-01-01T00:00:00"}).now
    assert naive == datetime(2013, 1, 1, tzinfo=UTC)
    assert naive is not None and naive.tzinfo is not None
    offset = Days.model_validate({"day": "2013-01-01", "now": "2013-01-01T05:00:00+05:00"})
    assert offset.now == naive and offset.now is not None and offset.now.hour == 5


def test_a_block_of_a_notice_takes_no_number_for_its_expiry_date() -> None:
    block = {"serial_start": 1, "serial_end": 2, "originating_registry": "KZ",
             "unit_type": 1, "original_commitment_period": 1,
             "applicable_commitment_period": 1}
    assert UnitBlockWire.model_validate({**block, "expiry_date": "2016-06-30"}).expiry_date
    with pytest.raises(ValidationError):
        UnitBlockWire.model_validate({**block, "expiry_date": 0})
