"""The wire as an AsyncAPI 3.0.0 document, generated from the contracts (docs/adr/0037).

``document()`` describes every channel of the broker topology (``shared.messaging.topology``:
exchange, routing key, queue), every message type with the JSON Schema of its envelope
and payload (the same pydantic models as the snapshots of ``shared/contracts/schemas``),
the AMQP properties each message carries, who sends and who receives it (the ITL's
operations and a registry's), and the response codes of the messages that carry them.
``python -m shared.contracts.snapshot`` (``make schemas``) writes it to ``ASYNCAPI_PATH``
(checked in; ``tests/contract/test_asyncapi.py`` fails when it drifts, when it is no valid
AsyncAPI 3.0.0 document, or when a message type has no channel in it); the ITL serves it
at ``GET /asyncapi.json`` and as an HTML page at ``GET /asyncapi``.

The document is JSON, written like the snapshots (sorted keys, two-space indent): no
YAML library at run time, the ITL serves what ``json`` writes, and AsyncAPI tools read
JSON as they read YAML.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import codes
from shared.codes import ITL_CODE, RESPONSE_TEXT, SCHEMA_VERSION, MessageType, ResponseCode
from shared.contracts import PAYLOAD_MODELS, Envelope
from shared.messaging.clock import CLOCK_EXCHANGE, LAST_CLOCK_QUEUE, ClockSet
from shared.messaging.topology import (
    CAPTURE_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    JOURNAL_QUEUE,
    MAIN_EXCHANGE,
    Topology,
    dead_letter_queue_name,
    inbox_queue_name,
)
from shared.recording.capture import COMMAND, RUN_STARTED
from shared.recording.format import simulator_version

#: The checked-in document (``make schemas`` writes it).
ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"
ASYNCAPI_VERSION = "3.0.0"
#: The AMQP bindings' version (github.com/asyncapi/bindings, amqp 0.3.0).
AMQP_BINDING_VERSION = "0.3.0"
#: Where the ITL serves the document and its page (services/itl/asyncapi_api.py).
DOCUMENT_URL = "/asyncapi.json"
PAGE_URL = "/asyncapi"
SCHEMA_REF = "#/components/schemas/{model}"

#: Who sends what (protocol.md 1.3, 7.4; the ITL's dispatch in services/itl/messaging.py
#: and the registries' in services/registry): a registry (the CDM registry included)
#: sends only to the ITL ...
REGISTRY_TO_ITL: tuple[MessageType, ...] = (
    MessageType.PROPOSAL_SUBMITTED,
    MessageType.TRANSACTION_STATUS_NOTIFIED,
    MessageType.TRANSACTION_STATUS_QUERIED,
    MessageType.ALLOWANCE_TRANSFER_SUBMITTED,
    MessageType.ALLOWANCE_TRANSFER_ANSWERED,
    MessageType.TOTALS_REPORTED,
    MessageType.UNIT_BLOCKS_REPORTED,
    MessageType.AUDIT_TRAIL_REPORTED,
    MessageType.MESSAGE_ACK,
)
#: ... the ITL sends to the registries ...
ITL_TO_REGISTRY: tuple[MessageType, ...] = (
    MessageType.PROPOSAL_FORWARDED,
    MessageType.TRANSACTION_STATUS_NOTIFIED,
    MessageType.TRANSACTION_STATUS_REPORTED,
    MessageType.MESSAGE_ACK,
    MessageType.NOTICE_ISSUED,
    MessageType.ALLOWANCE_TRANSFER_FORWARDED,
    MessageType.ALLOWANCE_TRANSFER_NOTIFIED,
    MessageType.RECONCILIATION_INITIATED,
    MessageType.TOTALS_REQUESTED,
    MessageType.UNIT_BLOCKS_REQUESTED,
    MessageType.AUDIT_TRAIL_REQUESTED,
    MessageType.RECONCILIATION_RESULT_NOTIFIED,
)
#: ... and to itself, through its own inbox (docs/adr/0017; from anyone else: 1002).
ITL_TO_ITSELF: tuple[MessageType, ...] = (MessageType.TIME_OUT_DUE,)

#: What answers a request (the ``reply`` of its sender's operation), on the sender's
#: inbox (docs/flows.md): a ``MessageAck(accepted=false)`` where the receiver refuses the
#: request as a whole and tells its sender (the ITL any known registry's message, a
#: registry a reconciliation request it cannot answer; docs/adr/0005, 0030).
REPLIES: dict[MessageType, tuple[MessageType, ...]] = {
    MessageType.PROPOSAL_SUBMITTED: (MessageType.TRANSACTION_STATUS_NOTIFIED,
                                     MessageType.MESSAGE_ACK),
    MessageType.PROPOSAL_FORWARDED: (MessageType.TRANSACTION_STATUS_NOTIFIED,),
    # the ITL's status 2 (8 for an external transfer) asks the proposing registry to end
    # the transaction by its deadline: completed (4) or terminated; the acquiring
    # registry's acceptance (8) or rejection (6) gets the ITL's final status
    MessageType.TRANSACTION_STATUS_NOTIFIED: (MessageType.TRANSACTION_STATUS_NOTIFIED,),
    MessageType.TRANSACTION_STATUS_QUERIED: (MessageType.TRANSACTION_STATUS_REPORTED,
                                             MessageType.MESSAGE_ACK),
    MessageType.ALLOWANCE_TRANSFER_SUBMITTED: (MessageType.ALLOWANCE_TRANSFER_NOTIFIED,
                                               MessageType.MESSAGE_ACK),
    MessageType.ALLOWANCE_TRANSFER_FORWARDED: (MessageType.ALLOWANCE_TRANSFER_ANSWERED,),
    MessageType.TOTALS_REQUESTED: (MessageType.TOTALS_REPORTED, MessageType.MESSAGE_ACK),
    MessageType.UNIT_BLOCKS_REQUESTED: (MessageType.UNIT_BLOCKS_REPORTED,
                                        MessageType.MESSAGE_ACK),
    MessageType.AUDIT_TRAIL_REQUESTED: (MessageType.AUDIT_TRAIL_REPORTED,
                                       MessageType.MESSAGE_ACK),
}

#: The name of the message of a dead letter, a clock setting and a capture.
DEAD_LETTER = "DeadLetter"
CLOCK_SET = "ClockSet"
CAPTURE = "Capture"

INFO_DESCRIPTION = """\
The messages of the Kyoto registry simulator's broker: the wire between the International
Transaction Log (ITL) and the registries (national registries by Party code, `KZ`, `CH`,
`JP`, ..., and the CDM registry, `CDM`). A registry built elsewhere speaks to the
simulated ITL with this document alone.

