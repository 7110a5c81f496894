"""The error answers every service's HTTP API gives, one shape per kind, and their place
in the OpenAPI description (found by fuzzing the APIs against their descriptions,
docs/adr/0020).

- 422, input that does not validate: FastAPI's ``HTTPValidationError``, a list of errors
  each naming its field by ``loc`` (``["query", "operation"]``). Checks a handler makes
  itself raise ``invalid_input``, which gives the same shape, never a bare text;
- 422, a refusal by a rule of the Rules or the protocol: ``Refusal`` (``detail`` and the
  ``response_code``), from ``shared.errors.RuleViolation``;
- 400, a body that cannot be read at all (not UTF-8, not JSON in a way the parser cannot
  place): ``Message``;
- 404, what a path names does not exist (``shared.errors.NotFound``): ``Message``.

``document_errors`` makes every operation's description say so: a 422 answer of either
shape wherever the operation takes input, a 400 wherever it takes a body, a 404
wherever its path names something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


class Refusal(BaseModel):
    """A refusal by a rule: the reason and the protocol's response code (when it has
    one: a refusal of the operator API's own checks may have none)."""

    detail: str
    response_code: int | None = Field(default=None, description="protocol.md response code")


class Message(BaseModel):
    """An error answer with only a reason."""

    detail: str


def invalid_input(loc: Sequence[str | int], message: str, value: Any = None
                  ) -> RequestValidationError:
    """A 422 naming the field ``loc`` (``("query", "operation")``, ``("body", "to")``,
    ``("path", "code")``) with ``message``, in the shape FastAPI gives its own
    validation errors (``HTTPValidationError``); raise it from a handler."""
    return RequestValidationError([{
        "type": "value_error", "loc": tuple(loc), "msg": message, "input": value}])


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _add_answer(responses: dict[str, Any], status: str, description: str,
                schema: dict[str, Any]) -> None:
    """Let ``responses`` say that ``status`` may be answered with ``schema`` too (beside
    what it already says about that status)."""
    present = responses.get(status)
    if present is None:
        responses[status] = {"description": description,
                             "content": {"application/json": {"schema": schema}}}
        return
    content = present.setdefault("content", {}).setdefault("application/json", {})
    known = content.get("schema")
    if known is None:
        content["schema"] = schema
    elif known != schema and schema not in known.get("anyOf", []):
        content["schema"] = {"anyOf": [known, schema]}


def document_errors(app: FastAPI) -> None:
    """Describe the error answers of every operation of ``app`` (see the module): its
    OpenAPI description is post-processed once, when first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Refusal, Message):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")
        either: dict[str, Any] = {"anyOf": [_schema_ref(Refusal)]}
        if "HTTPValidationError" in components:
            either["anyOf"].insert(0, {"$ref": VALIDATION_ERROR})
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                takes_input = bool(operation.get("parameters") or
                                   operation.get("requestBody"))
                if takes_input or "422" in responses:
                    described = responses.get("422", {}).get("description")
                    responses["422"] = {
                        "description": described or "input that does not validate "
                        "(each field named by loc) or a refusal by a rule (response_code)",
                        "content": {"application/json": {"schema": either}}}
                if operation.get("requestBody"):
                    _add_answer(responses, "400", "the body cannot be read (not UTF-8 JSON)",
                                _schema_ref(Message))
                if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                    _add_answer(responses, "404", "what the path names does not exist",
                                _schema_ref(Message))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
