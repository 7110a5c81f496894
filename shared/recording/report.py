"""What a comparison of two runs says to people: text for the terminal (``diff_text``)
and an HTML page (``html_report``, template ``templates/report.html.j2``) with the two
flows of each divergent transaction side by side, the divergent step highlighted, the
summary and the differences in the books when a replay produced them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.recording.compare import Comparison, Divergence, Step

TEMPLATES = Path(__file__).parent / "templates"
#: Steps shown before a divergence in the terminal.
CONTEXT_STEPS = 3


@dataclass
class Row:
    n: int
    recorded: Step | None
    replayed: Step | None


@dataclass
class DivergentFlow:
    key: str
    index: int
    fields: str
    rows: list[Row]
    #: field by field, with both values (``Step.changes``)
    changes: list[str] = field(default_factory=list)


def _divergent(comparison: Comparison, recorded: Mapping[str, list[Step]],
               replayed: Mapping[str, list[Step]]) -> list[DivergentFlow]:
    result = []
    for divergence in comparison.divergences:
        mine, theirs = recorded[divergence.flow], replayed[divergence.flow]
        rows = [Row(n, a, b) for n, (a, b) in enumerate(zip_longest(mine, theirs))]
        fields, changes = "", []
        if divergence.recorded is not None and divergence.replayed is not None:
            fields = ", ".join(divergence.recorded.differences(divergence.replayed))
            changes = divergence.recorded.changes(divergence.replayed)
        result.append(DivergentFlow(divergence.flow, divergence.index, fields, rows,
                                    changes))
    return result


def divergence_text(divergence: Divergence, recorded: list[Step],
                    context: int = CONTEXT_STEPS) -> list[str]:
    """The lines of one divergence: the steps before it both runs share, then the
    recorded and the replayed step where they part."""
    lines = [f"flow {divergence.flow}: first divergence at step {divergence.index + 1}"]
    start = max(0, divergence.index - context)
    for n in range(start, divergence.index):
        lines.append(f"    {n + 1:>3}. {recorded[n].label()}")
    mine = divergence.recorded.label() if divergence.recorded else "(no step)"
    theirs = divergence.replayed.label() if divergence.replayed else "(no step)"
    lines.append(f"  - {divergence.index + 1:>3}. recorded: {mine}")
    lines.append(f"  + {divergence.index + 1:>3}. replayed: {theirs}")
    if divergence.recorded is not None and divergence.replayed is not None:
        lines.append("         differs in: "
                     + ", ".join(divergence.recorded.differences(divergence.replayed)))
        lines += [f"           {change}"
                  for change in divergence.recorded.changes(divergence.replayed)]
    return lines


def diff_text(comparison: Comparison, recorded: Mapping[str, list[Step]]) -> str:
    """Every divergence (``divergence_text``), then the summary."""
    lines: list[str] = []
    for divergence in comparison.divergences:
        lines += divergence_text(divergence, recorded[divergence.flow])
    lines.append(comparison.summary())
    return "\n".join(lines)


def html_report(comparison: Comparison, recorded: Mapping[str, list[Step]],
                replayed: Mapping[str, list[Step]], *, title: str,
                recorded_name: str, replayed_name: str, summary: str | None = None,
                book_differences: list[str] | None = None) -> str:
    """The HTML page of a comparison (see the module); ``summary`` replaces the
    comparison's own (a replay's adds the books and waits)."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html", "j2"]))
    return environment.get_template("report.html.j2").render(
        title=title, recorded_name=recorded_name, replayed_name=replayed_name,
        identical=comparison.identical and not book_differences,
        summary=summary or comparison.summary(), book_differences=book_differences,
        divergent=_divergent(comparison, recorded, replayed),
        only_in_recorded=comparison.only_in_recorded,
        only_in_replayed=comparison.only_in_replayed)
