"""Hypothesis strategies for fuzzing the message consumers from the wire contracts'
JSON Schemas (``shared/contracts/schemas``; docs/adr/0020).

``from_schema`` turns the part of JSON Schema the contract snapshots use (``type``,
``properties``/``required``/``additionalProperties``, ``$ref`` into ``$defs``, ``anyOf``,
``enum``, ``minimum``/``maximum``, ``pattern``, ``minLength``/``maxLength``, ``format``
``date`` and ``date-time``, ``items``/``minItems``/``maxItems``) into a strategy of
schema-valid JSON values; anything else raises ``UnsupportedSchema``, so that a new
construct in a contract is noticed here instead of being fuzzed wrongly.
(hypothesis-jsonschema would do this, but its last release does not run on the
Hypothesis the project pins.)

``valid_message`` draws a whole message (envelope and payload) of one type from one
sender to one recipient, schema-valid: some addressed consistently (the correlation id
is the payload's business key, the proposing registry is the sender) so that they reach
the handlers, the others only schema-valid. ``junk_variant`` makes a malformed one from
it: not JSON, not UTF-8, not an object, nested too deep, a field removed, a field of the
wrong type, a number past its bound or beyond 64 bits, an unknown field or code, a text
too long; every structured one is checked to violate the contract
(``Contract.violated``). ``message_group`` draws a valid message and a few malformed
variants of it (a drawn document is the costly part), each labelled with what was done,
for the report of a failure.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import Any

import jsonschema_rs
from hypothesis import assume
from hypothesis import strategies as st

from shared.bounds import CLOCK_MAX, CLOCK_MIN
from shared.codes import SCHEMA_VERSION, MessageType

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "contracts" / "schemas"
#: Longest list drawn (the contracts allow up to 3000 blocks; a few find the same faults).
MAX_LIST = 4
#: Texts without a maximum length are drawn up to this many characters.
MAX_TEXT = 24
Json = Any
Schema = Mapping[str, Any]


class UnsupportedSchema(ValueError):
    """A construct of JSON Schema ``from_schema`` does not translate."""


#: Keys that only describe (or that pydantic writes and validation ignores).
_DESCRIPTIVE = frozenset({"title", "description", "default", "examples"})
_HANDLED = frozenset({"type", "properties", "required", "additionalProperties", "$ref",
                      "$defs", "anyOf", "enum", "minimum", "maximum", "pattern",
                      "minLength", "maxLength", "format", "items", "minItems",
                      "maxItems"}) | _DESCRIPTIVE


def _texts(node: Schema) -> st.SearchStrategy[str]:
    low, high = int(node.get("minLength", 0)), node.get("maxLength")
    fmt = node.get("format")
    if fmt == "date":
        return st.dates(CLOCK_MIN.date(), CLOCK_MAX.date()).map(date.isoformat)
    if fmt == "date-time":
        return st.datetimes(CLOCK_MIN.replace(tzinfo=None), CLOCK_MAX.replace(tzinfo=None),
                            timezones=st.just(UTC)).map(
            lambda moment: moment.isoformat().replace("+00:00", "Z"))
    if fmt is not None:
        raise UnsupportedSchema(f"format {fmt!r}")
    if "pattern" in node:
        texts = st.from_regex(re.compile(node["pattern"]), fullmatch=True)
        return texts.filter(lambda t: low <= len(t) <= (high if high is not None else len(t)))
    return st.text(st.characters(codec="utf-8"), min_size=low,
                   max_size=int(high) if high is not None else max(low, MAX_TEXT))


def from_schema(node: Schema, root: Schema | None = None) -> st.SearchStrategy[Json]:
    """A strategy of JSON values valid against ``node`` (part of the document ``root``,
    which holds the ``$defs`` its ``$ref`` names). Raises ``UnsupportedSchema``."""
    root = node if root is None else root
    unknown = set(node) - _HANDLED
    if unknown:
        raise UnsupportedSchema(f"keywords {sorted(unknown)}")
    if "$ref" in node:
        prefix = "#/$defs/"
        if not node["$ref"].startswith(prefix):
            raise UnsupportedSchema(f"$ref {node['$ref']!r}")
        return from_schema(root["$defs"][node["$ref"].removeprefix(prefix)], root)
    if "anyOf" in node:
        return st.one_of([from_schema(option, root) for option in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    kind = node.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if kind == "string":
        return _texts(node)
    if kind == "array":
        low = int(node.get("minItems", 0))
        high = min(int(node.get("maxItems", MAX_LIST)), max(low, MAX_LIST))
        return st.lists(from_schema(node.get("items", {}), root), min_size=low,
                        max_size=high)
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        extra = node.get("additionalProperties", True)
        if not properties:
            if extra is False:
                return st.just({})
            return st.dictionaries(st.text(max_size=8), _small_json(), max_size=3)
        return st.fixed_dictionaries(
            {k: from_schema(v, root) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, root) for k, v in properties.items()
                      if k not in required})
    raise UnsupportedSchema(f"type {kind!r}")


def _small_json() -> st.SearchStrategy[Json]:
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=6)


class Contract:
    """The JSON Schemas of the envelope and of every payload, their validators and the
    strategies of their values (built once)."""

    def __init__(self, envelope: Schema, payloads: Mapping[MessageType, Schema]) -> None:
        self.envelope = envelope
        self.payloads = payloads
        self._envelope_validator = jsonschema_rs.validator_for(dict(envelope))
        self._payload_validators = {t: jsonschema_rs.validator_for(dict(s))
                                    for t, s in payloads.items()}
        self._strategies: dict[MessageType, st.SearchStrategy[Json]] = {}

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> Contract:
        def read(name: str) -> Schema:
            loaded: Schema = json.loads((directory / f"{name}.json").read_text())
            return loaded

        return cls(read("Envelope"), {t: read(t.value) for t in MessageType})

    def payload(self, message_type: MessageType) -> st.SearchStrategy[Json]:
        """Schema-valid payloads of ``message_type``."""
        if message_type not in self._strategies:
            self._strategies[message_type] = from_schema(self.payloads[message_type])
        return self._strategies[message_type]

    def violated(self, document: Json) -> bool:
        """Whether ``document`` breaks the envelope's or its payload's schema."""
        if not self._envelope_validator.is_valid(document):
            return True
        validator = self._payload_validators[MessageType(document["message_type"])]
        return not validator.is_valid(document["payload"])


def business_key(message_type: MessageType, payload: Json) -> str | None:
    """The correlation id a receiver expects (``shared.contracts.validity``)."""
    if not isinstance(payload, dict):
        return None
    for name in ("transaction_id", "transfer_id"):
        if isinstance(payload.get(name), str):
            return str(payload[name])
    if isinstance(payload.get("notice_id"), int):
        return f"N{payload['notice_id']}"
    return None


def _addressed_as(sender: str, message_type: MessageType, payload: Json) -> Json:
    """``payload`` with the registries it names as the speaker set to ``sender`` (a
    proposal's proposing registry and transaction id prefix; an allowance transfer's
    transferring state and transfer id prefix), where the sender is a registry."""
    if not isinstance(payload, dict) or len(sender) != 2:
        return payload
    changed = dict(payload)
    if message_type in (MessageType.PROPOSAL_SUBMITTED, MessageType.PROPOSAL_FORWARDED):
        side = "transferring" if isinstance(changed.get("transferring"), dict) else "acquiring"
        if isinstance(changed.get(side), dict):
            changed[side] = {**changed[side], "registry": sender}
        if isinstance(changed.get("transaction_id"), str):
            changed["transaction_id"] = sender + re.sub(r"^[A-Z]+", "",
                                                        changed["transaction_id"])
    if message_type == MessageType.ALLOWANCE_TRANSFER_SUBMITTED:
        changed["transferring_state"] = sender
        if isinstance(changed.get("transfer_id"), str):
            changed["transfer_id"] = sender + re.sub(r"^[A-Z]+", "", changed["transfer_id"])
    return changed


SENT_AT = _texts({"format": "date-time"})
IDS = st.randoms(use_true_random=True)
CORRELATION_IDS = st.from_regex(r"[A-Z]{2}[0-9]{1,6}", fullmatch=True)


@st.composite
def valid_document(draw: st.DrawFn, contract: Contract, message_type: MessageType,
                   sender: str, recipient: str) -> Json:
    """A schema-valid message of ``message_type`` from ``sender`` to ``recipient``, as a
    JSON document; two in three addressed consistently (see the module)."""
    payload = draw(contract.payload(message_type))
    consistent = draw(st.integers(0, 2)) > 0
    if consistent:
        payload = _addressed_as(sender, message_type, payload)
    key = business_key(message_type, payload)
    correlation = key if consistent and key else draw(CORRELATION_IDS)
    document = {
        "message_id": uuid.UUID(int=draw(IDS).getrandbits(128)).hex,
        "correlation_id": correlation,
        "message_type": message_type.value,
        "schema_version": SCHEMA_VERSION,
        "sender": sender,
        "recipient": recipient,
        "sent_at": draw(SENT_AT),
        "seq": draw(st.integers(0, 5)),
        "payload": payload,
    }
    if draw(st.booleans()):
        document["causation_id"] = draw(st.none() | st.text(max_size=12))
    assume(not contract.violated(document))
    return document


def encode(document: Json) -> bytes:
    return json.dumps(document).encode()


# malformed messages: mutations of a schema-valid document, driven by a random.Random
# that Hypothesis draws (seeded by the run), so that one drawn document gives several

Mutation = Callable[[random.Random, Json], Json]


def _paths(value: Json, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every node below ``value`` (dict keys and list indexes)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*where, key))
            found += _paths(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*where, index))
            found += _paths(item, (*where, index))
    return found


def _at(document: Json, path: tuple[Any, ...]) -> Json:
    for step in path:
        document = document[step]
    return document


def _replaced(document: Json, path: tuple[Any, ...], value: Json, delete: bool = False
              ) -> Json:
    changed: Json = json.loads(json.dumps(document))
    target = _at(changed, path[:-1])
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


def _without_a_field(rnd: random.Random, document: Json) -> Json:
    keys = [p for p in _paths(document) if isinstance(p[-1], str)]
    return _replaced(document, rnd.choice(keys), None, delete=True)


#: A value of each JSON type, to put where another type is wanted.
OTHER_TYPES: list[Json] = ["1", 1, 1.5, True, False, None, [], {}, [1], {"x": 1}, "",
                           "true", "2013-01-01"]


def _wrong_type(rnd: random.Random, document: Json) -> Json:
    return _replaced(document, rnd.choice(_paths(document)), rnd.choice(OTHER_TYPES))


#: Numbers past every bound a contract states, and beyond 64 bits.
HUGE_NUMBERS: list[Json] = [2**63, 2**64 + 1, -(2**63) - 1, 10**30, -(10**30), 1e308,
                            -1e308, 10**15, -1, 0, 2**53 + 1, 0.5]


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _huge_number(rnd: random.Random, document: Json) -> Json:
    paths = _paths(document)
    numbers = [p for p in paths if _is_number(_at(document, p))] or paths
    return _replaced(document, rnd.choice(numbers), rnd.choice(HUGE_NUMBERS))


def _unknown_field(rnd: random.Random, document: Json) -> Json:
    objects = [(), *(p for p in _paths(document) if isinstance(_at(document, p), dict))]
    path = rnd.choice(objects)
    name = rnd.choice(["surprise", "admin", "__proto__", "Payload", "seq "])
    return _replaced(document, (*path, name), rnd.choice(OTHER_TYPES))


def _too_long_text(rnd: random.Random, document: Json) -> Json:
    texts = [p for p in _paths(document) if isinstance(_at(document, p), str)]
    return _replaced(document, rnd.choice(texts), "X" * rnd.choice([65, 257, 4097, 100_000]))


def _unknown_code(rnd: random.Random, document: Json) -> Json:
    field, value = rnd.choice([("message_type", "ProposalWithdrawn"),
                               ("schema_version", "des-9.9/1"), ("sender", "kz"),
                               ("recipient", "ITL "), ("sent_at", "2013-02-30T00:00:00Z"),
                               ("sent_at", "yesterday")])
    return _replaced(document, (field,), value)


STRUCTURED_MUTATIONS: dict[str, Mutation] = {
    "missing field": _without_a_field,
    "wrong type": _wrong_type,
    "number out of range": _huge_number,
    "unknown field": _unknown_field,
    "text too long": _too_long_text,
    "unknown code": _unknown_code,
}
#: Kinds of body that are no JSON object of a message at all.
RAW_KINDS = ("not JSON", "cut short", "UTF-16", "not UTF-8", "Latin-1 text", "JSON list",
             "JSON number", "JSON null", "JSON string", "nested too deep", "NaN literal",
             "trailing garbage", "empty body")


def _raw_body(kind: str, document: Json) -> bytes:
    """A body of ``kind`` (``RAW_KINDS``) made from ``document``."""
    text = json.dumps(document)
    if kind == "not JSON":
        return b"\x00 not json " + text[:20].encode()
    if kind == "cut short":
        return text[: len(text) // 2].encode()
    if kind == "UTF-16":
        return text.encode("utf-16")
    if kind == "not UTF-8":
        return text.encode().replace(b'"', b'"\xff', 1)
    if kind == "Latin-1 text":
        return json.dumps({**document, "correlation_id": "Z\u00fcrich"},
                          ensure_ascii=False).encode("latin-1", errors="replace")
    if kind == "JSON list":
        return b"[" + text.encode() + b"]"
    if kind == "JSON number":
        return b"12345678901234567890123"
    if kind == "JSON null":
        return b"null"
    if kind == "JSON string":
        return json.dumps(text).encode()
    if kind == "nested too deep":
        return b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if kind == "NaN literal":
        return text.replace('"seq": ', '"seq": NaN, "x": ', 1).encode()
    if kind == "trailing garbage":
        return text.encode() + b"}}"
    if kind == "empty body":
        return b""
    raise ValueError(kind)


def junk_variant(rnd: random.Random, contract: Contract, document: Json
                 ) -> tuple[str, bytes] | None:
    """A malformed message made from the schema-valid ``document``: its label and body;
    None when the mutation drawn left it valid (then another is tried by the caller)."""
    if rnd.random() < 0.3:
        kind = rnd.choice(RAW_KINDS)
        return kind, _raw_body(kind, document)
    label = rnd.choice(sorted(STRUCTURED_MUTATIONS))
    changed = STRUCTURED_MUTATIONS[label](rnd, document)
    if not contract.violated(changed):
        return None
    return label, encode(changed)


@dataclass(frozen=True)
class FuzzMessage:
    """One body to publish from ``sender`` to ``recipient``; ``junk`` when it breaks the
    contract (it must be dead-lettered); ``label`` says how it was made."""

    sender: str
    recipient: str
    message_type: MessageType
    label: str
    body: bytes
    junk: bool


@st.composite
def message_group(draw: st.DrawFn, contract: Contract, sender: str, recipient: str,
                  message_type: MessageType, junk_per_valid: int) -> list[FuzzMessage]:
    """A schema-valid message of ``message_type`` from ``sender`` to ``recipient`` and
    ``junk_per_valid`` malformed variants of it."""
    document = draw(valid_document(contract, message_type, sender, recipient))
    rnd = draw(st.randoms(use_true_random=True))  # seeded from the run's draw
    group = [FuzzMessage(sender, recipient, message_type, "schema-valid", encode(document),
                         junk=False)]
    for _ in range(junk_per_valid):
        for _attempt in range(8):
            variant = junk_variant(rnd, contract, document)
            if variant is not None:
                group.append(FuzzMessage(sender, recipient, message_type, *variant,
                                         junk=True))
                break
    return group
