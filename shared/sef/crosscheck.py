"""The ITL's cross-check of a submitted SEF report: every cell the Party reports against
the cell the ITL computes for the same Party, period and year from its own transaction
log and notices (``shared.sef.tables.compute_report``); protocol.md 6."""

from __future__ import annotations

from typing import Any

from shared.sef.tables import Report


def differences(submitted: Report, own: Report) -> list[dict[str, Any]]:
    """Every (table, row, column) whose value differs, or that only one side has:
    ``{table, row, column, reported, itl}`` (``None`` where a side has no such cell), in
    the ITL report's order of tables and rows, then what only the submission has."""
    reported, computed = submitted.cells(), own.cells()
    out = []
    for key, value in computed.items():
        if reported.get(key) != value:
            out.append(_line(key, reported.get(key), value))
    for key, value in reported.items():
        if key not in computed:
            out.append(_line(key, value, None))
    return out


def _line(key: tuple[str, str, str], reported: int | None, itl: int | None) -> dict[str, Any]:
    table, row, column = key
    return {"table": table, "row": row, "column": column, "reported": reported, "itl": itl}
