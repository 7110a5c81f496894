"""The SEF report as XML (in the SEF namespace, valid against the checked-in schema
``shared/sef/schema/sef-<version>.xsd``), CSV, an HTML page with an inline SVG chart,
and back from a submitted XML or JSON report (the ITL's cross-check reads it).

XML: ``SEFSubmission`` (attribute ``version``) holds a ``Header`` (Party, year,
commitment period, moment of generation) and one ``Table`` per table (attribute
``name``: 1, 2a ... 6c) of ``Row`` elements (``name``: the row kind, a partner registry
or a year; ``kind``: row, subtotal, total, info) of ``Cell`` elements (``column``: a
unit, ``Additions/AAU``, ``AmountTransferred`` ...; content: whole units). The layout of
rows and columns follows UK-SEF's tables (protocol.md 6); the element structure is ours
(docs/adr/0031): one cell per (table, row, column), which is what the ITL compares.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

import jinja2

if TYPE_CHECKING:
    import xmlschema

from shared.sef.tables import (
    NAMESPACE,
    TABLES,
    UNITS,
    Report,
    Row,
    Table,
    holding_rows,
    report_to_json,
    title_of,
)

SCHEMA_FILES = {1: "sef-1.0.xsd", 2: "sef-2.0.xsd"}
PERIOD_OF_NAMESPACE = {ns: period for period, ns in NAMESPACE.items()}


class SefFormatError(ValueError):
    """A submitted report that is not a SEF report: ``where`` names the place (an XML
    path, a JSON field), the message what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.reason = message


# --- XML ---


def to_xml(report: Report) -> bytes:
    """The report as SEF XML (UTF-8, with declaration)."""
    ns = report.namespace
    ET.register_namespace("", ns)

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    root = ET.Element(q("SEFSubmission"), {"version": report.version})
    header = ET.SubElement(root, q("Header"))
    for tag, value in (("Party", report.party), ("SubmissionYear", str(report.year)),
                       ("CommitmentPeriod", str(report.period)),
                       ("GeneratedAt", report.generated_at.isoformat())):
        ET.SubElement(header, q(tag)).text = value
    for table in report.tables:
        element = ET.SubElement(root, q("Table"), {"name": table.name})
        for row in table.rows:
            row_element = ET.SubElement(element, q("Row"), {"name": row.name, "kind": row.kind})
            for column in table.columns:
                cell = ET.SubElement(row_element, q("Cell"), {"column": column})
                cell.text = str(row.cells.get(column, 0))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


@cache
def schema(period: int) -> xmlschema.XMLSchema:
    """The checked-in XSD of the SEF version of ``period``. ``xmlschema`` is imported
    here, not with the module: it adds a fifth to every service's start-up, and only a
    SEF validation needs it."""
    import xmlschema

    source = resources.files("shared.sef").joinpath("schema", SCHEMA_FILES[period])
    with resources.as_file(source) as path:
        return xmlschema.XMLSchema(str(path))