## Connecting

- **Broker**: RabbitMQ, AMQP 0-9-1, virtual host `/`. `amqps://` (TLS, port 5671 by
  convention) when the broker offers it; the services take a certificate authority and,
  for mutual TLS, a client certificate and key (`AMQP_CA_FILE`, `AMQP_CERT_FILE`,
  `AMQP_KEY_FILE`).
- **One broker user per service**: the user of the registry of Party `CODE` is
  `<namespace><CODE>` (`KZ`); the stack's provisioning creates it with its password and
  its permissions (docs/adr/0016). It may publish to `des.msg` only with the routing key
  `ITL`, to `des.dlx` and `rec.capture` only with its own code, and to `sim.clock`; it
  reads only its own inbox `des.in.<CODE>`, `sim.clock.last` and its own clock queue
  `sim.clock.<CODE>.<32 hex digits>` (which it may declare, exclusive). It declares
  nothing else: every exchange and queue exists already (open them passively).
- **The namespace prefix**: every exchange and queue name below is prefixed with the
  stack's `AMQP_NAMESPACE` (empty in the Compose stack and `make up`; `t1a2b3c4d5.` in a
  test stack), and so is every broker user; routing keys are not.
- **Publishing**: persistent (delivery mode 2), with publisher confirms and `mandatory`
  (an unroutable message comes back), JSON (`application/json`, UTF-8), with the AMQP
  properties of each message below. `user_id` must be the connection's user (RabbitMQ
  refuses any other) and the receiver refuses an envelope whose `sender` is not the
  service of that user (1002, dead-lettered, not answered).
- **Receiving**: consume your inbox with manual acknowledgement after your effect is
  stored. A message redelivered `DELIVERY_LIMIT` times is dead-lettered by the queue.

## Envelope and checks

