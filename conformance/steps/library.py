"""The step library's machinery: the value types of its patterns, ``LIBRARY`` (every
step with its pattern, family and docstring) and the helpers several families use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import parse
from pytest_bdd import given, parsers, then, when

from conformance.world import ScenarioError, World

F = TypeVar("F", bound=Callable[..., Any])


#: What groups the digits of a quantity: a space (also the no-break and thin spaces a
#: copied number may carry) or a comma.
GROUP_SEPARATORS = " ,\u00a0\u2009\u202f"


@parse.with_pattern(rf"\d{{1,3}}(?:[{GROUP_SEPARATORS}]\d{{3}})+|\d+")
def _quantity(text: str) -> int:
    return int("".join(c for c in text if c not in GROUP_SEPARATORS))


# parse matches case-insensitively: a unit type, registry code or status written in
# small letters ("aau", "kz") is the one in capitals, as the APIs name it
@parse.with_pattern(r"AAU|RMU|ERU_FROM_AAU|ERU_FROM_RMU|CER|TCER|LCER")
def _unit(text: str) -> str:
    return text.upper()


@parse.with_pattern(r"[A-Z]{2,3}")
def _registry(text: str) -> str:
    return text.upper()


@parse.with_pattern(r"[A-Z_]+")
def _status(text: str) -> str:
    return text.upper()


@parse.with_pattern(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:\d{2}|Z)?)?")
def _moment(text: str) -> str:
    return text


TYPES: dict[str, Callable[[str], Any]] = {
    "Quantity": _quantity, "Unit": _unit, "Registry": _registry, "Status": _status,
    "Moment": _moment}

#: What a value of each type of the patterns looks like, for the tester: said when a
#: step's value does not fit its place (``lookup``) or a table's cell its column.
TYPE_HELP: dict[str, str] = {
    "Quantity": "a whole number of units, its digits grouped in threes by spaces or "
                "commas if at all (600000, 600 000, 600,000)",
    "Unit": "a unit type: AAU, RMU, ERU_FROM_AAU, ERU_FROM_RMU, CER, TCER or LCER",
    "Registry": "a registry's code of two or three capital letters (KZ, CH, CDM)",
    "Status": "a status name in capitals (COMPLETED, TERMINATED, ...)",
    "Moment": "a day or an ISO time, UTC (2013-01-15, 2013-01-15T12:00Z)",
    "d": "a whole number (2)",
}


def cell(step: str, column: str, value: str, kind: str, what: str = "column") -> Any:
    """A table cell's value as a ``kind`` of ``TYPES`` (``d``: a whole number), e.g. a
    grouped quantity (``1 000``) as 1000; a ``ScenarioError`` naming the step, the
    column, the value and what it should look like when it does not fit."""
    text = value.strip()
    if kind == "d":
        if re.fullmatch(r"\d+", text):
            return int(text)
    else:
        convert = TYPES[kind]
        if re.fullmatch(convert.pattern, text, re.IGNORECASE):  # type: ignore[attr-defined]
            return convert(text)
    raise ScenarioError(f"{step}: {what} {column!r} has {text!r}, which is not "
                        f"{TYPE_HELP[kind]}")


_PLACEHOLDER = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class LibraryStep:
    """One step of the library: its keyword, pattern, family and docstring."""

    keyword: str
    pattern: str
    family: str
    doc: str
    #: The module that defines it (``conformance.steps.operations``).
    module: str = ""

    @property
    def display(self) -> str:
        """The step as a tester reads it: ``When <registry> issues <quantity> AAU ...``."""
        return self.keyword + " " + _PLACEHOLDER.sub(r"<\1>", self.pattern)


LIBRARY: list[LibraryStep] = []


class Family:
    """A family of steps (one module of the library): ``FAMILY.given(pattern)`` registers
    a step with pytest-bdd, as a parse pattern with the library's types, in the module
    that applies it, and in ``LIBRARY`` under the family's name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _step(self, keyword: str, pattern: str) -> Callable[[F], F]:
        decorate = {"Given": given, "When": when, "Then": then}[keyword]

        def register(function: F) -> F:
            LIBRARY.append(LibraryStep(keyword, pattern, self.name,
                                       " ".join((function.__doc__ or "").split()),
                                       function.__module__))
            decorate(parsers.parse(pattern, extra_types=TYPES), stacklevel=2)(function)
            return function

        return register

    def given(self, pattern: str) -> Callable[[F], F]:
        return self._step("Given", pattern)

    def when(self, pattern: str) -> Callable[[F], F]:
        return self._step("When", pattern)

    def then(self, pattern: str) -> Callable[[F], F]:
        return self._step("Then", pattern)


# helpers of several families


def decision_id(world: World, reference: str) -> str:
    if reference not in world.decisions:
        raise ScenarioError(f"no decision {reference!r} in this scenario (decided: "
                            f"{', '.join(world.decisions) or 'none'})")
    return world.decisions[reference]


def notice_id(world: World, name: str) -> int:
    if name not in world.notices:
        raise ScenarioError(f"no notice {name!r} in this scenario (notices: "
                            f"{', '.join(world.notices) or 'none'})")
    return world.notices[name]


#: The kind of value (``TYPES``, ``d``) of the table columns that have one.
COLUMN_KINDS = {"quantity": "Quantity", "unit type": "Unit", "original period": "d",
                "applicable period": "d", "originating registry": "Registry"}


def table(datatable: list[list[str]], columns: set[str], step: str) -> list[dict[str, str]]:
    """The rows of a step's table as dicts by header; a missing or unknown header is a
    ``ScenarioError`` naming the step and the known columns. A cell of a column of
    ``COLUMN_KINDS`` is checked and written as the APIs write it (``1 000`` as ``1000``,
    ``aau`` as ``AAU``); one that does not fit is a ``ScenarioError`` naming the step,
    the column and the value."""
    if not datatable or len(datatable) < 2:
        raise ScenarioError(f"{step}: the table needs a header row and at least one row")
    header = [c.strip() for c in datatable[0]]
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise ScenarioError(f"{step}: unknown column(s) {', '.join(unknown)}; the columns "
                            f"are {', '.join(sorted(columns))}")
    rows = [dict(zip(header, (c.strip() for c in row), strict=True))
            for row in datatable[1:]]
    for row in rows:
        for column, value in row.items():
            if column in COLUMN_KINDS:
                row[column] = str(cell(step, column, value, COLUMN_KINDS[column]))
    return rows


def final_view(world: World) -> dict[str, Any]:
    registry, transaction_id = world.current()
    response = world.last_response()
    if response.status_code >= 300:
        raise AssertionError(f"the operation was refused before any transaction: "
                             f"{response.status_code} {response.text}")
    view: dict[str, Any] = world.client.settle(registry, transaction_id)
    line = (f"{transaction_id} in {registry.upper()}: {view['status_name']} "
            f"{view.get('response_codes') or ''}").rstrip()
    if line not in world.evidence:
        world.note(line)
    return view