def validate_xml(data: bytes) -> int:
    """Check ``data`` against the XSD of its namespace; the commitment period it is for.
    Raises ``SefFormatError`` naming the path and reason of the first error."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SefFormatError("document", f"not well-formed XML ({exc})") from exc
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if namespace not in PERIOD_OF_NAMESPACE:
        raise SefFormatError("SEFSubmission", f"namespace {namespace!r} is not a SEF "
                                              f"namespace ({', '.join(NAMESPACE.values())})")
    period = PERIOD_OF_NAMESPACE[namespace]
    errors = list(schema(period).iter_errors(data.decode("utf-8")))
    if errors:
        first = errors[0]
        raise SefFormatError(str(first.path or "document"), str(first.reason))
    return period


def from_xml(data: bytes) -> Report:
    """A report read back from SEF XML, after ``validate_xml``."""
    period = validate_xml(data)
    ns = {"s": NAMESPACE[period]}
    root = ET.fromstring(data)
    header = root.find("s:Header", ns)
    assert header is not None

    def text(tag: str) -> str:
        found = header.find(f"s:{tag}", ns)
        return (found.text or "") if found is not None else ""

    if int(text("CommitmentPeriod")) != period:
        raise SefFormatError("Header/CommitmentPeriod",
                             f"period {text('CommitmentPeriod')} in a SEF for period {period}")
    tables = []
    for element in root.findall("s:Table", ns):
        name = element.get("name", "")
        rows = [Row(r.get("name", ""),
                    {c.get("column", ""): int(c.text or 0) for c in r.findall("s:Cell", ns)},
                    r.get("kind", "row")) for r in element.findall("s:Row", ns)]
        columns = tuple(rows[0].cells) if rows else UNITS
        tables.append(Table(name, title_of(name, period), columns, rows))
    return Report(text("Party"), period, int(text("SubmissionYear")),
                  datetime.fromisoformat(text("GeneratedAt")), tables)


def from_json(body: Mapping[str, Any]) -> Report:
    """A report read back from the JSON ``report_to_json`` gives. Raises
    ``SefFormatError`` naming the first field that is missing or wrong."""
    def need(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
             where: str) -> Any:
        if key not in mapping:
            raise SefFormatError(f"{where}{key}", "missing")
        value = mapping[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SefFormatError(f"{where}{key}", f"must be {getattr(kind, '__name__', kind)}, "
                                                  f"not {type(value).__name__}")
        return value

    if not isinstance(body, Mapping):
        raise SefFormatError("body", "must be a JSON object")
    period = need(body, "commitment_period", int, "")
    if period not in NAMESPACE:
        raise SefFormatError("commitment_period", f"{period} is not 1 or 2")
    party = need(body, "party", str, "")
    year = need(body, "year", int, "")
    tables = []
    for i, t in enumerate(need(body, "tables", list, "")):
        where = f"tables[{i}]."
        if not isinstance(t, Mapping):
            raise SefFormatError(f"tables[{i}]", "must be an object")
        name = need(t, "name", str, where)
        if name not in TABLES[period]:
            raise SefFormatError(f"{where}name", f"{name!r} is not a table of SEF "
                                                 f"{'2.0' if period == 2 else '1.0'}")
        rows = []
        for j, r in enumerate(need(t, "rows", list, where)):
            at = f"{where}rows[{j}]."
            if not isinstance(r, Mapping):
                raise SefFormatError(at[:-1], "must be an object")
            cells = need(r, "cells", dict, at)
            for column, value in cells.items():
                if not isinstance(value, int) or isinstance(value, bool):
                    raise SefFormatError(f"{at}cells.{column}", "must be a whole number")
            rows.append(Row(need(r, "name", str, at), dict(cells), str(r.get("kind", "row"))))
        tables.append(Table(name, title_of(name, period),
                            tuple(t.get("columns") or (rows[0].cells if rows else UNITS)),
                            rows))
    generated = body.get("generated_at")
    return Report(party, period, year,
                  datetime.fromisoformat(generated) if isinstance(generated, str)
                  else datetime.min, tables)


# --- CSV ---


def to_csv(report: Report) -> str:
    """The report as CSV, one line per cell: party, commitment period, year, table,
    row, kind, column, units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["party", "commitment_period", "year", "table", "row", "kind", "column",
                     "units"])
    for table in report.tables:
        for row in table.rows:
            for column in table.columns:
                writer.writerow([report.party, report.period, report.year, table.name,
                                 row.name, row.kind, column, row.cells.get(column, 0)])
    return out.getvalue()


# --- HTML with an SVG chart ---