Every message on `des.msg` is an `Envelope` (schema version `SCHEMA_VERSION`) whose
`payload` is the schema of its `message_type`. Before anything is recorded the receiver
checks the schema version (1001), recipient and sender (1002), the correlation id against
the payload's business key (1101), a message id seen before with other content (1102),
a transaction id reused for another proposal (1105) (docs/adr/0010). The ITL answers a
message it refuses from a known registry with `MessageAck(accepted=false,
response_codes=[code], reason)`; a message that cannot be decoded (no JSON, no envelope,
unknown type, invalid payload: 1101, 2002, 2005) is only dead-lettered to `des.dlx` with
the headers `x-dead-reason` and `x-dead-code`. The response codes are listed in
`x-response-codes` (number: name and text), the names of every other code table's values
in `x-code-tables` (`shared/codes.py`).
"""


def _ref(path: str) -> dict[str, str]:
    return {"$ref": path}


def contract_models() -> dict[str, type[BaseModel]]:
    """Every model whose JSON Schema is in ``components/schemas``, by name: the envelope,
    each payload model (the snapshots of ``shared/contracts/schemas``) and the clock
    setting."""
    models: dict[str, type[BaseModel]] = {"Envelope": Envelope, CLOCK_SET: ClockSet}
    for message_type, model in PAYLOAD_MODELS.items():
        models[message_type.value] = model
    return models


def component_schemas() -> dict[str, Any]:
    """The JSON Schemas of ``contract_models`` and of everything they use, as pydantic
    writes them, with references between them as ``#/components/schemas/<name>``."""
    models = contract_models()
    _, schemas = models_json_schema([(m, "validation") for m in models.values()],
                                    ref_template=SCHEMA_REF)
    found: dict[str, Any] = schemas["$defs"]
    for name, model in models.items():
        if name not in found:  # a payload model named unlike its message type
            raise ValueError(f"the schema of {model.__name__} is not named {name}")
    return found


def response_code_fields(name: str, schemas: Mapping[str, Any]) -> list[str]:
    """Where the schema ``name`` carries a ``ResponseCode``: paths such as
    ``evaluation_results[].response_code``, sorted."""
    target = SCHEMA_REF.format(model=ResponseCode.__name__)

    def walk(node: Any, path: str, seen: frozenset[str]) -> Iterator[str]:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref == target:
                yield path
                return
            if isinstance(ref, str) and ref not in seen:
                yield from walk(schemas[ref.rsplit("/", 1)[1]], path, seen | {ref})
            for key, value in node.items():
                if key == "properties":
                    for field, sub in value.items():
                        yield from walk(sub, f"{path}.{field}" if path else field, seen)
                elif key == "items":
                    yield from walk(value, f"{path}[]", seen)
                elif key in ("anyOf", "oneOf", "allOf"):
                    for sub in value:
                        yield from walk(sub, path, seen)

    return sorted(set(walk(schemas[name], "", frozenset())))


def _first_line(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def _amqp_properties(type_value: str, publisher: str) -> dict[str, str]:
    return {
        "content_type": "application/json",
        "delivery_mode": "2 (persistent)",
        "message_id": "the envelope's message_id",
        "correlation_id": "the envelope's correlation_id (the business key)",
        "type": type_value,
        "app_id": "the envelope's sender",
        "user_id": f"the broker user of the publisher: {publisher}",
        "timestamp": "real time of publishing, seconds since the epoch",
    }


#: The optional AMQP headers of an envelope: the W3C Trace Context of the flow
#: (shared/tracing.py, docs/adr/0044), carried only by a sender that traces; a receiver
#: may ignore them, and nothing in the protocol depends on them.
TRACE_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context: the span that published the message, so that "
                           "the receiver's handling joins the flow's trace (optional)"},
        "tracestate": {"type": "string",
                       "description": "W3C Trace Context vendor state (optional)"},
    },
}


