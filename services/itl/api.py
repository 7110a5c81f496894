"""The ITL's operator HTTP API: registries, Party data, transactions, the register and
the message journal. Thin: validate, call the service or the store, shape the answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from services.itl.domain import JiProject, commitment_period_reserve
from services.itl.handlers import ItlService
from services.itl.store import PartyPeriod
from shared.codes import (
    CommitmentPeriod,
    NoticeStatus,
    NoticeType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import UnitBlockWire
from shared.errors import NotFound
from shared.http_types import AccountTypeField, UnitTypeField
from shared.store import Document

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


class PartyPeriodIn(BaseModel):
    assigned_amount: int = Field(ge=0, description="assigned amount of the period, in units",
                                 examples=[1_000_000])
    reviewed_inventory: int | None = Field(
        default=None, ge=0, examples=[150_000],
        description="latest reviewed annual inventory (t CO2 eq); null until one is reviewed",
    )


class PartyPeriodView(BaseModel):
    party: str = Field(examples=["KZ"])
    commitment_period: int = Field(examples=[2])
    assigned_amount: int = Field(examples=[1_000_000])
    reviewed_inventory: int | None = Field(examples=[150_000])
    commitment_period_reserve: int = Field(
        examples=[750_000],
        description="min(90 % of assigned amount, 5 x reviewed inventory), rounded down",
    )

    @classmethod
    def of(cls, record: PartyPeriod) -> PartyPeriodView:
        return cls(
            party=record.party,
            commitment_period=record.commitment_period,
            assigned_amount=record.assigned_amount,
            reviewed_inventory=record.reviewed_inventory,
            commitment_period_reserve=commitment_period_reserve(
                record.assigned_amount, record.reviewed_inventory),
        )


class PartyPeriodStatus(PartyPeriodView):
    holdings: int = Field(
        examples=[900_000],
        description="units counted for the reserve: the Party's AAU, ERU, RMU and CER of "
                    "the period in circulation, less what open external transfers reserve",
    )


@router.put("/parties/{code}/periods/{cp}", tags=["parties"])
async def record_party_period(request: Request, code: PartyCode, cp: Period,
                              body: PartyPeriodIn) -> PartyPeriodView:
    """Record a Party's assigned amount and latest reviewed inventory for a period."""
    record = await service_of(request).record_party_period(
        PartyPeriod(code, cp, body.assigned_amount, body.reviewed_inventory))
    return PartyPeriodView.of(record)


@router.get("/parties/{code}/periods/{cp}", tags=["parties"])
async def party_period(request: Request, code: PartyCode, cp: Period) -> PartyPeriodStatus:
    """A Party's assigned amount, reserve and current holdings counted for the reserve."""
    service = service_of(request)
    record = await service.party_period(code, cp)
    holdings = await service.store.cpr_holdings(code, cp)
    return PartyPeriodStatus(**PartyPeriodView.of(record).model_dump(), holdings=holdings)


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
        )


@router.get("/units", tags=["register"])
async def units(
    request: Request,
    registry: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None,
    account_type: Annotated[AccountTypeField | None, Query()] = None,
    account_id: Annotated[int | None, Query(ge=1)] = None,
    unit_type: Annotated[UnitTypeField | None, Query()] = None,
) -> list[BlockView]:
    """Unit blocks in the ITL's register, in origin and serial order."""
    query: Document = {}
    if registry is not None:
        query["registry"] = registry
    if account_type is not None:
        query["account_type"] = int(account_type)
    if account_id is not None:
        query["account_id"] = account_id
    if unit_type is not None:
        query["unit_type"] = int(unit_type)
    docs = await service_of(request).store.units.held(query)
    return [BlockView.of(d) for d in docs]


class TotalRow(BaseModel):
    registry: str = Field(examples=["KZ"])
    account_type: int = Field(examples=[100])
    account_id: int = Field(examples=[1])
    unit_type: int = Field(examples=[1])
    applicable_cp: int = Field(examples=[2])
    units: int = Field(examples=[1000])
    blocks: int = Field(examples=[1])


@router.get("/totals", tags=["register"])
async def totals(
    request: Request, registry: Annotated[str | None, Query(pattern=REGISTRY_CODE)] = None
) -> list[TotalRow]:
    """Units per account, unit type and period in the register (for reconciliation)."""
    query: Document = {} if registry is None else {"registry": registry}
    rows = await service_of(request).store.units.totals(query)
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
    target_value: int | None = Field(default=None, ge=0, examples=[1000],
                                     description="quantity the registry must act on")
    unit_type: UnitTypeField | None = None
    project_id: str | None = Field(default=None, max_length=32)
    commitment_period: int | None = Field(default=None, ge=1, le=2)
    target_date: date | None = None
    action_due_date: date | None = Field(default=None, examples=["2016-06-30"])
    blocks: list[UnitBlockWire] = Field(default_factory=list, max_length=3000,
                                        description="unit blocks the notice is about")
    amends: int | None = Field(default=None,
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
        raise HTTPException(status_code=422,
                            detail=f"registry {body.registry} is unknown to the ITL")
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
async def read_notice(request: Request, notice_id: int) -> NoticeOut:
    doc = await service_of(request).store.notice(notice_id)
    if doc is None:
        raise NotFound(f"notice {notice_id}")
    return NoticeOut.of(doc)


# JI projects


class JiProjectIn(BaseModel):
    host_party: str = Field(pattern=PARTY_CODE, examples=["KZ"])
    track: int = Field(ge=1, le=2, description="1 Party-verified, 2 JISC-verified")
    approved_quantity: int = Field(ge=0, description="ERUs the JISC determination allows")


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
