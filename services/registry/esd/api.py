"""The effort-sharing HTTP API of a Member State registry, under ``/esd``: changes by the
operator (surrenders: whoever instructs transfers from the account), reads by the
operator and the authorised body (a surrender also by its account's holder)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from services.registry.api import REGISTRY_READERS, ActorDep
from services.registry.esd.domain import (
    ARTICLE_5_5_TEXT,
    ESD_ACCOUNT_ID,
    ESD_ACCOUNT_TYPE,
    ProjectFacts,
    YearLedger,
    position,
)
from services.registry.esd.handlers import EsdService, SurrenderCredits
from services.registry.permissions import Operation, authorise, authorise_read
from shared.bounds import Identifier, Int64, Quantity, SimulatedDay
from shared.codes import UnitType
from shared.errors import NotFound
from shared.http_types import UnitTypeField
from shared.store import Document

router = APIRouter(prefix="/esd", tags=["effort sharing"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    422: {"description": "refused: {detail, response_code} with a 41xx effort-sharing code "
                         "or a registry code"},
}


def esd_of(request: Request) -> EsdService:
    svc: EsdService = request.app.state.esd
    return svc


# Member State and projects


class SourcedView(BaseModel):
    value: Any
    status: str = Field(description="reference data (with its verification), set by "
                                    "operator (unverified), declared, or not set")


class MemberStateView(BaseModel):
    member_state: str
    country_name: str | None
    reference_sources: list[str]
    values: dict[str, SourcedView]
    extra_1_percent_applies: bool
    article_5_5_conditions: dict[str, str]
    esd_account: str = Field(description="account credits are surrendered into")


@router.get("/member-state", dependencies=REGISTRY_READERS)
async def read_member_state(request: Request) -> MemberStateView:
    """The Member State configuration and where each value comes from."""
    return _member_state(esd_of(request))


def _member_state(svc: EsdService) -> MemberStateView:
    src = svc.sources
    return MemberStateView(
        member_state=src.profile.code,
        country_name=src.country_name,
        reference_sources=list(src.reference_sources),
        values={k: SourcedView(value=v.value, status=v.status) for k, v in src.values.items()},
        extra_1_percent_applies=src.profile.extra_applies,
        article_5_5_conditions={c.value: ARTICLE_5_5_TEXT[c]
                                for c in sorted(src.profile.article_5_5_conditions)},
        esd_account=f"{svc.registry.code}-{int(ESD_ACCOUNT_TYPE)}-{ESD_ACCOUNT_ID}",
    )


class ProjectFactsBody(BaseModel):
    host_country: str = Field(pattern=r"^[A-Z]{2}$", examples=["IN"])
    registered_on: SimulatedDay = Field(description="registration date of the project")
    crediting_start: SimulatedDay = Field(
        description="start of the crediting period (reductions)")
    ets_eligible_2008_2012: bool = Field(
        description="the project's credits were eligible in the EU ETS in 2008-2012")
    community_project: bool = Field(
        default=False, description="Community-level project (Art. 24a Directive 2003/87/EC)")


class ProjectFactsView(ProjectFactsBody):
    project_id: str

    @classmethod
    def of(cls, facts: ProjectFacts) -> ProjectFactsView:
        return cls(**facts.__dict__)


@router.put("/projects/{project_id}")
async def record_project(project_id: str, body: ProjectFactsBody, request: Request,
                         actor: ActorDep) -> ProjectFactsView:
    """Record (or correct) the facts of a project that eligibility rests on."""
    authorise(actor, Operation.EFFORT_SHARING)
    facts = ProjectFacts(project_id=project_id, **body.model_dump())
    return ProjectFactsView.of(await esd_of(request).record_project(facts))


@router.get("/projects", dependencies=REGISTRY_READERS)
async def list_projects(request: Request) -> list[ProjectFactsView]:
    return [ProjectFactsView.of(p) for p in await esd_of(request).store.projects()]


@router.get("/projects/{project_id}", dependencies=REGISTRY_READERS)
async def read_project(project_id: str, request: Request) -> ProjectFactsView:
    return ProjectFactsView.of(await esd_of(request).require_project(project_id))


# ledger and report


class AllocationView(BaseModel):
    general: int = Field(description="against the 3 % limit")
    extra: int = Field(description="against the extra 1 % (Art. 5(5))")
    community: int = Field(description="Community-project credits, unlimited (Art. 5(7))")


class LedgerView(BaseModel):
    year: int
    general_allowance: int = Field(description="3 % of the 2005 emissions (Art. 5(4))")
    extra_allowance: int = Field(description="1 % for LDC/SIDS credits where Art. 5(5) applies")
    transferred_in: int
    transferred_out: int
    carried_in: int
    limit: int = Field(description="general allowance + in - out + carried in")
    used: AllocationView
    reserved: AllocationView = Field(description="surrenders not yet final")
    reserved_out: int = Field(description="transfers to other states not yet answered")
    reserved_in: int = Field(description="transfers from other states accepted here, "
                                         "counted once the ITL confirms them")
    general_available: int
    extra_available: int
    transferable: int = Field(description="unused part of this year's own 3 % (Art. 5(6))")
    unused: int = Field(description="what closing the year carries forward")
    closed: bool
    carried_out: int

    @classmethod
    def of(cls, ledger: YearLedger, svc: EsdService) -> LedgerView:
        pos = position(ledger, svc.profile)
        return cls(
            year=ledger.year,
            general_allowance=pos.general_allowance,
            extra_allowance=pos.extra_allowance,
            transferred_in=ledger.transferred_in,
            transferred_out=ledger.transferred_out,
            carried_in=ledger.carried_in,
            limit=pos.limit,
            used=AllocationView(**ledger.used.__dict__),
            reserved=AllocationView(**ledger.reserved.__dict__),
            reserved_out=ledger.reserved_out,
            reserved_in=ledger.reserved_in,
            general_available=pos.general_available,
            extra_available=pos.extra_available,
            transferable=pos.transferable,
            unused=pos.unused,
            closed=ledger.closed,
            carried_out=ledger.carried_out,
        )


@router.get("/years/{year}/ledger", responses=REFUSALS, dependencies=REGISTRY_READERS)
async def read_ledger(year: Int64, request: Request) -> LedgerView:
    """The effort-sharing ledger of this Member State for one year."""
    svc = esd_of(request)
    return LedgerView.of(await svc.ledger(year), svc)


class SurrenderView(BaseModel):
    transaction_id: str
    year: int
    state: str = Field(description="proposed, completed or refused")
    unit_type: str
    quantity: int
    transferring_account_id: int
    allocation: AllocationView
    paragraphs: dict[str, int] = Field(description="units per paragraph of Art. 5")
    temporary: list[dict[str, Any]]
    replaces: str | None
    response_codes: list[int]
    history: list[dict[str, Any]]
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> SurrenderView:
        return cls(
            transaction_id=doc["_id"], year=doc["year"], state=doc["state"],
            unit_type=UnitType(doc["unit_type"]).name, quantity=doc["quantity"],
            transferring_account_id=doc["transferring_account_id"],
            allocation=AllocationView(**doc["allocation"]), paragraphs=doc["paragraphs"],
            temporary=doc["temporary"], replaces=doc.get("replaces"),
            response_codes=doc["response_codes"], history=doc["history"],
            created_at=doc["created_at"],
        )


class TransferView(BaseModel):
    transfer_id: str
    direction: str
    year: int
    quantity: int
    transferring_state: str
    acquiring_state: str
    state: str = Field(description="proposed, accepted or refused")
    response_code: int | None
    reason: str
    history: list[dict[str, Any]]
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> TransferView:
        return cls(transfer_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


class ReportView(BaseModel):
    member_state: MemberStateView
    ledger: LedgerView
    surrenders: list[SurrenderView]
    transfers: list[TransferView]
    used_by_paragraph: dict[str, int] = Field(description="completed surrenders only")


@router.get("/years/{year}/report", responses=REFUSALS, dependencies=REGISTRY_READERS)
async def read_report(year: Int64, request: Request) -> ReportView:
    """Everything about one year: configuration with provenance, ledger, surrenders and
    transfers, and the use per paragraph."""
    svc = esd_of(request)
    ledger = await svc.ledger(year)
    surrenders = await svc.store.surrenders(year)
    by_paragraph: dict[str, int] = {}
    for doc in surrenders:
        if doc["state"] == "completed":
            for paragraph, units in doc["paragraphs"].items():
                by_paragraph[paragraph] = by_paragraph.get(paragraph, 0) + units
    return ReportView(
        member_state=_member_state(svc),
        ledger=LedgerView.of(ledger, svc),
        surrenders=[SurrenderView.of(d) for d in surrenders],
        transfers=[TransferView.of(d) for d in await svc.store.transfers(year)],
        used_by_paragraph=dict(sorted(by_paragraph.items())),
    )


# operations


class SurrenderBody(BaseModel):
    transferring_account_id: Identifier
    unit_type: UnitTypeField = Field(examples=["CER"])
    quantity: Quantity
    commitment_period: int = Field(default=2, ge=1, le=2, description="applicable period")
    project_id: str | None = Field(default=None, max_length=32,
                                   description="take only units of this project")
    replaces: str | None = Field(
        default=None, description="transaction id of a surrender of tCERs/lCERs these replace")


@router.post("/years/{year}/surrenders", status_code=status.HTTP_202_ACCEPTED,
             responses=REFUSALS)
async def surrender_credits(year: Int64, body: SurrenderBody, request: Request,
                            actor: ActorDep) -> SurrenderView:
    """Use credits towards the year's obligation: checked for eligibility and the limit,
    then proposed to the ITL as an internal transfer to the ESD account, on the
    instruction of whoever instructs transfers from the account (cl. 21)."""
    account = await request.app.state.service.require_account(body.transferring_account_id)
    authorise(actor, Operation.SURRENDER, account, body.unit_type)
    doc = await esd_of(request).surrender(SurrenderCredits(
        year=year, transferring_account_id=body.transferring_account_id,
        unit_type=body.unit_type, quantity=body.quantity,
        commitment_period=body.commitment_period, project_id=body.project_id,
        replaces=body.replaces,
    ))
    return SurrenderView.of(doc)


@router.get("/surrenders/{transaction_id}")
async def read_surrender(transaction_id: str, request: Request,
                         actor: ActorDep) -> SurrenderView:
    """A surrender (the operator, the authorised body, or the holder of its account)."""
    svc = esd_of(request)
    doc = await svc.store.surrender(transaction_id)
    if doc is None:
        raise NotFound(f"surrender {transaction_id}")
    authorise_read(actor, [doc["transferring_account_id"]], f"surrender {transaction_id}")
    return SurrenderView.of(doc)


class AllowanceTransferBody(BaseModel):
    acquiring_state: str = Field(pattern=r"^[A-Z]{2}$", examples=["FR"])
    quantity: Quantity


@router.post("/years/{year}/transfers", status_code=status.HTTP_202_ACCEPTED,
             responses=REFUSALS)
async def transfer_allowance(year: Int64, body: AllowanceTransferBody, request: Request,
                             actor: ActorDep) -> TransferView:
    """Transfer unused annual 3 % to another Member State through the ITL (Art. 5(6))."""
    authorise(actor, Operation.EFFORT_SHARING)
    doc = await esd_of(request).transfer_allowance(year, body.acquiring_state, body.quantity)
    return TransferView.of(doc)


@router.get("/transfers/{transfer_id}", dependencies=REGISTRY_READERS)
async def read_transfer(transfer_id: str, request: Request) -> TransferView:
    return TransferView.of(await esd_of(request).require_transfer(transfer_id))


class ClosedYearView(BaseModel):
    closed: LedgerView
    next_year: LedgerView | None


@router.post("/years/{year}/close", responses=REFUSALS)
async def close_year(year: Int64, request: Request, actor: ActorDep) -> ClosedYearView:
    """Close an ended year and carry its unused limit forward (Art. 5(6))."""
    authorise(actor, Operation.EFFORT_SHARING)
    svc = esd_of(request)
    closed, nxt = await svc.close_year(year)
    return ClosedYearView(closed=LedgerView.of(closed, svc),
                          next_year=LedgerView.of(nxt, svc) if nxt else None)