def _envelope_message(message_type: MessageType, schemas: Mapping[str, Any]) -> dict[str, Any]:
    model = PAYLOAD_MODELS[message_type]
    name = message_type.value
    senders = []
    if message_type in REGISTRY_TO_ITL:
        senders.append("a registry to the ITL")
    if message_type in ITL_TO_REGISTRY:
        senders.append("the ITL to a registry")
    if message_type in ITL_TO_ITSELF:
        senders.append("the ITL to itself")
    description = (f"{_first_line(model.__doc__)}\n\nSent by {' and '.join(senders)} on "
                   f"`{MAIN_EXCHANGE}`, routed by the recipient's code.")
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": _first_line(model.__doc__),
        "contentType": "application/json",
        "correlationId": {
            "description": "the business key: transaction id, transfer id, "
                           "`N<notice id>` or reconciliation id (`REC<n>`)",
            "location": "$message.payload#/correlation_id",
        },
        "payload": {
            "allOf": [_ref(SCHEMA_REF.format(model="Envelope"))],
            "properties": {
                "message_type": {"const": name},
                "payload": _ref(SCHEMA_REF.format(model=name)),
            },
            "description": f"the envelope of a {name}: its payload is `{name}`",
        },
        "headers": TRACE_HEADERS,
        "bindings": {"amqp": {"messageType": name, "bindingVersion": AMQP_BINDING_VERSION}},
        "x-amqp-properties": _amqp_properties(name, "`<namespace><sender>`"),
    }
    fields = response_code_fields(name, schemas)
    if fields:
        message["x-response-code-fields"] = [f"payload.{f}" for f in fields]
        description += (" Carries response codes (`ResponseCode`, see `x-response-codes`) "
                        "in " + ", ".join(f"`payload.{f}`" for f in fields) + ".")
    message["description"] = description
    return message


def _dead_letter_message() -> dict[str, Any]:
    codes = SCHEMA_REF.format(model=ResponseCode.__name__)
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A message its receiver could not or would not take, as it came.",
        "description": (
            "The body and the properties of the refused message as they came (any bytes: "
            "not JSON, no envelope, an unknown type, an invalid payload, a sender that is "
            "not its publisher, or a message whose handling failed on every delivery), "
            "published by the receiver to `des.dlx` under its own code, with the headers "
            "below. The queue itself dead-letters a message delivered "
            f"{DELIVERY_LIMIT} times to the same place (RabbitMQ adds `x-death`)."),
        "headers": {
            "type": "object",
            "properties": {
                "x-dead-reason": {"type": "string", "maxLength": 1000,
                                  "description": "why the message was refused"},
                "x-dead-code": {"allOf": [_ref(codes)],
                                "description": "the response code, when the refusal has one"},
                "x-dead-queue": {"type": "string",
                                 "description": "the code of the service that refused it"},
                "x-published-by": {"type": "string",
                                   "description": "the broker user that published the "
                                                  "refused message (empty: none set)"},
            },
            "required": ["x-dead-reason", "x-dead-queue", "x-published-by"],
        },
        "payload": {"description": "the refused message's body, unchanged"},
        "x-amqp-properties": {
            "content_type": "the refused message's",
            "delivery_mode": "2 (persistent)",
            "message_id": "the refused message's",
            "correlation_id": "the refused message's",
            "type": "the refused message's",
            "user_id": "the broker user of the service that refused it",
            "timestamp": "real time of dead-lettering, seconds since the epoch",
        },
    }


def _clock_message() -> dict[str, Any]:
    return {
        "name": CLOCK_SET,
        "title": "Clock setting",
        "summary": _first_line(ClockSet.__doc__),
        "description": ("The stack's simulated time: every service moves its clock to `now` "
                        "and runs the work that became due (deadlines, expiries, time-outs). "
                        f"`{LAST_CLOCK_QUEUE}` keeps the latest, for a service that starts "
                        "later. A setting whose `set_by` is not its publisher is dropped."),
        "contentType": "application/json",
        "payload": _ref(SCHEMA_REF.format(model=CLOCK_SET)),
        "x-amqp-properties": {
            "content_type": "application/json",
            "delivery_mode": "2 (persistent)",
            "user_id": "the broker user of the service that set it (`set_by`)",
            "timestamp": "real time of the setting, seconds since the epoch",
        },
    }


