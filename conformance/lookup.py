"""The check of a plan's steps against the step library before anything runs: an unknown
step is named with its file, line and the nearest known steps."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import parse

from conformance.steps import LIBRARY, TYPES, LibraryStep

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
#: What a step's text has where a pattern has a placeholder: quoted names, quantities,
#: unit types, registry codes, moments.
_VALUES = re.compile(r'"[^"]*"|\d{4}-\d{2}-\d{2}\S*|\d[\d ,]*\d|\d|'
                     r"\b(?:AAU|RMU|ERU_FROM_AAU|ERU_FROM_RMU|CER|TCER|LCER)\b|\b[A-Z]{2,3}\b")


@dataclass(frozen=True)
class UnknownStep:
    """A step of a feature file no step of the library matches."""

    filename: str
    line: int
    keyword: str
    text: str
    nearest: tuple[str, ...]

    def __str__(self) -> str:
        near = "".join(f"\n      {n}" for n in self.nearest) or " (none close)"
        return (f"{self.filename}:{self.line}: unknown step '{self.keyword} {self.text}'"
                f"\n    nearest known steps:{near}")


_COMPILED: dict[str, parse.Parser] = {}


def matches(step: LibraryStep, text: str) -> bool:
    """Whether a library step's pattern matches a step's text exactly."""
    parser = _COMPILED.get(step.pattern)
    if parser is None:
        parser = _COMPILED[step.pattern] = parse.compile(step.pattern, extra_types=TYPES)
    return parser.parse(text) is not None


def _shape(text: str, pattern: bool) -> str:
    return _PLACEHOLDER.sub("_", text) if pattern else _VALUES.sub("_", text)


def nearest(keyword: str, text: str, count: int = 3) -> tuple[str, ...]:
    """The library's steps nearest to ``text`` (difflib over the patterns with their
    placeholders and the text with its values both reduced to ``_``), those of the same
    keyword first."""
    shapes = {s.display: _shape(s.pattern, True) for s in LIBRARY}
    ranked = sorted(shapes, key=lambda k: -difflib.SequenceMatcher(
        None, _shape(text, False).lower(), shapes[k].lower()).ratio()
        - (0.1 if k.startswith(keyword) else 0.0))
    return tuple(ranked[:count])


def check(filename: str, line: int, keyword: str, text: str) -> UnknownStep | None:
    """None when a library step of ``keyword`` (given, when, then) matches ``text``, else
    what to tell the scenario's writer."""
    kind = keyword.capitalize()
    if any(s.keyword == kind and matches(s, text) for s in LIBRARY):
        return None
    return UnknownStep(filename, line, kind, text, nearest(kind, text))
