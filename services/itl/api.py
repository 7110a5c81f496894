"""The ITL's operator HTTP API: registries, Party data, transactions, the register and
the message journal. Thin: validate, call the service or the store, shape the answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator

from services.itl.domain import JiProject, LedgerKey, PartyPeriod
from services.itl.handlers import ItlService
from shared.api_errors import Message, invalid_input
from shared.bounds import NOT_BOOLEAN, Identifier, SimulatedDay, Units
from shared.codes import (
    CDM_CODE,
    CommitmentPeriod,
    LulucfActivity,
    NoticeStatus,
    NoticeType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import UnitBlockWire
from shared.errors import NotFound, RuleViolation
from shared.http_types import (
    MAX_BLOCKS_PER_PAGE,
    AccountTypeField,
    AfterBlock,
    BlockPageSize,
    LulucfActivityField,
    UnitTypeField,
)
from shared.recording.diagram import hops_from_itl, html_page, mermaid
from shared.rules.parties import (
    Mechanism,
    PartyStanding,
    commitment_breaches,
    reference_standing,
)
from shared.rules.periods import share_of_proceeds_due
from shared.store import Document
from shared.store.unit_blocks import parse_after

router = APIRouter()

PARTY_CODE = r"^[A-Z]{2}$"
REGISTRY_CODE = r"^([A-Z]{2}|CDM)$"
PartyCode = Annotated[str, Path(pattern=PARTY_CODE, description="Party code", examples=["KZ"])]
Period = Annotated[int, Path(ge=min(CommitmentPeriod), le=max(CommitmentPeriod),
                             description="commitment period", examples=[2])]


def service_of(request: Request) -> ItlService:
    service: ItlService = request.app.state.service
    return service


# registries


class RegistryList(BaseModel):
    registries: list[str] = Field(description="registry codes the ITL knows",
                                  examples=[["KZ", "JP", "CDM"]])


@router.get("/registries", tags=["registries"])
async def registries(request: Request) -> RegistryList:
    """The registries the ITL accepts proposals from and routes transfers to."""
    return RegistryList(registries=sorted(service_of(request).registries))


# Parties


class StandingIn(BaseModel):
    commitment_periods: list[Annotated[int, Field(ge=1, le=max(CommitmentPeriod)),
                                       NOT_BOOLEAN]] = Field(
        examples=[[1, 2]], description="periods with a quantified commitment (1, 2)")
    eligible: list[Mechanism] = Field(
        examples=[["article_6", "article_12", "article_17"]],
        description="mechanisms the Party may use: article_6 (JI), article_12 (CDM), "
                    "article_17 (emissions trading)")

    @field_validator("commitment_periods")
    @classmethod
    def _periods(cls, value: list[int]) -> list[int]:
        unknown = sorted(set(value) - {int(p) for p in CommitmentPeriod})
        if unknown:
            raise ValueError(f"commitment_periods: no commitment period {unknown}")
        return value


class StandingView(StandingIn):
    party: str = Field(examples=["KZ"])
    name: str = Field(examples=["Kazakhstan"])

    @classmethod
    def of(cls, standing: PartyStanding) -> StandingView:
        return cls(party=standing.code, name=standing.name,
                   commitment_periods=sorted(standing.commitment_periods),
                   eligible=sorted(standing.eligible))


@router.get("/parties", tags=["parties"])
async def parties(request: Request) -> list[StandingView]:
    """The standing of every Party whose registry the ITL knows: commitment periods and
    the mechanisms it is eligible to use (protocol.md 4.4; from reference data unless
    changed by PUT /parties/{code})."""
    service = service_of(request)
    codes = sorted(service.registries - {CDM_CODE})
    return [StandingView.of((await service.store.party_books(c)).standing) for c in codes]


def known_party(service: ItlService, code: str) -> None:
    """A Party the ITL knows: one of its registries or one of the reference data (422
    naming the code otherwise)."""
    if code not in service.registries and not reference_standing(code).name:
        raise invalid_input(("path", "code"), f"{code} is neither a registry the ITL knows "
                            "nor a Party of the reference data", code)


@router.get("/parties/{code}", tags=["parties"])
async def party(request: Request, code: PartyCode) -> StandingView:
    """A Party's standing (reference data unless changed); 404 for a code that is
    neither a registry the ITL knows nor a Party of the reference data (as ``PUT``
    refuses it)."""
    service = service_of(request)
    if code not in service.registries and not reference_standing(code).name:
        raise NotFound(f"Party {code}")
    return StandingView.of((await service.store.party_books(code)).standing)


@router.put("/parties/{code}", tags=["parties"])
async def record_standing(request: Request, code: PartyCode, body: StandingIn) -> StandingView:
    """Set a Party's commitment periods and mechanism eligibility; the ITL refuses
    transfers that need what the Party lacks with 4006 (1/CMP.8 paras 13-15)."""
    service = service_of(request)
    known_party(service, code)
    reference = reference_standing(code)
    standing = PartyStanding(code, reference.name, frozenset(body.commitment_periods),
                             frozenset(body.eligible))
    await service.record_standing(standing)
    return StandingView.of(standing)


class PartyPeriodIn(BaseModel):
    """What is known of a Party for one period. Quantities in units or t CO2 eq."""

    assigned_amount: Units = Field(description="assigned amount of the period, in units",
                                 examples=[1_000_000])
    reviewed_inventory: Units | None = Field(
        default=None, examples=[150_000],
        description="latest reviewed annual inventory (t CO2 eq per year); null until one "
                    "is reviewed",
    )
    average_emissions_2008_2010: Units | None = Field(
        default=None, examples=[110_000],
        description="second period: average annual emissions 2008-2010 (t CO2 eq); the "
                    "assigned amount above eight times it is cancelled (Art. 3.7ter)")
    base_year_emissions: Units | None = Field(
        default=None, examples=[130_000],
        description="base-year emissions (t CO2 eq per year): the A/R CDM limit (1 % x "
                    "years) and the second period's forest management cap (3.5 % x 8)")
    period_emissions: Units | None = Field(
        default=None, examples=[1_050_000],
        description="reviewed total emissions over the period (t CO2 eq): units of the "
                    "previous period surplus reserve are retired up to the excess over the "
                    "assigned amount")
    rmu_net_removals: dict[LulucfActivityField, Units] = Field(
        default_factory=dict, examples=[{"FOREST_MANAGEMENT": 20_000}],
        description="reviewed net removals per LULUCF activity over the period (t CO2 eq): "
                    "the RMUs the Party may issue for each")
    forest_management_cap: Units | None = Field(
        default=None,
        description="forest management cap (units); the second period's is computed from "
                    "base-year emissions when not given")


class ShareOfProceedsView(BaseModel):
    transferred: int = Field(description="units the share is levied on (AAUs first "
                                         "transferred abroad, or ERUs issued by conversion)")
    due: int = Field(description="2 % of it, rounded down")
    contributed: int = Field(description="units transferred to the Adaptation Fund")
    owed: int = Field(description="due less contributed, never negative")


class PartyPeriodView(PartyPeriodIn):
    party: str = Field(examples=["KZ"])
    commitment_period: int = Field(examples=[2])
    article_37ter_quantity: int = Field(
        description="assigned amount above 8 x the 2008-2010 average, to cancel into 270")
    net_assigned_amount: int = Field(description="assigned amount less Art. 3.7ter")
    commitment_period_reserve: int = Field(
        examples=[750_000],
        description="min(90 % of the net assigned amount, 5 (period 1) or 8 (period 2) x "
                    "the reviewed inventory), rounded up")

    @classmethod
    def of(cls, record: PartyPeriod) -> PartyPeriodView:
        return cls(
            party=record.party, commitment_period=record.commitment_period,
            assigned_amount=record.assigned_amount,
            reviewed_inventory=record.reviewed_inventory,
            average_emissions_2008_2010=record.average_emissions_2008_2010,
            base_year_emissions=record.base_year_emissions,
            period_emissions=record.period_emissions,
            rmu_net_removals={LulucfActivity(a): n
                              for a, n in record.rmu_net_removals.items()},
            forest_management_cap=record.forest_management_cap,
            article_37ter_quantity=record.article_37ter,
            net_assigned_amount=record.net_assigned_amount,
            commitment_period_reserve=record.reserve,
        )


class PartyPeriodStatus(PartyPeriodView):
    holdings: int = Field(
        examples=[900_000],
        description="units counted for the reserve: the Party's AAU, ERU, RMU and CER of "
                    "the period in circulation, less what open external transfers reserve",
    )
    aaus_issued: int = Field(description="AAUs issued for the period, pending ones too")
    counters: dict[str, int] = Field(
        description="what the Party has taken up of each limit: Art. 3.7ter cancelled, "
                    "PPSR acquired and retired, A/R CDM credits acquired, carried over, and "
                    "the share of proceeds bases and contributions")
    share_of_proceeds: dict[str, ShareOfProceedsView] = Field(
        description="first_international_transfers_of_aau and eru_issuance, reported "
                    "apart (1/CMP.8 para 21)")


@router.put("/parties/{code}/periods/{cp}", tags=["parties"])
async def record_party_period(request: Request, code: PartyCode, cp: Period,
                              body: PartyPeriodIn) -> PartyPeriodView:
    """Record what is known of a Party for a period (assigned amount, inventory,
    emissions, removals); the ITL sends notice 7 with the reserve. A Party without a
    commitment for a period that requires one has no assigned amount for it (422 with
    4006; 1/CMP.8 paras 13-15)."""
    service = service_of(request)
    known_party(service, code)
    standing = (await service.store.party_books(code)).standing
    if commitment_breaches(standing, [cp]):
        raise RuleViolation(ResponseCode.PARTY_NOT_ELIGIBLE,
                            commitment_breaches(standing, [cp])[0])
    record = await service.record_party_period(PartyPeriod(
        code, cp, body.assigned_amount, body.reviewed_inventory,
        body.average_emissions_2008_2010, body.base_year_emissions, body.period_emissions,
        {int(a): n for a, n in body.rmu_net_removals.items()}, body.forest_management_cap))
    return PartyPeriodView.of(record)


@router.get("/parties/{code}/periods/{cp}", tags=["parties"])
async def party_period(request: Request, code: PartyCode, cp: Period) -> PartyPeriodStatus:
    """A Party's record for a period with its reserve, the holdings counted against it,
    and what it has taken up of each limit (404 until an assigned amount is recorded)."""
    service = service_of(request)
    books = await service.store.party_books(code)
    record = books.periods.get(cp)
    if record is None:
        raise NotFound(f"assigned amount of {code} for commitment period {cp}")
    sop = {}
    for name, base, levied in (
            ("first_international_transfers_of_aau", LedgerKey.SOP_FIRST_TRANSFER_BASE,
             LedgerKey.SOP_FIRST_TRANSFER_LEVIED),
            ("eru_issuance", LedgerKey.SOP_CONVERSION_BASE, LedgerKey.SOP_CONVERSION_LEVIED)):
        due = share_of_proceeds_due(cp, books.count(cp, base))
        sop[name] = ShareOfProceedsView(transferred=books.count(cp, base), due=due,
                                        contributed=books.count(cp, levied),
                                        owed=max(0, due - books.count(cp, levied)))
    return PartyPeriodStatus(
        **PartyPeriodView.of(record).model_dump(),
        holdings=await service.store.cpr_holdings(code, cp),
        aaus_issued=await service.store.aaus_issued(code, cp),
        counters={k.value: books.count(cp, k) for k in LedgerKey},
        share_of_proceeds=sop)


# transactions


class StatusEntry(BaseModel):
    status: int = Field(examples=[2])
    status_name: str = Field(examples=["CHECKED_NO_DISCREPANCY"])
    at: datetime


class EvaluationResultView(BaseModel):
    response_code: int = Field(examples=[5001])
    message: str = Field(examples=["transfer would breach the commitment period reserve"])
    serial_start: int | None = None
    originating_registry: str | None = None


class TransactionView(BaseModel):
    transaction_id: str = Field(examples=["KZ17"])
    transaction_type: int = Field(examples=[3])
    transaction_type_name: str = Field(examples=["EXTERNAL_TRANSFER"])
    proposer: str = Field(examples=["KZ"])
    status: int = Field(examples=[4])
    status_name: str = Field(examples=["COMPLETED"])
    history: list[StatusEntry]
    evaluation_results: list[EvaluationResultView]
    proposal: dict[str, Any] = Field(description="the proposal as it came on the wire")
    deadline: datetime | None = Field(
        default=None, description="simulated UTC moment by which the registry the ITL "
        "waits for (the proposer at 2 or 8, the acquiring registry of a forwarded "
        "transfer at 2) must act; the ITL ends the transaction by time-out after it and "
        "its grace (docs/adr/0017)")

    @classmethod
    def of(cls, doc: Document) -> TransactionView:
        return cls(
            transaction_id=doc["_id"],
            transaction_type=doc["transaction_type"],
            transaction_type_name=TransactionType(doc["transaction_type"]).name,
            proposer=doc["proposer"],
            status=doc["status"],
            status_name=TransactionStatus(doc["status"]).name,
            history=[StatusEntry(status=h["status"],
                                 status_name=TransactionStatus(h["status"]).name, at=h["at"])
                     for h in doc["history"]],
            evaluation_results=[EvaluationResultView(**r) for r in doc["evaluation_results"]],
            proposal=doc["proposal"],
            deadline=doc.get("deadline"),
        )


@router.get("/transactions", tags=["transactions"])
async def transactions(
    request: Request,
    proposer: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None,
    status: Annotated[TransactionStatus | None,
                      Query(description="status code, protocol.md 1.4")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TransactionView]:
    """Transactions the ITL has recorded, newest first."""
    docs = await service_of(request).store.transactions(
        proposer, int(status) if status is not None else None, limit)
    return [TransactionView.of(d) for d in docs]


@router.get("/transactions/{transaction_id}", tags=["transactions"])
async def transaction(request: Request, transaction_id: str) -> TransactionView:
    """One transaction with its status history and evaluation results."""
    doc = await service_of(request).store.transaction(transaction_id)
    if doc is None:
        raise NotFound(f"transaction {transaction_id}")
    return TransactionView.of(doc)


#: The media type of Mermaid text (as GitHub and GitLab name it; not registered).
MERMAID_MEDIA_TYPE = "text/vnd.mermaid"


@router.get("/transactions/{transaction_id}/diagram", tags=["transactions"],
            response_class=PlainTextResponse,
            responses={200: {"description": "the sequence diagram", "content": {
                MERMAID_MEDIA_TYPE: {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}}}}})
async def transaction_diagram(
    request: Request, transaction_id: str,
    format: Annotated[Literal["mermaid", "html"], Query(
        description="mermaid: the Mermaid text; html: a page that renders it (Mermaid "
                    "loaded from a CDN)")] = "mermaid",
) -> Response:
    """The sequence diagram of one transaction's flow as the ITL saw it: every message it
    received and sent for the transaction, from its message journal (``GET
    /messages``), each after the message that caused it, numbered, with statuses
    (number and name), acceptance and response codes on the arrows
    (shared/recording/diagram.py, docs/recording.md). The commands that started the
    flow at a registry are in a recording's diagram (``kyoto-sim diagram``). 404 when
    the ITL has no message of the transaction."""
    rows = await service_of(request).store.messages(transaction_id)
    if not rows:
        raise NotFound(f"messages of transaction {transaction_id}")
    text = mermaid(transaction_id, hops_from_itl(row for _, _, row in rows))
    if format == "html":
        return HTMLResponse(html_page(transaction_id, text), media_type="text/html")
    return PlainTextResponse(text, media_type=MERMAID_MEDIA_TYPE)


# the register


class BlockView(BaseModel):
    origin: str = Field(examples=["KZ"], description="originating registry")
    serial_start: int = Field(examples=[1])
    serial_end: int = Field(examples=[1000])
    quantity: int = Field(examples=[1000])
    unit_type: int = Field(examples=[1])
    unit_type_name: str = Field(examples=["AAU"])
    original_cp: int = Field(examples=[2])
    applicable_cp: int = Field(examples=[2])
    registry: str = Field(examples=["KZ"], description="holding registry")
    account_type: int = Field(examples=[100])
    account_id: int = Field(examples=[1])
    reserved_by: str | None = Field(default=None, examples=[None],
                                    description="open transaction that reserves the block")
    issuing: bool = Field(default=False, description="created by an issuance not yet completed")
    lulucf_activity: int | None = None
    project_id: str | None = None
    track: int | None = None
    expiry_date: date | None = Field(default=None, description="tCER and lCER")
    replaced_by: str | None = Field(default=None,
                                    description="the replacement that replaced this tCER/lCER")
    expiry_notice: int | None = Field(default=None,
                                      description="the notice of impending expiry naming it")
    discrepancy: str | None = Field(
        default=None, description="the reconciliation that flagged the block inconsistent: "
                                  "proposals touching it are refused with 3005 until an "
                                  "operator resolves it (docs/adr/0030)")

    @classmethod
    def of(cls, doc: Document) -> BlockView:
        return cls(
            origin=doc["origin"],
            serial_start=doc["serial_start"],
            serial_end=doc["serial_end"],
            quantity=doc["serial_end"] - doc["serial_start"] + 1,
            unit_type=doc["unit_type"],
            unit_type_name=UnitType(doc["unit_type"]).name,
            original_cp=doc["original_cp"],
            applicable_cp=doc["applicable_cp"],
            registry=doc["registry"],
            account_type=doc["account_type"],
            account_id=doc["account_id"],
            reserved_by=doc.get("reserved_by"),
            issuing=bool(doc.get("issuing")),
            lulucf_activity=doc.get("lulucf_activity"),
            project_id=doc.get("project_id"),
            track=doc.get("track"),
            expiry_date=doc.get("expiry_date"),
            replaced_by=doc.get("replaced_by"),
            expiry_notice=doc.get("expiry_notice"),
            discrepancy=doc.get("discrepancy"),
        )


#: The 404 of a register query naming a registry the ITL does not know (``registry``).
UNKNOWN_REGISTRY: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "the ITL knows no registry `registry`"}}


def known_registry(service: ItlService, code: str) -> None:
    """``NotFound`` (404) naming ``code`` and the registries the ITL knows, unless it is
    one of them."""
    if code not in service.registries:
        raise NotFound(f"registry {code} (the ITL knows "
                       f"{', '.join(sorted(service.registries))})")


@router.get("/units", tags=["register"], responses=UNKNOWN_REGISTRY)
async def units(
    request: Request,
    registry: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None,
    account_type: Annotated[AccountTypeField | None, Query()] = None,
    account_id: Annotated[Identifier | None, Query()] = None,
    unit_type: Annotated[UnitTypeField | None, Query()] = None,
    after: Annotated[AfterBlock, Query()] = None,
    limit: Annotated[BlockPageSize, Query()] = MAX_BLOCKS_PER_PAGE,
) -> list[BlockView]:
    """One page of the unit blocks in the ITL's register: at most ``limit`` (1-1000,
    default 1000) in (origin, serial) order, after the cursor ``after`` (``ORIGIN:SERIAL``
    of the last block of the previous page); a page shorter than ``limit`` is the last.
    Read in bounded serial windows of the holding registry's blocks (of one account when
    ``account_id`` comes with ``registry``). 404 naming ``registry`` when the ITL knows
    no such registry."""
    prefix: Document = {}
    if registry is not None:
        known_registry(service_of(request), registry)
        prefix["registry"] = registry
        if account_id is not None:
            prefix["account_id"] = account_id
    wanted: Document = {}
    if account_type is not None:
        wanted["account_type"] = int(account_type)
    if account_id is not None:
        wanted["account_id"] = account_id
    if unit_type is not None:
        wanted["unit_type"] = int(unit_type)
    docs, _ = await service_of(request).store.units.page(
        prefix, limit, parse_after(after), keep=lambda d: all(d[k] == v
                                                             for k, v in wanted.items()))
    return [BlockView.of(d) for d in docs]


class TotalRow(BaseModel):
    registry: str = Field(examples=["KZ"])
    account_type: int = Field(examples=[100])
    account_id: int = Field(examples=[1])
    unit_type: int = Field(examples=[1])
    applicable_cp: int = Field(examples=[2])
    units: int = Field(examples=[1000])
    blocks: int = Field(examples=[1])


@router.get("/totals", tags=["register"], responses=UNKNOWN_REGISTRY)
async def totals(
    request: Request, registry: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None
) -> list[TotalRow]:
    """Units per account, unit type and period in the register (for reconciliation),
    read from the maintained holdings summaries (docs/adr/0023); of one registry with
    ``registry``: 404 naming it when the ITL knows no such registry (rather than an
    empty register, which a registry holding nothing also has)."""
    service = service_of(request)
    if registry is not None:
        known_registry(service, registry)
    rows = await service.store.units.totals(registry)
    return [TotalRow(**row) for row in rows]


# message journal


class MessageRecord(BaseModel):
    direction: str = Field(examples=["in"], description="'in' received, 'out' sent")
    at: datetime = Field(description="received (in) or sent (out), simulation clock")
    message_type: str = Field(examples=["ProposalSubmitted"])
    sender: str = Field(examples=["KZ"])
    recipient: str = Field(examples=["ITL"])
    message_id: str
    published: bool | None = Field(
        default=None, description="sent messages: whether the relay has published it yet")
    envelope: dict[str, Any]


@router.get("/messages", tags=["messages"])
async def messages(
    request: Request,
    correlation_id: Annotated[str, Query(min_length=1, max_length=64,
                                         description="the transaction id",
                                         examples=["KZ17"])],
) -> list[MessageRecord]:
    """Every message the ITL received and sent for one transaction, in time order."""
    rows = await service_of(request).store.messages(correlation_id)
    return [
        MessageRecord(
            direction=direction,
            at=at,
            message_type=row["envelope"]["message_type"],
            sender=row["envelope"]["sender"],
            recipient=row["envelope"]["recipient"],
            message_id=row["_id"],
            published=row.get("published") if direction == "out" else None,
            envelope=row["envelope"],
        )
        for direction, at, row in rows
    ]


# notices


class NoticeIn(BaseModel):
    notice_type: NoticeType = Field(description="protocol.md 2.8, 1-13", examples=[1])
    registry: str = Field(pattern=REGISTRY_CODE, examples=["KZ"])
    target_value: Units | None = Field(default=None, examples=[1000],
                                     description="quantity the registry must act on")
    unit_type: UnitTypeField | None = None
    project_id: str | None = Field(default=None, max_length=32)
    commitment_period: Annotated[int, Field(ge=1, le=2), NOT_BOOLEAN] | None = None
    target_date: SimulatedDay | None = None
    action_due_date: SimulatedDay | None = Field(default=None, examples=["2016-06-30"])
    blocks: list[UnitBlockWire] = Field(default_factory=list, max_length=3000,
                                        description="unit blocks the notice is about")
    amends: Identifier | None = Field(default=None,
                                      description="notice 10: the earlier notice it amends")
    text: str = Field(default="", max_length=2000)


class NoticeOut(BaseModel):
    notice_id: int
    notice_type: int
    notice_type_name: str
    registry: str
    status: int
    status_name: str
    target_value: int | None
    fulfilled_quantity: int
    unit_type: int | None = None
    project_id: str | None = None
    commitment_period: int | None = None
    target_date: date | None = None
    action_due_date: date | None = None
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    amends: int | None = None
    transactions: list[str] = Field(default_factory=list,
                                    description="transactions that fulfilled it")
    text: str = ""
    issued_at: datetime

    @classmethod
    def of(cls, doc: Document) -> NoticeOut:
        return cls(
            notice_id=doc["_id"], notice_type=doc["notice_type"],
            notice_type_name=NoticeType(doc["notice_type"]).name,
            registry=doc["registry"], status=doc["status"],
            status_name=NoticeStatus(doc["status"]).name,
            target_value=doc.get("target_value"),
            fulfilled_quantity=doc.get("fulfilled_quantity", 0),
            unit_type=doc.get("unit_type"), project_id=doc.get("project_id"),
            commitment_period=doc.get("commitment_period"),
            target_date=doc.get("target_date"), action_due_date=doc.get("action_due_date"),
            blocks=doc.get("blocks", []), transactions=doc.get("transactions", []),
            amends=doc.get("amends"),
            text=doc.get("text", ""), issued_at=doc["issued_at"],
        )


@router.post("/notices", tags=["notices"], status_code=201)
async def issue_notice(request: Request, body: NoticeIn) -> NoticeOut:
    """Issue a notice to a registry (AcceptITLNotice); the ITL then tracks its fulfilment
    by the transactions that name it."""
    service = service_of(request)
    if body.registry not in service.registries:
        raise invalid_input(("body", "registry"), f"registry {body.registry} is unknown to "
                            "the ITL", body.registry)
    fields = body.model_dump(mode="json")
    fields["notice_type"] = int(body.notice_type)
    fields["unit_type"] = int(body.unit_type) if body.unit_type else None
    return NoticeOut.of(await service.issue_notice(fields))


@router.get("/notices", tags=["notices"])
async def list_notices(request: Request,
                       registry: str | None = Query(default=None, pattern=REGISTRY_CODE),
                       status: int | None = Query(default=None, ge=1, le=3)
                       ) -> list[NoticeOut]:
    return [NoticeOut.of(d) for d in await service_of(request).store.notices(registry, status)]


@router.get("/notices/{notice_id}", tags=["notices"])
async def read_notice(request: Request, notice_id: Identifier) -> NoticeOut:
    doc = await service_of(request).store.notice(notice_id)
    if doc is None:
        raise NotFound(f"notice {notice_id}")
    return NoticeOut.of(doc)


# JI projects


class JiProjectIn(BaseModel):
    host_party: str = Field(pattern=PARTY_CODE, examples=["KZ"])
    track: int = Field(ge=1, le=2, description="1 Party-verified, 2 JISC-verified")
    approved_quantity: Units = Field(description="ERUs the JISC determination allows")


class JiProjectOut(JiProjectIn):
    project_id: str
    converted: int


@router.put("/ji-projects/{project_id}", tags=["ji"])
async def record_ji_project(request: Request, body: JiProjectIn,
                            project_id: str = Path(pattern=r"^[A-Za-z0-9-]{1,32}$")
                            ) -> JiProjectOut:
    """Record a JI project; track 2 conversions are checked against it (4002)."""
    service = service_of(request)
    await service.record_ji_project(JiProject(project_id, body.host_party, body.track,
                                              body.approved_quantity))
    project = await service.store.ji_project(project_id)
    assert project is not None
    return JiProjectOut(project_id=project.project_id, host_party=project.host_party,
                        track=project.track, approved_quantity=project.approved_quantity,
                        converted=project.converted)


# effort-sharing allowance transfers routed through the ITL


@router.get("/esd-transfers", tags=["effort sharing"])
async def list_esd_transfers(
    request: Request,
    state: Annotated[str | None, Query(pattern=r"^(forwarded|refused|accepted)$")]
    = None,
) -> list[dict[str, Any]]:
    """Transfers of unused effort-sharing allowance between Member States, newest first,
    with their state and history."""
    query: Document = {} if state is None else {"state": state}
    cursor = service_of(request).store.db.esd_transfers.find(query).sort("created_at", -1)
    return [{"transfer_id": d.pop("_id"), **d} for d in await cursor.to_list()]


@router.get("/esd-transfers/{transfer_id}", tags=["effort sharing"])
async def read_esd_transfer(request: Request, transfer_id: str) -> dict[str, Any]:
    doc = await service_of(request).store.db.esd_transfers.find_one({"_id": transfer_id})
    if doc is None:
        raise NotFound(f"effort-sharing transfer {transfer_id}")
    return {"transfer_id": doc.pop("_id"), **doc}