def _capture_message() -> dict[str, Any]:
    return {
        "name": CAPTURE,
        "title": "Capture",
        "summary": "A command a service's API took, or the stack's run marker, for the "
                   "recording (docs/adr/0034).",
        "description": "Not part of the registry protocol: what the recording of a run "
                       f"keeps besides the messages. AMQP `type` `{COMMAND}` (routing key: "
                       f"the service's code) or `{RUN_STARTED}` (routing key `stack`).",
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "properties": {
                "kind": {"enum": [COMMAND, RUN_STARTED]},
                "service": {"type": "string"}, "operation": {"type": ["string", "null"]},
                "method": {"type": "string"}, "path": {"type": "string"},
                "status": {"type": "integer"}, "body": {}, "answer": {},
                "simulated_at": {"type": "string", "format": "date-time"},
            },
            "description": "the command as docs/recording.md describes it",
        },
        "bindings": {"amqp": {"bindingVersion": AMQP_BINDING_VERSION}},
        "x-amqp-properties": {
            "content_type": "application/json",
            "delivery_mode": "2 (persistent)",
            "type": f"{COMMAND} or {RUN_STARTED}",
            "app_id": "the service's code",
            "user_id": "the broker user of the service",
            "timestamp": "real time of publishing, seconds since the epoch",
        },
    }


