"""The AsyncAPI document of the wire as one HTML page, rendered on the server.

Tables of the servers, channels (exchange or queue, routing key, arguments), operations
(who sends and who takes what, and the answer), every message with its AMQP properties
and the fields of its envelope and payload, and the code tables. No script and nothing
fetched from elsewhere: the machines that run the simulator may be offline
(docs/adr/0037).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import markupsafe

SCHEMA_PREFIX = "#/components/schemas/"
#: Constraints shown beside a field's type, in this order.
CONSTRAINTS = ("pattern", "minLength", "maxLength", "minimum", "maximum", "minItems",
               "maxItems", "format", "const", "default")


@dataclass(frozen=True)
class FieldRow:
    """One field of a message: its path (``payload.blocks[].serial_start``), its type
    (a code table's name links to the table), whether it is required, its constraints
    and its description."""

    path: str
    type: str
    table: str | None
    required: bool
    constraints: str
    description: str


def _name(ref: str) -> str:
    return ref.removeprefix(SCHEMA_PREFIX)


def field_rows(schema: Mapping[str, Any], schemas: Mapping[str, Any], prefix: str = "",
               required: bool = True, depth: int = 0) -> list[FieldRow]:
    """The fields of ``schema`` (an object schema, references into ``schemas`` followed),
    flattened: an object's fields under ``<field>.``, an array's items under
    ``<field>[]``; a code table is one row naming it."""
    if depth > 12:  # the contracts are not recursive; a guard all the same
        return []
    rows: list[FieldRow] = []
    needed = set(schema.get("required", ()))
    for field, sub in schema.get("properties", {}).items():
        path = f"{prefix}{field}"
        rows += _rows_of(path, sub, schemas, required and field in needed, depth)
    return rows


def _rows_of(path: str, sub: Mapping[str, Any], schemas: Mapping[str, Any], required: bool,
             depth: int) -> list[FieldRow]:
    options = [o for o in sub.get("anyOf", [sub]) if o.get("type") != "null"]
    nullable = len(options) < len(sub.get("anyOf", [sub]))
    target = options[0] if len(options) == 1 else sub
    description = sub.get("description", "")
    merged = {**sub, **target}
    constraints = ", ".join(f"{k} {json.dumps(merged[k])}" if k != "const"
                            else f"= {json.dumps(merged[k])}"
                            for k in CONSTRAINTS if k in merged)
    suffix = " or null" if nullable else ""
    ref = target.get("$ref")
    if isinstance(ref, str):
        name = _name(ref)
        referenced = schemas[name]
        if "enum" in referenced:
            return [FieldRow(path, f"{name}{suffix}", name, required, constraints,
                             description or referenced.get("description", ""))]
        head = FieldRow(path, f"object {name}{suffix}", None, required, constraints,
                        description or _first(referenced.get("description", "")))
        return [head, *field_rows(referenced, schemas, f"{path}.", True, depth + 1)]
    if target.get("type") == "array":
        items = target.get("items", {})
        head = FieldRow(path, f"array{suffix}", None, required, constraints, description)
        item_rows = _rows_of(f"{path}[]", items, schemas, True, depth + 1)
        return [head, *item_rows]
    if len(options) > 1:
        kinds = " or ".join(_name(o["$ref"]) if "$ref" in o else str(o.get("type", "any"))
                            for o in options)
        return [FieldRow(path, kinds + suffix, None, required, constraints, description)]
    kind = target.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    return [FieldRow(path, f"{kind}{suffix}", None, required, constraints, description)]


def _first(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def message_fields(message: Mapping[str, Any], schemas: Mapping[str, Any]) -> list[FieldRow]:
    """The fields of a message of the document: an envelope's fields then its payload's
    (``payload.``), or the fields of a payload that is a schema of its own."""
    payload = message.get("payload", {})
    if "allOf" in payload:  # an envelope whose payload is a contract
        envelope = schemas[_name(payload["allOf"][0]["$ref"])]
        body = _name(payload["properties"]["payload"]["$ref"])
        rows = [r for r in field_rows(envelope, schemas) if r.path != "payload"]
        rows = [FieldRow(r.path, r.type, r.table, r.required,
                         "= " + json.dumps(payload["properties"]["message_type"]["const"])
                         if r.path == "message_type" else r.constraints, r.description)
                for r in rows]
        rows.append(FieldRow("payload", f"object {body}", None, True, "",
                             _first(schemas[body].get("description", ""))))
        return rows + field_rows(schemas[body], schemas, "payload.")
    if "$ref" in payload:
        return field_rows(schemas[_name(payload["$ref"])], schemas)
    return field_rows(payload, schemas)


def inline_markdown(text: str) -> markupsafe.Markup:
    """``text`` escaped for HTML, with its Markdown code spans (`x`) as ``<code>`` and its
    strong spans (**x**) as ``<b>``: what the document's descriptions use."""
    escaped = str(markupsafe.escape(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return markupsafe.Markup(re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("shared.contracts", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    environment.filters["md"] = inline_markdown
    return environment


def render_page(document: Mapping[str, Any], document_url: str) -> str:
    """The HTML page of ``document`` (an AsyncAPI 3.0.0 document as
    ``shared.contracts.asyncapi.document`` writes it); ``document_url`` is where the
    page links the document itself."""
    components = document["components"]
    schemas = components["schemas"]
    messages = {name: {"message": message, "fields": message_fields(message, schemas)}
                for name, message in sorted(components["messages"].items())}
    last = lambda ref: ref["$ref"].rsplit("/", 1)[1]  # noqa: E731
    return _environment().get_template("asyncapi.html.j2").render(
        doc=document, messages=messages, last=last, document_url=document_url,
        tables=document.get("x-code-tables", {}),
        response_codes=document.get("x-response-codes", {}))
