"""Walking JSON Schemas and JSON values for their numbers, for the tests that check every
number of the wire contracts and of the OpenAPI descriptions is bounded
(``shared.bounds``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Schema = dict[str, Any]


def number_nodes(node: Schema, resolve: Callable[[str], Schema],
                 where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Schema]]:
    """(path, schema) of every integer or number of a JSON Schema: property names, ``[]``
    for any item of a list, ``*`` for any key of a mapping; ``resolve`` gives the schema a
    ``$ref`` names."""
    while "$ref" in node:
        node = resolve(node["$ref"])
    if node.get("type") in ("integer", "number"):
        yield where, node
    for key in ("anyOf", "allOf", "oneOf"):
        for option in node.get(key, []):
            yield from number_nodes(option, resolve, where)
    for name, child in node.get("properties", {}).items():
        yield from number_nodes(child, resolve, (*where, name))
    if isinstance(node.get("items"), dict):
        yield from number_nodes(node["items"], resolve, (*where, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        yield from number_nodes(node["additionalProperties"], resolve, (*where, "*"))


def number_leaves(value: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths (keys and list indexes) of every number of a JSON value (not booleans)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from number_leaves(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from number_leaves(item, (*where, index))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield where


def bounds(node: Schema) -> tuple[Any, Any]:
    """The lower and upper bound a number schema states (None where it states none)."""
    return (node.get("minimum", node.get("exclusiveMinimum")),
            node.get("maximum", node.get("exclusiveMaximum")))