def _exchange_channel(address: str, exchange: str, kind: str, description: str,
                      messages: Iterable[str], parameters: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {m: _ref(f"#/components/messages/{m}") for m in messages},
        "bindings": {"amqp": {
            "is": "routingKey",
            "exchange": {"name": exchange, "type": kind, "durable": True,
                         "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION,
        }},
    }
    if parameters:
        channel["parameters"] = parameters
    return channel


def _queue_channel(address: str, description: str, messages: Iterable[str],
                   arguments: Mapping[str, Any], parameters: dict[str, Any] | None = None,
                   exclusive: bool = False) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {m: _ref(f"#/components/messages/{m}") for m in messages},
        "bindings": {"amqp": {
            "is": "queue",
            "queue": {"name": address, "durable": not exclusive, "exclusive": exclusive,
                      "autoDelete": exclusive, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION,
        }},
        "x-queue-arguments": dict(arguments),
    }
    if parameters:
        channel["parameters"] = parameters
    return channel


REGISTRY_CODE_PARAMETER = {
    "description": "a registry's code: a Party's two letters or `CDM`",
    "examples": ["KZ", "CH", "JP", "CDM"],
}
SERVICE_CODE_PARAMETER = {
    "description": "a service's code: `ITL`, a Party's two letters or `CDM`",
    "examples": ["ITL", "KZ", "CDM"],
}


def _channels() -> dict[str, Any]:
    itl_messages = [t.value for t in (*REGISTRY_TO_ITL, *ITL_TO_ITSELF)]
    registry_messages = [t.value for t in ITL_TO_REGISTRY]
    sample = Topology("", (ITL_CODE,))
    queue_arguments = {q.name: q.arguments for q in sample.queues()}
    itl_inbox_arguments = queue_arguments[inbox_queue_name(ITL_CODE)]
    every_message = sorted({*itl_messages, *registry_messages, DEAD_LETTER, CLOCK_SET,
                            CAPTURE})
    return {
        "itlInbox": _exchange_channel(
            ITL_CODE, MAIN_EXCHANGE, "topic",
            f"Messages to the ITL: published to `{MAIN_EXCHANGE}` with the routing key "
            f"`{ITL_CODE}`, routed to the queue `{inbox_queue_name(ITL_CODE)}`. Every "
            "registry may publish here; only the ITL reads them.",
            itl_messages),
        "itlInboxQueue": _queue_channel(
            inbox_queue_name(ITL_CODE),
            f"The ITL's inbox, bound to `{MAIN_EXCHANGE}` with `{ITL_CODE}`: a durable "
            "quorum queue that dead-letters to `des.dlx` (routing key `ITL`) after "
            f"{DELIVERY_LIMIT} deliveries. Read by the ITL only.",
            itl_messages, itl_inbox_arguments),
        "registryInbox": _exchange_channel(
            "{registryCode}", MAIN_EXCHANGE, "topic",
            f"Messages to the registry `{{registryCode}}`: published to `{MAIN_EXCHANGE}` "
            "with its code as routing key, routed to its queue `des.in.{registryCode}`. "
            "Only the ITL publishes here; registries never talk to each other "
            "(protocol.md 1.2).",
            registry_messages, {"registryCode": REGISTRY_CODE_PARAMETER}),
        "registryInboxQueue": _queue_channel(
            inbox_queue_name("{registryCode}"),
            f"A registry's inbox, bound to `{MAIN_EXCHANGE}` with its code: a durable quorum "
            f"queue that dead-letters to `{DEAD_LETTER_EXCHANGE}` (routing key: the "
            f"registry's code) after {DELIVERY_LIMIT} deliveries. Read by that registry "
            "only (its broker user).",
            registry_messages,
            {**itl_inbox_arguments, "x-dead-letter-routing-key": "{registryCode}"},
            {"registryCode": REGISTRY_CODE_PARAMETER}),
        "deadLetters": _exchange_channel(
            "{serviceCode}", DEAD_LETTER_EXCHANGE, "topic",
            f"What a service refused or could not handle, published by that service to "
            f"`{DEAD_LETTER_EXCHANGE}` under its own code (its inbox queue does the same "
            f"after {DELIVERY_LIMIT} deliveries), routed to `des.dead.{{serviceCode}}`.",
            [DEAD_LETTER], {"serviceCode": SERVICE_CODE_PARAMETER}),
        "deadLetterQueue": _queue_channel(
            dead_letter_queue_name("{serviceCode}"),
            "A service's dead letters, for an operator to inspect: a durable quorum queue, "
            "read by the broker's administrator only.",
            [DEAD_LETTER], queue_arguments[dead_letter_queue_name(ITL_CODE)],
            {"serviceCode": SERVICE_CODE_PARAMETER}),
        "clock": _exchange_channel(
            "", CLOCK_EXCHANGE, "fanout",
            f"The simulation clock: the fanout `{CLOCK_EXCHANGE}` (routing key empty) to "
            f"every service's clock queue and to `{LAST_CLOCK_QUEUE}`. Any service may set "
            "the stack's time; a setting is no DES message.",
            [CLOCK_SET]),
        "clockLast": _queue_channel(
            LAST_CLOCK_QUEUE,
            "The latest clock setting (a queue of length one): read it (get, then nack) at "
            "start to find the stack's time.",
            [CLOCK_SET], queue_arguments[LAST_CLOCK_QUEUE]),
        "clockFollower": _queue_channel(
            f"{CLOCK_EXCHANGE}.{{serviceCode}}.{{instance}}",
            f"The exclusive queue on which one service instance hears the clock: declared by "
            f"that instance (the only queue it may declare) and bound to `{CLOCK_EXCHANGE}`.",
            [CLOCK_SET], {},
            {"serviceCode": SERVICE_CODE_PARAMETER,
             "instance": {"description": "32 lower-case hexadecimal digits, fresh per "
                                         "connection"}},
            exclusive=True),
        "capture": _exchange_channel(
            "{serviceCode}", CAPTURE_EXCHANGE, "topic",
            f"The commands each service's API took, for the recording: published to "
            f"`{CAPTURE_EXCHANGE}` under the service's code (the stack's run marker under "
            "`stack`). Not needed to speak to the ITL.",
            [CAPTURE], {"serviceCode": SERVICE_CODE_PARAMETER}),
        "journal": _queue_channel(
            JOURNAL_QUEUE,
            f"The recording's stream (when the stack records, docs/adr/0034): bound to "
            f"`{MAIN_EXCHANGE}` and `{DEAD_LETTER_EXCHANGE}` under every service's code, to "
            f"`{CLOCK_EXCHANGE}` and to all of `{CAPTURE_EXCHANGE}`; read by `kyoto-sim`.",
            every_message, {q.name: q.arguments for q in
                            Topology("", (), recording=True).queues()}[JOURNAL_QUEUE]),
    }


def _message_ref(channel: str, message: str) -> dict[str, str]:
    return _ref(f"#/channels/{channel}/messages/{message}")


def _send_bindings(user: str | None) -> dict[str, Any]:
    amqp: dict[str, Any] = {"deliveryMode": 2, "mandatory": True, "timestamp": True,
                            "bindingVersion": AMQP_BINDING_VERSION}
    if user is not None:
        amqp["userId"] = user
    return {"amqp": amqp}


RECEIVE_BINDINGS = {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}}


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}

    def add(key: str, action: str, channel: str, messages: Iterable[str], role: str,
            summary: str, user: str | None = None,
            reply: tuple[str, Iterable[str]] | None = None) -> None:
        operation: dict[str, Any] = {
            "action": action,
            "channel": _ref(f"#/channels/{channel}"),
            "messages": [_message_ref(channel, m) for m in messages],
            "summary": summary,
            "tags": [{"name": role}],
            "bindings": RECEIVE_BINDINGS if action == "receive" else _send_bindings(user),
        }
        if reply is not None:
            reply_channel, answers = reply
            operation["reply"] = {"channel": _ref(f"#/channels/{reply_channel}"),
                                  "messages": [_message_ref(reply_channel, m)
                                               for m in answers]}
        operations[key] = operation

    # a receiver's operation names the answers it sends (``reply``) as its sender's does
    for t in (*REGISTRY_TO_ITL, *ITL_TO_ITSELF):
        by = "the ITL itself" if t in ITL_TO_ITSELF else "a registry"
        answers = REPLIES.get(t) if t in REGISTRY_TO_ITL else None
        add(f"itlReceives{t.value}", "receive", "itlInboxQueue", [t.value], "itl",
            f"The ITL takes {t.value} from {by}.",
            reply=("registryInbox", [a.value for a in answers]) if answers else None)
    for t in ITL_TO_REGISTRY:
        answers = REPLIES.get(t)
        add(f"itlSends{t.value}", "send", "registryInbox", [t.value], "itl",
            f"The ITL sends {t.value} to a registry.", user=ITL_CODE,
            reply=("itlInbox", [a.value for a in answers]) if answers else None)
    for t in ITL_TO_ITSELF:
        add(f"itlSends{t.value}", "send", "itlInbox", [t.value], "itl",
            f"The ITL sends {t.value} to itself, behind every message already waiting.",
            user=ITL_CODE)
    for t in REGISTRY_TO_ITL:
        answers = REPLIES.get(t)
        add(f"registrySends{t.value}", "send", "itlInbox", [t.value], "registry",
            f"A registry sends {t.value} to the ITL, as its own broker user.",
            reply=("registryInbox", [a.value for a in answers]) if answers else None)
    for t in ITL_TO_REGISTRY:
        answers = REPLIES.get(t)
        add(f"registryReceives{t.value}", "receive", "registryInboxQueue", [t.value],
            "registry", f"A registry takes {t.value} from the ITL"
            + (f" and answers with {' or '.join(a.value for a in answers)}." if answers
               else "."),
            reply=("itlInbox", [a.value for a in answers]) if answers else None)
    add("deadLetter", "send", "deadLetters", [DEAD_LETTER], "any service",
        "A service dead-letters a message it refused or could not handle.")
    add("setClock", "send", "clock", [CLOCK_SET], "any service",
        "A service sets the stack's simulated time.")
    add("followClock", "receive", "clockFollower", [CLOCK_SET], "any service",
        "A service instance hears every clock setting.")
    add("capture", "send", "capture", [CAPTURE], "any service",
        "A service hands a command its API took to the recording.")
    return operations


