"""The AsyncAPI document of the wire (shared/contracts/asyncapi.json, docs/adr/0037).

It is a valid AsyncAPI 3.0.0 document (the official JSON Schema, vendored in
tests/contract/asyncapi/), it carries every message type of the contracts on a channel
that some operation sends to and some operation receives from, its schemas are the
contracts' snapshots, and the checked-in file is what the generator writes now.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from shared.codes import ITL_CODE, MessageType, ResponseCode
from shared.contracts import PAYLOAD_MODELS
from shared.contracts.asyncapi import (
    ASYNCAPI_PATH,
    ITL_TO_ITSELF,
    ITL_TO_REGISTRY,
    REGISTRY_TO_ITL,
    contract_models,
    document,
    inline,
    render,
    response_code_fields,
    uncovered,
)
from shared.contracts.snapshot import SCHEMA_DIR
from shared.messaging.identities import addressees
from shared.messaging.topology import Topology

ASYNCAPI_SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json"
#: The keywords of JSON Schema draft-07, which the AsyncAPI Schema Object extends: the
#: contracts' schemas (pydantic writes 2020-12) must use no other.
DRAFT_07_KEYWORDS = frozenset({
    "$ref", "$id", "$schema", "$comment", "title", "description", "default", "examples",
    "readOnly", "writeOnly", "type", "enum", "const", "multipleOf", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "items", "additionalItems", "maxItems", "minItems", "uniqueItems", "contains",
    "maxProperties", "minProperties", "required", "properties", "patternProperties",
    "additionalProperties", "dependencies", "propertyNames", "if", "then", "else", "allOf",
    "anyOf", "oneOf", "not", "format", "definitions",
})


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


@pytest.fixture(scope="module")
def validator() -> Any:
    return jsonschema_rs.validator_for(json.loads(ASYNCAPI_SCHEMA.read_text()))


def test_the_checked_in_document_is_what_the_generator_writes(doc: dict[str, Any]) -> None:
    assert ASYNCAPI_PATH.exists(), "no AsyncAPI document: run 'make schemas'"
    assert ASYNCAPI_PATH.read_text() == render(doc), (
        "shared/contracts/asyncapi.json drifted from the contracts: run 'make schemas' if "
        "the change is deliberate")


def test_the_document_is_a_valid_asyncapi_3_document(doc: dict[str, Any],
                                                       validator: Any) -> None:
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e}"[:300]
              for e in validator.iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"


@pytest.mark.parametrize("breakage", [
    ("operations", "itlReceivesProposalSubmitted", "action", "publish"),
    ("channels", "itlInbox", "bindings", "amqp", "exchange", "type", "queue"),
    ("components", "messages", "MessageAck", "payload", "type", 5),
])
def test_the_validation_refuses_a_broken_document(doc: dict[str, Any], validator: Any,
                                                  breakage: tuple[Any, ...]) -> None:
    """The validation can fail: an operation that is neither send nor receive, an
    exchange of no AMQP type (the amqp 0.3.0 binding's own schema), a schema that is no
    schema."""
    broken = copy.deepcopy(doc)
    *path, key, value = breakage
    target = broken
    for step in path:
        target = target[step]
    target[key] = value
    assert not validator.is_valid(broken)


def test_every_message_type_of_the_contracts_travels_on_a_channel(doc: dict[str, Any]
                                                                  ) -> None:
    assert set(PAYLOAD_MODELS) == set(MessageType)
    assert uncovered(doc) == []
    assert set(doc["components"]["messages"]) >= {t.value for t in MessageType}


@pytest.mark.parametrize("removal", ["message", "channel", "operation", "schema",
                                     "payload"])
def test_a_message_type_without_its_channel_is_found_missing(doc: dict[str, Any],
                                                             removal: str) -> None:
    """The coverage check fails by construction: ``NoticeIssued`` taken out of the
    messages, out of its channels, out of the operations that send it, its payload
    schema taken out, or its message's payload no longer the contract's schema."""
    name = MessageType.NOTICE_ISSUED.value
    broken = copy.deepcopy(doc)
    if removal == "message":
        del broken["components"]["messages"][name]
    elif removal == "channel":
        for channel in broken["channels"].values():
            channel["messages"].pop(name, None)
    elif removal == "operation":
        broken["operations"] = {k: v for k, v in broken["operations"].items()
                                if not (v["action"] == "send" and k.endswith(name))}
    elif removal == "schema":
        del broken["components"]["schemas"][name]
    else:
        broken["components"]["messages"][name]["payload"]["properties"]["payload"] = {
            "type": "object"}
    assert uncovered(broken) == [name]


def test_every_sender_and_receiver_is_on_the_channels_the_broker_permits(
        doc: dict[str, Any]) -> None:
    """Registries send only to the ITL and the ITL to the registries and itself
    (``shared.messaging.identities.addressees``, the broker's topic permissions): the
    registry's operations use the ITL's inbox, the ITL's its own and the registries'."""
    assert addressees("KZ", ["KZ", ITL_CODE]) == [ITL_CODE]
    for key, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        if key.startswith("registrySends"):
            assert channel == "itlInbox", key
        elif key.startswith("itlSends"):
            assert channel in ("registryInbox", "itlInbox"), key
    assert set(ITL_TO_ITSELF).isdisjoint(REGISTRY_TO_ITL + ITL_TO_REGISTRY)
    assert set(REGISTRY_TO_ITL + ITL_TO_REGISTRY + ITL_TO_ITSELF) == set(MessageType)


def test_the_channels_name_the_exchanges_and_queues_of_the_topology(doc: dict[str, Any]
                                                                    ) -> None:
    topology = Topology("", (ITL_CODE, "KZ"), recording=True)
    exchanges = {e.name: e.type.value for e in topology.exchanges()}
    queues = {q.name: q.arguments for q in topology.queues()}
    seen_exchanges: set[str] = set()
    seen_queues: set[str] = set()
    for channel in doc["channels"].values():
        amqp = channel["bindings"]["amqp"]
        if amqp["is"] == "routingKey":
            assert exchanges[amqp["exchange"]["name"]] == amqp["exchange"]["type"]
            seen_exchanges.add(amqp["exchange"]["name"])
        else:
            for code in topology.codes:
                name, arguments = (json.loads(json.dumps(v).replace(
                    "{registryCode}", code).replace("{serviceCode}", code))
                    for v in (amqp["queue"]["name"], channel["x-queue-arguments"]))
                if name in queues:
                    assert arguments == queues[name], name
                    seen_queues.add(name)
    assert seen_exchanges == set(exchanges)
    assert seen_queues == set(queues)


@pytest.mark.parametrize("name", sorted(contract_models()))
def test_each_schema_is_its_contracts_snapshot(doc: dict[str, Any], name: str) -> None:
    """The document's schema of each contract, references resolved, is its JSON Schema
    snapshot (shared/contracts/schemas), references resolved: the same content."""
    schemas = doc["components"]["schemas"]
    ours = inline(schemas[name], schemas, "#/components/schemas/")
    path = SCHEMA_DIR / f"{name}.json"
    if not path.exists():  # the clock setting has no snapshot of its own
        assert name == "ClockSet"
        return
    snapshot = json.loads(path.read_text())
    assert ours == inline(snapshot, snapshot.get("$defs", {}), "#/$defs/")


def test_the_schemas_use_only_draft_07_keywords(doc: dict[str, Any]) -> None:
    """The AsyncAPI Schema Object is a superset of JSON Schema draft-07; pydantic writes
    2020-12. The contracts use nothing of 2020-12 that draft-07 lacks, and a ``$ref``
    has no sibling but annotations (draft-07 ignores its siblings)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                assert set(node) <= {"$ref", "description", "title", "default"}, node
            for key, value in node.items():
                found.add(key)
                if key in ("properties", "patternProperties"):
                    for sub in value.values():
                        walk(sub)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for schema in doc["components"]["schemas"].values():
        walk(schema)
    assert found <= DRAFT_07_KEYWORDS, found - DRAFT_07_KEYWORDS


def test_the_response_codes_are_documented_where_messages_carry_them(doc: dict[str, Any]
                                                                     ) -> None:
    messages = doc["components"]["messages"]
    ack = messages[MessageType.MESSAGE_ACK.value]
    assert ack["x-response-code-fields"] == ["payload.response_codes[]"]
    notified = messages[MessageType.TRANSACTION_STATUS_NOTIFIED.value]
    assert "payload.evaluation_results[].response_code" in notified["x-response-code-fields"]
    assert "x-response-code-fields" not in messages[MessageType.TOTALS_REQUESTED.value]
    schemas = doc["components"]["schemas"]
    for name, message in messages.items():
        if name in schemas:
            assert bool(response_code_fields(name, schemas)) == (
                "x-response-code-fields" in message), name
    table = doc["x-response-codes"]
    assert set(table) == {str(int(c)) for c in ResponseCode}
    assert table["1002"]["name"] == "SENDER_MISMATCH" and table["1002"]["text"]
    dead = messages["DeadLetter"]["headers"]["properties"]
    assert {"x-dead-reason", "x-dead-code"} <= set(dead)


def test_each_message_documents_its_amqp_properties(doc: dict[str, Any]) -> None:
    for message_type in MessageType:
        message = doc["components"]["messages"][message_type.value]
        properties = message["x-amqp-properties"]
        assert set(properties) >= {"message_id", "correlation_id", "type", "app_id",
                                   "user_id", "content_type", "timestamp"}
        assert properties["type"] == message_type.value
        assert message["bindings"]["amqp"]["messageType"] == message_type.value
        assert message["payload"]["properties"]["message_type"] == {
            "const": message_type.value}


def test_a_registry_reads_from_its_own_operations_what_it_must_answer(
        doc: dict[str, Any]) -> None:
    """A registry built from the document alone finds the answers it owes on its own
    (``registry``) operations: the acquiring registry's status on a forwarded proposal,
    the proposer's completion on the ITL's status 2, each reconciliation phase's report;
    the same messages as the ITL's operation that sends the request expects."""
    operations = doc["operations"]

    def answers(key: str) -> list[str]:
        reply = operations[key].get("reply") or {"messages": []}
        return [ref["$ref"].rsplit("/", 1)[-1] for ref in reply["messages"]]

    assert answers("registryReceivesProposalForwarded") == ["TransactionStatusNotified"]
    assert answers("registryReceivesTransactionStatusNotified") == [
        "TransactionStatusNotified"]
    assert answers("registryReceivesTotalsRequested") == ["TotalsReported", "MessageAck"]
    assert answers("registryReceivesNoticeIssued") == []
    for t in ITL_TO_REGISTRY:
        assert answers(f"registryReceives{t.value}") == answers(f"itlSends{t.value}"), t
        if answers(f"itlSends{t.value}"):
            assert operations[f"registryReceives{t.value}"]["reply"]["channel"] == {
                "$ref": "#/channels/itlInbox"}
    for t in REGISTRY_TO_ITL:
        assert answers(f"itlReceives{t.value}") == answers(f"registrySends{t.value}"), t
