"""The conformance plan's results: one record per scenario (test number, verdict,
evidence, the message flows of its transactions) and the HTML report written from them
with jinja2 (autoescaped); the JUnit XML is pytest's own (``--junitxml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

NUMBER = re.compile(r"H-(\d{3})")


@dataclass
class ScenarioResult:
    """A scenario's outcome: its Annex H style number (``H-401``), name, feature file and
    line, verdict (passed, failed, error), real seconds, the failing step and message,
    the evidence lines and each transaction's Mermaid sequence diagram."""

    number: str
    name: str
    feature: str
    verdict: str
    seconds: float
    failed_step: str = ""
    message: str = ""
    evidence: list[str] = field(default_factory=list)
    diagrams: dict[str, str] = field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[int, str]:
        found = NUMBER.fullmatch(self.number)
        return (int(found.group(1)) if found else 10_000, self.name)


#: The plan's categories by the hundreds and tens of their numbers (README: "The
#: conformance plan").
CATEGORIES: list[tuple[int, int, str]] = [
    (100, 119, "Connectivity"), (120, 149, "Information retrieval"),
    (200, 219, "Issuance"), (220, 239, "Conversion"), (240, 259, "Internal transfer"),
    (260, 289, "External transfer"), (300, 319, "Cancellation"), (320, 339, "Retirement"),
    (340, 359, "Carry-over"), (360, 379, "Replacement"),
    (380, 399, "Expiry date change"), (400, 429, "Notices"), (430, 459, "Time-outs"),
    (460, 489, "Reconciliation"), (490, 499, "Faults and recovery")]


def category(number: str) -> str:
    """The plan category of a test number (``H-261`` -> External transfer)."""
    found = NUMBER.fullmatch(number)
    if found:
        value = int(found.group(1))
        for low, high, name in CATEGORIES:
            if low <= value <= high:
                return name
    return "Unnumbered"


def write_html(results: list[ScenarioResult], path: Path, seconds: float,
               stack: str) -> None:
    """Write the HTML report: a summary per category, then each scenario with its
    verdict, evidence and sequence diagrams (rendered by Mermaid in the browser)."""
    environment = Environment(loader=PackageLoader("conformance", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    ordered = sorted(results, key=lambda r: r.sort_key)
    summary: dict[str, dict[str, int]] = {}
    for result in ordered:
        row = summary.setdefault(category(result.number),
                                 {"passed": 0, "failed": 0, "skipped": 0})
        row[result.verdict if result.verdict in row else "failed"] += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(environment.get_template("report.html.j2").render(
        results=ordered, summary=summary, seconds=seconds, stack=stack,
        category=category, written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        passed=sum(r.verdict == "passed" for r in ordered), total=len(ordered)))