def response_code_table() -> dict[str, dict[str, str]]:
    """Every response code: its number (as text, a JSON key) -> name and text."""
    return {str(int(code)): {"name": code.name, "text": RESPONSE_TEXT.get(code, "")}
            for code in ResponseCode}


def code_tables(schemas: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The names of the values of every code table among ``schemas`` (an enumeration of
    ``shared.codes``, such as ``UnitType``): table -> value (as text) -> name; the JSON
    Schemas list the values only."""
    tables: dict[str, dict[str, str]] = {}
    for name, schema in schemas.items():
        table = getattr(codes, name, None)
        if "enum" in schema and isinstance(table, type) and issubclass(table, Enum):
            tables[name] = {str(member.value): member.name for member in table}
    return tables


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the wire, as a JSON object.

    Shape: ``info``, ``servers`` (``local``: 127.0.0.1:5672 as ``make up`` and the tests
    use it; ``compose``: the Compose network's ``rabbitmq``), ``channels`` (one per
    exchange and routing key and one per queue), ``operations`` (tagged ``itl``,
    ``registry`` or ``any service``), ``components`` (``messages``: one per message type,
    the dead letter, the clock setting and the capture; ``schemas``: the contracts'
    JSON Schemas; ``securitySchemes``), ``x-response-codes`` (number -> name and text)
    and ``x-code-tables`` (every code table's value -> name). Deterministic: the
    same models give the same document."""
    schemas = component_schemas()
    messages: dict[str, Any] = {t.value: _envelope_message(t, schemas) for t in MessageType}
    messages[DEAD_LETTER] = _dead_letter_message()
    messages[CLOCK_SET] = _clock_message()
    messages[CAPTURE] = _capture_message()
    description = (INFO_DESCRIPTION.replace("DELIVERY_LIMIT", str(DELIVERY_LIMIT))
                   .replace("SCHEMA_VERSION", f"`{SCHEMA_VERSION}`"))
    security = [_ref("#/components/securitySchemes/brokerUser")]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:kyoto-registry-sim:des-wire",
        "info": {
            "title": "Kyoto registry simulator: the DES wire",
            "version": simulator_version(),
            "description": description,
            "tags": [{"name": "itl", "description": "what the ITL sends and takes"},
                     {"name": "registry", "description": "a registry's side of the same "
                                                         "messages"},
                     {"name": "any service", "description": "dead letters, the clock, the "
                                                            "recording"}],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0-9-1",
                "pathname": "/",
                "description": "The broker of `make up`, `make demo` and the tests "
                               "(test stacks use a namespace prefix).",
                "security": security,
            },
            "compose": {
                "host": "rabbitmq:5672", "protocol": "amqp", "protocolVersion": "0-9-1",
                "pathname": "/",
                "description": "The broker of docker-compose.yml, inside its network; "
                               "users and topology from deploy/rabbitmq/definitions.json.",
                "security": security,
            },
        },
        "channels": _channels(),
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "brokerUser": {
                    "type": "userPassword",
                    "description": "The service's own broker user, `<namespace><CODE>`, "
                                   "and its password from the stack's provisioning.",
                },
                "clientCertificate": {
                    "type": "X509",
                    "description": "With `amqps://`: a client certificate for mutual TLS, "
                                   "where the broker asks for one.",
                },
            },
        },
        "x-response-codes": response_code_table(),
        "x-code-tables": code_tables(schemas),
    }


