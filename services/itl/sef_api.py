"""The ITL's side of the annual Standard Electronic Format (SEF) report (protocol.md 6):
its own computation of a Party's report from its transaction log and notices, and the
cross-check of a report a Party submits against it, cell by cell (``shared.sef``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from services.itl.handlers import ItlService
from services.itl.store import ItlStore
from shared.api_errors import Message, invalid_input
from shared.sef import crosscheck, render
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

#: The largest submission read (bytes): a SEF report is a few hundred cells.
MAX_SUBMISSION_BYTES = 2_000_000


def service_of(request: Request) -> ItlService:
    service: ItlService = request.app.state.service
    return service


async def itl_report(service: ItlService, party: str, period: int, year: int) -> Report:
    """The Party's report as the ITL computes it: from the transactions the Party
    proposed (indexed by ``proposer``) and those proposed into its accounts (indexed by
    ``proposal.acquiring.registry``), and the notices the ITL issued to it."""
    store: ItlStore = service.store
    docs = {d["_id"]: d for d in await store.db.transactions.find({"proposer": party}).to_list()}
    for d in await store.db.transactions.find({"proposal.acquiring.registry": party}).to_list():
        docs[d["_id"]] = d
    notices = await store.notices(party, None)
    return compute_report(party, period, year, [movement_of(d) for d in docs.values()],
                          [notice_of(n) for n in notices], service.runtime.clock.now())


def _check(service: ItlService, party: str, period: int, year: int,
           loc: tuple[str, ...]) -> None:
    if party not in service.registries:
        name = "party" if loc[0] == "body" else "code"
        raise invalid_input((*loc, name), f"{party} is not a registry the ITL knows", party)
    try:
        check_report_year(period, year, None, service.runtime.clock.now().date())
    except ReportYearError as exc:
        field = "commitment_period" if exc.field == "period" and loc[0] == "body" else exc.field
        raise invalid_input((*loc, field), str(exc), period if exc.field == "period"
                            else year) from exc


@router.get("/sef/{code}/{period}/{year}", tags=["reports"])
async def read_itl_report(
    request: Request,
    code: Annotated[str, Path(pattern=r"^[A-Z]{2}$", description="Party code",
                              examples=["KZ"])],
    period: Annotated[int, Path(ge=-(2**31), le=2**31, description="commitment period",
                                examples=[2])],
    year: Annotated[int, Path(ge=-(2**31), le=2**31, description="reported year",
                              examples=[2016])],
) -> dict[str, Any]:
    """The Party ``code``'s SEF report for ``year`` of ``period`` as the ITL computes it from its
    transaction log (same shape as the registry's ``GET /sef/{period}/{year}``, JSON).
    422 naming the field: an unknown Party, a period other than 1 or 2, a year outside
    the period's reporting years or not yet begun."""
    service = service_of(request)
    _check(service, code, period, year, ("path",))
    return report_to_json(await itl_report(service, code, period, year))


class Difference(BaseModel):
    table: str
    row: str
    column: str
    reported: int | None = Field(description="the submitted value; null: not submitted")
    itl: int | None = Field(description="the ITL's value; null: no such cell at the ITL")


class CrossCheck(BaseModel):
    """The outcome of a cross-check: every cell that differs."""

    party: str
    commitment_period: int
    year: int
    version: str
    cells_compared: int
    consistent: bool
    differences: list[Difference]


SUBMISSION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/xml": {"schema": {"type": "string"}},
            "application/json": {"schema": {
                "type": "object", "required": ["party", "commitment_period", "year", "tables"],
                "properties": {"party": {"type": "string", "pattern": "^[A-Z]{2}$"},
                               "commitment_period": {"type": "integer", "minimum": 1,
                                                     "maximum": 2},
                               "year": {"type": "integer", "minimum": 2008,
                                        "maximum": 2030},
                               "tables": {"type": "array", "items": {"type": "object"}}}}},
        },
    },
}


@router.post("/sef-reports", tags=["reports"], openapi_extra=SUBMISSION_BODY,
             responses={415: {"model": Message, "description": "a body that is neither "
                              "application/xml nor application/json"}})
async def cross_check_report(request: Request) -> CrossCheck:
    """Cross-check a Party's submitted SEF report against the ITL's register and
    transaction log (protocol.md 6): the body is the SEF XML (``Content-Type:
    application/xml``, validated against the XSD of its namespace,
    ``shared/sef/schema``) or the JSON of the registry's ``GET /sef/{period}/{year}``
    (``application/json``). The ITL computes the same report for the Party, period and
    year from its own transactions and notices and lists every cell that differs:
    ``{table, row, column, reported, itl}``; ``consistent`` when there is none. Nothing
    is stored.

    Errors: 415 for another content type; 422 naming what is wrong: the XML path and
    reason where it is not well-formed or not valid against the schema, the JSON field
    that is missing or of the wrong type, an unknown Party, a period or year outside
    the reporting years (``shared.sef.tables.check_report_year``)."""
    service = service_of(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await request.body()
    if len(data) > MAX_SUBMISSION_BYTES:
        raise invalid_input(("body",), f"a SEF report of at most {MAX_SUBMISSION_BYTES} "
                                       f"bytes is read, not {len(data)}")
    try:
        if kind in ("application/xml", "text/xml"):
            submitted = render.from_xml(data)
        elif kind == "application/json":
            try:
                body = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise render.SefFormatError("body", f"not JSON ({exc})") from exc
            submitted = render.from_json(body)
        else:
            raise HTTPException(415, f"a SEF report is application/xml or application/json, "
                                     f"not {kind or 'without a content type'}")
    except render.SefFormatError as exc:
        raise invalid_input(("body", *exc.where.split("/")), exc.reason) from exc
    _check(service, submitted.party, submitted.period, submitted.year, ("body",))
    own = await itl_report(service, submitted.party, submitted.period, submitted.year)
    found = crosscheck.differences(submitted, own)
    return CrossCheck(party=submitted.party, commitment_period=submitted.period,
                      year=submitted.year, version=own.version,
                      cells_compared=len(own.cells()), consistent=not found,
                      differences=[Difference(**d) for d in found])
