"""The check of a plan's steps against the step library before anything runs: an unknown
step is named with its file, line and the nearest known steps."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import parse

from conformance.steps import LIBRARY, TYPES, LibraryStep
from conformance.steps.library import GROUP_SEPARATORS, TYPE_HELP

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
#: What a step's text has where a pattern has a placeholder: quoted names, quantities,
#: unit types, registry codes, moments.
_VALUES = re.compile(r'"[^"]*"|\d{4}-\d{2}-\d{2}\S*|\d[\d ,.\'\u00a0\u2009\u202f]*\d|\d|'
                     r"\b(?:AAU|RMU|ERU_FROM_AAU|ERU_FROM_RMU|CER|TCER|LCER)\b|\b[A-Z]{2,3}\b")


@dataclass(frozen=True)
class UnknownStep:
    """A step of a feature file no step of the library matches."""

    filename: str
    line: int
    keyword: str
    text: str
    nearest: tuple[str, ...]
    #: Why the nearest step of the same words does not match: the value that does not
    #: fit its place (``'1.000' is not <quantity>: ...``); empty when the words differ.
    hint: str = ""

    def __str__(self) -> str:
        near = "".join(f"\n      {n}" for n in self.nearest) or " (none close)"
        hint = f"\n    {self.hint}" if self.hint else ""
        return (f"{self.filename}:{self.line}: unknown step '{self.keyword} {self.text}'"
                f"{hint}\n    nearest known steps:{near}")


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


#: What a value of a kind may look like where it is wrong: a number with any separators
#: for a quantity, one word for the other kinds; anything for a placeholder without one.
_LOOSE = {"Quantity": r"\d[\d\s,.'_]*\d|\d|\S+"}
_WORD = r"\S+"
_PART = re.compile(r"(\{[^}]*\})")


def misfit(step: LibraryStep, text: str) -> str:
    """Why ``text``, which has the words of ``step``, does not match it: the first value
    that does not fit its placeholder's kind (``TYPE_HELP``), or ``""`` when the words
    themselves differ."""
    pattern, kinds = "", []
    for part in _PART.split(step.pattern):
        if _PART.fullmatch(part):
            name, _, kind = part[1:-1].partition(":")
            kinds.append((name, kind))
            pattern += "(" + (_LOOSE.get(kind, _WORD) if kind else ".+?") + ")"
        else:
            pattern += re.escape(part)
    found = re.fullmatch(pattern, text, re.IGNORECASE)
    if found is None:
        return ""
    for (name, kind), value in zip(kinds, found.groups(), strict=True):
        if not kind or kind not in TYPE_HELP:
            continue
        shape = r"\d+" if kind == "d" else TYPES[kind].pattern  # type: ignore[attr-defined]
        if not re.fullmatch(shape, value, re.IGNORECASE):
            separators = "".join(sorted({c for c in value if not c.isalnum()}
                                        - set(GROUP_SEPARATORS)))
            odd = f" (it has {separators!r})" if kind == "Quantity" and separators else ""
            return f"{value!r} is not <{name}>{odd}: <{name}> is {TYPE_HELP[kind]}"
    return ""


def check(filename: str, line: int, keyword: str, text: str) -> UnknownStep | None:
    """None when a library step of ``keyword`` (given, when, then) matches ``text``, else
    what to tell the scenario's writer: the nearest steps and, when the text has the
    words of one of them, which value does not fit."""
    kind = keyword.capitalize()
    if any(s.keyword == kind and matches(s, text) for s in LIBRARY):
        return None
    hint = next((h for s in LIBRARY if s.keyword == kind and (h := misfit(s, text))), "")
    return UnknownStep(filename, line, kind, text, nearest(kind, text), hint)


_KEYWORDS = ("Given", "When", "Then", "And", "But")


def check_scenario(filename: str, line: int, name: str, description: str,
                   steps: int) -> list[str]:
    """What to tell the writer of a scenario that cannot test anything: one without
    steps of its own (it would pass), and a line of its description (the text between
    ``Scenario:`` and the first step, which Gherkin does not run) that is a step of the
    library after a word like a keyword (``Wehn``: a misspelt keyword)."""
    problems = []
    for number, text in enumerate(description.splitlines(), start=line + 1):
        first, _, rest = text.strip().partition(" ")
        close = difflib.get_close_matches(first.capitalize(), _KEYWORDS, n=1, cutoff=0.6)
        # a step of the library after a word like a keyword: not prose
        if close and any(matches(s, rest.strip()) for s in LIBRARY):
            problems.append(f"{filename}:{number}: '{text.strip()}' is no step but a line "
                            f"of the description of scenario '{name}': a step starts "
                            f"with Given, When, Then, And or But ({close[0]}?)")
    if steps == 0:
        problems.append(f"{filename}:{line}: scenario '{name}' has no steps, so it would "
                        "pass without testing anything")
    return problems
