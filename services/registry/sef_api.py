"""The registry's annual Standard Electronic Format (SEF) report (protocol.md 6), for the
operator and the authorised body: computed on request from the registry's own stored
transactions (their blocks, types, accounts and completion times) and ITL notices,
never from counters kept on the side (``shared.sef``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pymongo import ASCENDING

from services.registry.api import REGISTRY_READERS, service_of
from services.registry.store import RegistryStore
from shared.api_errors import invalid_input
from shared.sef import render
from shared.sef.tables import (
    Report,
    ReportYearError,
    check_report_year,
    compute_report,
    movement_of,
    notice_of,
    report_to_json,
)

router = APIRouter()


class SefFormat(StrEnum):
    JSON = "json"
    XML = "xml"
    CSV = "csv"
    HTML = "html"


MEDIA_TYPE = {SefFormat.JSON: "application/json", SefFormat.XML: "application/xml",
              SefFormat.CSV: "text/csv", SefFormat.HTML: "text/html"}

SEF_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the report in the format asked for",
          "content": {"application/json": {"schema": {"type": "object"}},
                      "application/xml": {"schema": {"type": "string"}},
                      "text/csv": {"schema": {"type": "string"}},
                      "text/html": {"schema": {"type": "string"}}}},
}


async def opened_on(store: RegistryStore) -> date | None:
    """The day the registry existed from: its earliest record, the first of the moment
    its Party holding account was made (at start-up) and its first transaction (a
    simulation clock set back before the start-up, as the demo does, counts from
    there). Reads one account by number and the first entry of the ``created_at``
    index of transactions."""
    moments = []
    account = await store.db.accounts.find_one({"account_id": 1})
    if account and isinstance(account.get("created_at"), datetime):
        moments.append(account["created_at"])
    first = await store.db.transactions.find_one({}, sort=[("created_at", ASCENDING)])
    if first and isinstance(first.get("created_at"), datetime):
        moments.append(first["created_at"])
    return min(m.replace(tzinfo=m.tzinfo or UTC) for m in moments).date() if moments else None


async def build_report(store: RegistryStore, period: int, year: int,
                       now: datetime) -> Report:
    """The report of this registry's Party for ``year`` of ``period`` as of ``now``:
    the transactions made before the end of the year (by ``created_at``, indexed; those
    completed within it count) and the notices received (``shared.sef.tables``)."""
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    docs = await store.db.transactions.find({"created_at": {"$lt": end}}).to_list()
    notices = await store.notices()
    return compute_report(store.code, period, year, [movement_of(d) for d in docs],
                          [notice_of(n) for n in notices], now)


def rendered(report: Report, fmt: SefFormat) -> Response:
    """The report as ``fmt``: JSON (``report_to_json``), SEF XML, CSV or HTML."""
    name = f"sef-{report.party}-cp{report.period}-{report.year}"
    if fmt == SefFormat.XML:
        return Response(render.to_xml(report), media_type=MEDIA_TYPE[fmt],
                        headers={"Content-Disposition": f'inline; filename="{name}.xml"'})
    if fmt == SefFormat.CSV:
        return PlainTextResponse(render.to_csv(report), media_type=MEDIA_TYPE[fmt],
                                 headers={"Content-Disposition":
                                          f'attachment; filename="{name}.csv"'})
    if fmt == SefFormat.HTML:
        return HTMLResponse(render.to_html(report))
    return JSONResponse(report_to_json(report))


@router.get("/sef/{period}/{year}", tags=["reports"], dependencies=REGISTRY_READERS,
            response_class=Response, responses=SEF_RESPONSES)
async def sef_report(
    request: Request,
    period: Annotated[int, Path(ge=-(2**31), le=2**31, description="commitment period: "
                                "1 (SEF 1.0) or 2 (SEF 2.0)", examples=[2])],
    year: Annotated[int, Path(ge=-(2**31), le=2**31, description="the reported calendar "
                              "year", examples=[2016])],
    format: Annotated[SefFormat, Query(description="json (default), xml (SEF namespace, "
                                       "valid against shared/sef/schema), csv or html")
                      ] = SefFormat.JSON,
) -> Response:
    """The Party's SEF report for ``year`` of commitment period ``period`` (protocol.md
    6.1 SEF 1.0 for period 1, 6.2 SEF 2.0 for period 2), from the registry's stored
    transactions completed up to the end of the year and its ITL notices.

    Shape (``format=json``): ``{version, namespace, party, commitment_period, year,
    generated_at, tables: [{name, title, columns, rows: [{name, kind, cells: {column:
    units}}]}], discrepant_transactions: [{transaction_id, transaction_type, ended_at,
    status, response_codes, messages}], notices: [{notice_id, notice_type, status,
    issued_at, target_value, fulfilled_quantity, difference}], invalid_units:
    [{account_type, account_id, unit_type, expiry_date, quantity}], balance: [{unit,
    start, moved, end, difference}]}``; units are whole units (t CO2 eq). Tables 1 and 4:
    holdings by account-type row and unit at the start and end of the year; 2a-2e the
    year's transactions; 3 expiry and replacement; 5a-5e the period so far; 6a-6c memo
    items (none). Row choices where protocol.md marks them unverified: docs/adr/0031.
    ``xml``: the SEF XML; ``csv``: one line per cell; ``html``: a page with a chart of
    holdings and flows.

    422 naming the field: ``period`` other than 1 or 2; ``year`` outside the period's
    reporting years (its first year to the end of the following period), before the
    registry existed, or not yet begun on the simulation clock. The operator and the
    authorised body read it (403 otherwise)."""
    service = service_of(request)
    now = service.runtime.clock.now()
    try:
        check_report_year(period, year, await opened_on(service.store), now.date())
    except ReportYearError as exc:
        raise invalid_input(("path", exc.field), str(exc), period if exc.field == "period"
                            else year) from exc
    return rendered(await build_report(service.store, period, year, now), format)