#: Colours of the account-type rows and of additions/subtractions in the chart.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#3182bd", "#e6550d", "#31a354")


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def chart_svg(report: Report) -> str:
    """An inline SVG: for each unit type, the holdings at the start (S) and end (E) of
    the year as bars stacked by account-type row (tables 1 and 4), and beside them the
    year's flows (rows of tables 2a, 2b and, in SEF 2.0, 2c: additions to the right,
    subtractions to the left). Our own small
    drawing code, so the registry needs no plotting library at run time (docs/adr/0031)."""
    t1, t4 = report.table("1"), report.table("4")
    rows = [r.name for r in t1.rows if r.kind == "row"]
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(rows)}
    width, height, top, base_h = 900, 420, 30, 300
    biggest = max([1] + [sum(t.row(r).cells[u] for r in rows) for t in (t1, t4)
                         for u in UNITS])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="holdings and flows {report.party} {report.year}">',
             '<style>text{font:11px sans-serif}</style>',
             f'<text x="10" y="16">Holdings by unit type and account type, start (S) and '
             f'end (E) of {report.year}; largest bar {biggest} units</text>']
    slot = 55
    for i, unit in enumerate(UNITS):
        for j, (label, table) in enumerate((("S", t1), ("E", t4))):
            x = 20 + i * slot + j * 22
            y = float(top + base_h)
            for name in rows:
                units = table.row(name).cells[unit]
                if units <= 0:
                    continue
                h = max(1.0, units / biggest * base_h)
                y -= h
                parts.append(f'<rect x="{x}" y="{y:.1f}" width="18" height="{h:.1f}" '
                             f'fill="{colour[name]}"><title>{_escape(name)} {unit} '
                             f'{label}: {units}</title></rect>')
            parts.append(f'<text x="{x + 4}" y="{top + base_h + 12}">{label}</text>')
        parts.append(f'<text x="{20 + i * slot + 8}" y="{top + base_h + 26}">{unit}</text>')
    # flows: net additions and subtractions of the year per flow row
    flow_tables = ("2a", "2b", "2c") if report.period == 2 else ("2a", "2b")  # 1.0: 2c totals
    flows = [(f"{t.name} {r.name}", r) for t in report.tables if t.name in flow_tables
             for r in t.rows if r.kind == "row" and any(r.cells.values())]
    fx = 380
    parts.append(f'<text x="{fx}" y="{top}">Flows of the year (additions right, '
                 f'subtractions left)</text>')
    def side_total(row: Row, side: str) -> int:
        return sum(row.cells.get(f"{side}/{u}", 0) for u in UNITS)

    largest = max([1] + [side_total(r, side) for _, r in flows
                         for side in ("Additions", "Subtractions")])
    centre, half = 740.0, 145.0  # the bars right of the labels (x 380-585)
    parts.append(f'<line x1="{centre}" y1="{top + 8}" x2="{centre}" '
                 f'y2="{top + 14 + 15 * min(len(flows), 24)}" stroke="#888"/>')
    for k, (label, row) in enumerate(flows[:24]):
        y = top + 12 + k * 15
        parts.append(f'<text x="{fx}" y="{y + 9}">{_escape(label[:34])}</text>')
        for side, sign, fill in (("Additions", 1, "#2ca02c"), ("Subtractions", -1, "#d62728")):
            units = side_total(row, side)
            if units:
                w = max(1.0, units / largest * half)
                bar_x = centre if sign > 0 else centre - w
                parts.append(f'<rect x="{bar_x:.1f}" y="{y}" width="{w:.1f}" height="11" '
                             f'fill="{fill}"><title>{_escape(label)} {side}: {units}'
                             f'</title></rect>')
    if not flows:
        parts.append(f'<text x="{fx}" y="{top + 21}">none: no units added or subtracted</text>')
    used = [name for name in rows if any(t.row(name).cells[u] for t in (t1, t4) for u in UNITS)]
    legend_y = height - 40
    for i, name in enumerate(used):
        x = 10 + (i % 4) * 222
        y = legend_y + (i // 4) * 12
        parts.append(f'<rect x="{x}" y="{y}" width="8" height="8" fill="{colour[name]}"/>'
                     f'<text x="{x + 11}" y="{y + 8}">{_escape(name[:34])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("shared.sef", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    return environment.get_template("report.html.j2")


def to_html(report: Report) -> str:
    """The report as one HTML page a person can read: the header, the holdings-and-flows
    chart, every table, the balance check and the lists."""
    return _template().render(report=report, json_report=report_to_json(report),
                              chart=chart_svg(report), holding_rows=holding_rows(report.period))


def to_json_text(report: Report) -> str:
    return json.dumps(report_to_json(report), indent=1)
