"""The operator HTTP API of a registry: accounts, holdings and transactions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field

from services.registry.domain import Account
from services.registry.handlers import IssueUnits, RegistryService, TransferUnits
from shared.codes import (
    RESPONSE_TEXT,
    AccountType,
    LulucfActivity,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.errors import NotFound, RuleViolation
from shared.http_types import AccountTypeField, UnitTypeField
from shared.store import Document
from shared.store.unit_blocks import doc_to_block

router = APIRouter()


def service_of(request: Request) -> RegistryService:
    svc: RegistryService = request.app.state.service
    return svc


# accounts


class AccountCreate(BaseModel):
    account_type: AccountTypeField = Field(default=AccountType.PERSON_HOLDING)
    holder_name: str = Field(min_length=1, max_length=200, examples=["Astana Energy LLP"])
    commitment_period: int | None = Field(default=None, ge=1, le=2)


class AccountView(BaseModel):
    registry: str
    account_type: int
    account_type_name: str
    account_id: int
    full_identifier: str = Field(examples=["KZ-121-1001-2-45"])
    holder_name: str
    commitment_period: int
    status: str

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls(
            registry=account.registry,
            account_type=int(account.account_type),
            account_type_name=account.account_type.name,
            account_id=account.account_id,
            full_identifier=account.full_identifier,
            holder_name=account.holder_name,
            commitment_period=account.commitment_period,
            status=account.status.value,
        )


class BlockView(BaseModel):
    originating_registry: str
    serial_start: int
    serial_end: int
    quantity: int
    unit_type: str
    original_commitment_period: int
    applicable_commitment_period: int
    lulucf_activity: int | None = None
    project_id: str | None = None
    expiry_date: date | None = None
    reserved_by: str | None = None

    @classmethod
    def of(cls, doc: Document) -> BlockView:
        block = doc_to_block(doc)
        a = block.attributes
        return cls(
            originating_registry=a.originating_registry,
            serial_start=block.serials.start,
            serial_end=block.serials.end,
            quantity=block.quantity,
            unit_type=a.unit_type.name,
            original_commitment_period=a.original_commitment_period,
            applicable_commitment_period=a.applicable_commitment_period,
            lulucf_activity=a.lulucf_activity,
            project_id=a.project_id,
            expiry_date=a.expiry_date,
            reserved_by=doc.get("reserved_by"),
        )


class HoldingTotal(BaseModel):
    account_id: int
    account_type: int
    unit_type: str
    applicable_commitment_period: int
    units: int
    blocks: int


class AccountHoldings(BaseModel):
    account: AccountView
    totals: list[HoldingTotal]
    available: int = Field(description="units not reserved by an open transaction")
    reserved: int
    blocks: list[BlockView]


def _total(row: Document) -> HoldingTotal:
    return HoldingTotal(
        account_id=row["account_id"],
        account_type=row["account_type"],
        unit_type=UnitType(row["unit_type"]).name,
        applicable_commitment_period=row["applicable_cp"],
        units=row["units"],
        blocks=row["blocks"],
    )


@router.post("/accounts", status_code=status.HTTP_201_CREATED, tags=["accounts"])
async def create_account(body: AccountCreate, request: Request) -> AccountView:
    """Open an account (a person holding account unless another type is given)."""
    svc = service_of(request)
    account = await svc.create_account(
        body.account_type, body.holder_name,
        body.commitment_period or request.app.state.settings.commitment_period,
    )
    return AccountView.of(account)


@router.get("/accounts", tags=["accounts"])
async def list_accounts(request: Request) -> list[AccountView]:
    return [AccountView.of(a) for a in await service_of(request).store.accounts()]


@router.get("/accounts/{account_id}", tags=["accounts"])
async def read_account(account_id: int, request: Request) -> AccountView:
    return AccountView.of(await service_of(request).require_account(account_id))


@router.get("/accounts/{account_id}/holdings", tags=["holdings"])
async def read_account_holdings(account_id: int, request: Request) -> AccountHoldings:
    """The unit blocks of one account, with totals per unit type and period."""
    svc = service_of(request)
    account = await svc.require_account(account_id)
    query = {"registry": svc.code, "account_id": account_id}
    docs = await svc.store.units.held(query)
    reserved = sum(d["serial_end"] - d["serial_start"] + 1 for d in docs if d.get("reserved_by"))
    total = sum(d["serial_end"] - d["serial_start"] + 1 for d in docs)
    return AccountHoldings(
        account=AccountView.of(account),
        totals=[_total(r) for r in await svc.store.units.totals(query)],
        available=total - reserved,
        reserved=reserved,
        blocks=[BlockView.of(d) for d in docs],
    )


@router.get("/holdings", tags=["holdings"])
async def read_holdings(request: Request) -> list[HoldingTotal]:
    """Units held in this registry per account, unit type and period."""
    svc = service_of(request)
    return [_total(r) for r in await svc.store.units.totals({"registry": svc.code})]


# transactions


class IssuanceRequest(BaseModel):
    unit_type: UnitTypeField = Field(examples=["AAU"])
    quantity: int = Field(ge=1, le=10**12, examples=[1000])
    commitment_period: int = Field(default=2, ge=1, le=2)
    acquiring_account_id: int = Field(default=1, ge=1, description="Party holding account")
    decision_reference: str = Field(
        min_length=1, max_length=200,
        description="the authorised body's decision the issuance rests on (Decree 684 cl. 10)",
        examples=["MEP-2013-001"],
    )
    lulucf_activity: LulucfActivity | None = None


class TransferRequest(BaseModel):
    transferring_account_id: int = Field(ge=1)
    acquiring_account_id: int = Field(ge=1)
    acquiring_account_type: AccountTypeField = Field(default=AccountType.PERSON_HOLDING)
    unit_type: UnitTypeField = Field(examples=["AAU"])
    quantity: int = Field(ge=1, le=10**12)
    commitment_period: int = Field(default=2, ge=1, le=2)
    reference: str | None = Field(default=None, max_length=200)


class ExternalTransferRequest(TransferRequest):
    acquiring_registry: str = Field(pattern=r"^([A-Z]{2}|CDM)$", examples=["JP"])


class StatusEntry(BaseModel):
    status: int
    status_name: str
    at: datetime
    note: str | None = None


class ResultView(BaseModel):
    response_code: int
    message: str
    serial_start: int | None = None
    originating_registry: str | None = None


class AccountRefView(BaseModel):
    registry: str
    account_type: int
    account_id: int


class TransactionView(BaseModel):
    transaction_id: str = Field(examples=["KZ17"])
    transaction_type: int
    transaction_type_name: str
    direction: str = Field(description="outgoing: proposed here; inbound: units arriving")
    status: int
    status_name: str
    history: list[StatusEntry]
    response_codes: list[int]
    evaluation_results: list[ResultView]
    transferring: AccountRefView | None
    acquiring: AccountRefView
    unit_type: str
    quantity: int
    blocks: list[BlockView]
    reference: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, doc: Document) -> TransactionView:
        results = [ResultView(**r) for r in doc.get("evaluation_results", [])]
        return cls(
            transaction_id=doc["_id"],
            transaction_type=doc["transaction_type"],
            transaction_type_name=TransactionType(doc["transaction_type"]).name,
            direction=doc["direction"],
            status=doc["status"],
            status_name=TransactionStatus(doc["status"]).name,
            history=[
                StatusEntry(status=h["status"], status_name=TransactionStatus(h["status"]).name,
                            at=h["at"], note=h.get("note"))
                for h in doc["history"]
            ],
            response_codes=[r.response_code for r in results],
            evaluation_results=results,
            transferring=_ref_view(doc.get("transferring")),
            acquiring=AccountRefView(**doc["acquiring"]),
            unit_type=UnitType(doc["unit_type"]).name,
            quantity=doc["quantity"],
            blocks=[BlockView.of(b) for b in doc["blocks"]],
            reference=doc.get("reference"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )


def _ref_view(ref: dict[str, Any] | None) -> AccountRefView | None:
    return None if ref is None else AccountRefView(**ref)


class RefusalView(BaseModel):
    detail: str
    response_code: int


REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "an account named in the request does not exist"},
    422: {"model": RefusalView,
          "description": "refused by the registry's own checks, with a response code"},
}


@router.post("/transactions/issuance", status_code=status.HTTP_202_ACCEPTED,
             tags=["transactions"], responses=REFUSALS)
async def propose_issuance(body: IssuanceRequest, request: Request) -> TransactionView:
    """Propose an issuance (Decree 684 cl. 10-15) to the ITL; units appear on approval."""
    svc = service_of(request)
    if svc.profile.is_cdm:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            "the CDM registry issues for a project: POST "
                            "/projects/{project_id}/issuances")
    doc = await svc.issue(IssueUnits(
        unit_type=body.unit_type, quantity=body.quantity,
        commitment_period=body.commitment_period,
        acquiring_account_id=body.acquiring_account_id,
        decision_reference=body.decision_reference,
        lulucf_activity=int(body.lulucf_activity) if body.lulucf_activity else None,
    ))
    return TransactionView.of(doc)


@router.post("/transactions/internal-transfer", status_code=status.HTTP_202_ACCEPTED,
             tags=["transactions"], responses=REFUSALS)
async def propose_internal_transfer(body: TransferRequest, request: Request) -> TransactionView:
    """Propose a transfer between two accounts of this registry (Decree 684 cl. 21)."""
    svc = service_of(request)
    return TransactionView.of(await svc.transfer(_transfer(body, svc.code)))


@router.post("/transactions/external-transfer", status_code=status.HTTP_202_ACCEPTED,
             tags=["transactions"], responses=REFUSALS)
async def propose_external_transfer(body: ExternalTransferRequest,
                                    request: Request) -> TransactionView:
    """Propose a transfer to an account of another registry (Decree 684 cl. 16-20)."""
    svc = service_of(request)
    if body.acquiring_registry == svc.code:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            "the acquiring registry is this registry: use internal-transfer")
    return TransactionView.of(await svc.transfer(_transfer(body, body.acquiring_registry)))


def _transfer(body: TransferRequest, acquiring_registry: str) -> TransferUnits:
    return TransferUnits(
        transferring_account_id=body.transferring_account_id,
        acquiring_registry=acquiring_registry,
        acquiring_account_type=body.acquiring_account_type,
        acquiring_account_id=body.acquiring_account_id,
        unit_type=body.unit_type,
        quantity=body.quantity,
        commitment_period=body.commitment_period,
        reference=body.reference,
    )


@router.get("/transactions", tags=["transactions"])
async def list_transactions(
    request: Request,
    status_code: int | None = Query(default=None, alias="status", ge=1, le=8),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[TransactionView]:
    """Newest first."""
    docs = await service_of(request).store.transactions(status_code, limit)
    return [TransactionView.of(d) for d in docs]


@router.get("/transactions/{transaction_id}", tags=["transactions"],
            responses={404: {"description": "no such transaction"}})
async def read_transaction(transaction_id: str, request: Request) -> TransactionView:
    """A transaction with its status history and the response codes it received."""
    doc = await service_of(request).store.transaction(transaction_id)
    if doc is None:
        raise NotFound(f"transaction {transaction_id}")
    return TransactionView.of(doc)


@router.get("/codes/response", tags=["reference"])
async def response_codes() -> dict[int, str]:
    """Every response code the simulator uses, with its meaning."""
    return {int(code): text for code, text in RESPONSE_TEXT.items()}