def render(value: Mapping[str, Any]) -> str:
    """``value`` as the checked-in file holds it (like the JSON Schema snapshots)."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_document(path: Path = ASYNCAPI_PATH) -> Path:
    """Write ``document()`` to ``path``; returns ``path``."""
    path.write_text(render(document()))
    return path


def covered_message_types(doc: Mapping[str, Any]) -> set[str]:
    """The message types that ``doc`` lets travel: a message of ``components/messages``
    that some channel lists and some operation sends and some operation receives."""
    components = doc.get("components", {}).get("messages", {})
    on_channels = {ref["$ref"].rsplit("/", 1)[1]
                   for channel in doc.get("channels", {}).values()
                   for ref in channel.get("messages", {}).values()}
    sent: set[str] = set()
    received: set[str] = set()
    for operation in doc.get("operations", {}).values():
        names = {ref["$ref"].rsplit("/", 1)[1] for ref in operation.get("messages", [])}
        (sent if operation.get("action") == "send" else received).update(names)
    return set(components) & on_channels & sent & received


def uncovered(doc: Mapping[str, Any]) -> list[str]:
    """The message types of ``MessageType`` (each with its payload model) that ``doc``
    does not carry (``covered_message_types``) or carries without the payload schema of
    its contract (``components/schemas/<type>``, referenced by the message's
    ``payload``); empty when it covers them all."""
    covered = covered_message_types(doc)
    components = doc.get("components", {})
    schemas = components.get("schemas", {})
    messages = components.get("messages", {})
    missing = []
    for message_type in MessageType:
        name = message_type.value
        payload = messages.get(name, {}).get("payload", {}).get("properties", {})
        typed = payload.get("payload", {}).get("$ref") == SCHEMA_REF.format(model=name)
        if (name not in covered or name not in schemas or not typed
                or PAYLOAD_MODELS.get(message_type) is None):
            missing.append(name)
    return missing


def inline(schema: Any, defs: Mapping[str, Any], prefix: str) -> Any:
    """``schema`` with every reference ``<prefix><name>`` replaced by ``defs[name]``,
    recursively (the contracts have no recursive models); a copy."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            target = inline(copy.deepcopy(defs[ref[len(prefix):]]), defs, prefix)
            rest = {k: inline(v, defs, prefix) for k, v in schema.items() if k != "$ref"}
            return {**target, **rest}
        return {k: inline(v, defs, prefix) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [inline(v, defs, prefix) for v in schema]
    return schema
