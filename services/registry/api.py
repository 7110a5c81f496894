"""The operator HTTP API of a registry: accounts, holdings and transactions.

Every endpoint needs a bearer token (``shared.auth``); who may change what is
``permissions.authorise``, who reads what ``permissions.readable_accounts``: the operator
and the authorised body read everything, a holder's representative only its accounts,
their holdings and the transactions and decisions that concern them (docs/adr/0015)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, status
from pydantic import BaseModel, Field, StringConstraints

from services.registry.domain import Account, AccountAction, StatusChange
from services.registry.handlers import RegistryService
from services.registry.permissions import (
    Actor,
    Operation,
    authorise,
    authorise_read,
    authorise_registry_read,
    parse_actor,
    readable_accounts,
)
from services.registry.proceeds import ShareOfProceeds, ShareOfProceedsKind
from shared.audit import AuditReader, account_key
from shared.auth import PrincipalDep
from shared.bounds import Identifier, RequiredName
from shared.codes import (
    RESPONSE_TEXT,
    AccountType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import UnitBlockWire, block_from_wire
from shared.errors import NotFound
from shared.http_types import (
    MAX_BLOCKS_PER_PAGE,
    AccountTypeField,
    AfterBlock,
    BlockPageSize,
    UnitTypeField,
)
from shared.store import Document
from shared.store.unit_blocks import block_to_doc, doc_to_block, format_after, parse_after

router = APIRouter()


def actor_of(request: Request, principal: PrincipalDep,
             x_actor: Annotated[str | None, Header(
                 description="development mode (AUTH_MODE=development) only, without a "
                             "token: operator, authorised-body or holder:<account id>, "
                             "optionally @<subject>")] = None) -> Actor:
    """The request's actor at this registry: from its token's roles and accounts; in
    development mode without a token, from ``X-Actor`` (none: reads only)."""
    if principal.development:
        return parse_actor(x_actor) if x_actor else Actor(anonymous=True)
    return Actor.at(principal, service_of(request).code)


ActorDep = Annotated[Actor, Depends(actor_of)]


async def registry_reader(actor: ActorDep) -> Actor:
    """FastAPI dependency: a caller who reads this registry's registry-wide data (ITL
    notices, the share of proceeds, effort sharing): the operator or the authorised
    body (403 otherwise)."""
    authorise_registry_read(actor, "registry-wide data (ITL notices, the share of "
                                   "proceeds, effort sharing)")
    return actor


#: Dependencies of a route that only the operator and the authorised body read.
REGISTRY_READERS = [Depends(registry_reader)]


async def audit_reader(request: Request, actor: ActorDep) -> AuditReader:
    """FastAPI dependency of ``GET /audit`` (docs/adr/0019): the operator and the
    authorised body read every record; a holder's representative the records naming
    its accounts; anyone else 403."""
    code = service_of(request).code
    readable = readable_accounts(actor)
    return AuditReader(None if readable is None
                       else frozenset(account_key(code, a) for a in readable), code)


def service_of(request: Request) -> RegistryService:
    svc: RegistryService = request.app.state.service
    return svc


# accounts


class RefusalView(BaseModel):
    detail: str
    response_code: int


class AccountCreate(BaseModel):
    account_type: AccountTypeField = Field(
        default=AccountType.PERSON_HOLDING,
        description="121 person holding (default), 120 former operator holding or 100 "
                    "Party holding; the CDM registry: 121 only")
    holder_name: RequiredName = Field(examples=["Astana Energy LLP"])
    commitment_period: int | None = Field(default=None, ge=1, le=2)


class AccountView(BaseModel):
    registry: str
    account_type: int
    account_type_name: str
    account_id: int
    full_identifier: str = Field(examples=["KZ-121-1001-2-45"])
    holder_name: str
    commitment_period: int
    status: str = Field(description="open, blocked or closed")
    fixed: bool = Field(default=False, description="a government account the registry "
                                                   "made at start-up: never blocked or "
                                                   "closed")

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
            fixed=account.fixed,
        )


class StatusChangeView(BaseModel):
    status: str = Field(examples=["blocked"])
    by: str = Field(description="who: the role it was done in and the subject (the "
                                "token's sub)", examples=["operator kz-operator-1"])
    at: datetime = Field(description="simulation clock, UTC")
    reason: str | None = None

    @classmethod
    def of(cls, change: StatusChange) -> StatusChangeView:
        return cls(status=change.status.value, by=change.by, at=change.at,
                   reason=change.reason)


class AccountDetail(AccountView):
    status_history: list[StatusChangeView] = Field(
        default_factory=list, description="each block, unblock and closure, oldest first")

    @classmethod
    def of(cls, account: Account) -> AccountDetail:
        return cls(**AccountView.of(account).model_dump(),
                   status_history=[StatusChangeView.of(c) for c in account.history])


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class StatusReason(BaseModel):
    reason: Reason = Field(examples=["court order 2013-45 freezes the holder's assets"])


class OptionalStatusReason(BaseModel):
    reason: Reason | None = None


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
    def wire(cls, wire: dict[str, Any]) -> BlockView:
        return cls.of(block_to_doc(block_from_wire(UnitBlockWire.model_validate(wire))))

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
    reserved: int = Field(description="units reserved by open transactions")
    blocks: list[BlockView] = Field(
        description="one page of the account's unit blocks in (origin, serial) order")
    next_after: str | None = Field(
        default=None, examples=["KZ:1000001"],
        description="pass as ``after`` for the next page of blocks; null on the last page")


def _total(row: Document) -> HoldingTotal:
    return HoldingTotal(
        account_id=row["account_id"],
        account_type=row["account_type"],
        unit_type=UnitType(row["unit_type"]).name,
        applicable_commitment_period=row["applicable_cp"],
        units=row["units"],
        blocks=row["blocks"],
    )


@router.post("/accounts", status_code=status.HTTP_201_CREATED, tags=["accounts"],
             responses={403: {"description": "only the operator opens accounts"},
                        422: {"model": RefusalView,
                              "description": "an account type the operator does not open "
                                             "(2004, naming account_type and why)"}})
async def create_account(body: AccountCreate, request: Request,
                         actor: ActorDep) -> AccountView:
    """Open a holding account: a person's (121, the default), a former operator's (120)
    or a further Party holding account (100); in the CDM registry a participant's (121)
    only. Every other type is the registry's own, made at start-up (one PPSR; the
    cancellation, retirement and replacement accounts per period), or exists only in the
    CDM registry (110, 240-242): 422 with 2004 naming ``account_type`` and why."""
    authorise(actor, Operation.OPEN_ACCOUNT)
    svc = service_of(request)
    account = await svc.create_account(
        body.account_type, body.holder_name,
        body.commitment_period or request.app.state.settings.commitment_period,
    )
    return AccountView.of(account)


@router.get("/accounts", tags=["accounts"])
async def list_accounts(request: Request, actor: ActorDep) -> list[AccountView]:
    """Every account; a holder's representative sees only the accounts it acts for."""
    readable = readable_accounts(actor)
    return [AccountView.of(a) for a in await service_of(request).store.accounts()
            if readable is None or a.account_id in readable]


@router.get("/accounts/{account_id}", tags=["accounts"],
            responses={403: {"description": "a holder's representative reads only its "
                                            "accounts"},
                       404: {"description": "no such account"}})
async def read_account(account_id: Identifier, request: Request, actor: ActorDep) -> AccountDetail:
    """One account with its status and the history of its status changes (who, when,
    why)."""
    authorise_read(actor, [account_id], f"account {account_id}")
    return AccountDetail.of(await service_of(request).require_account(account_id))


STATUS_CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "only the operator changes an account's status"},
    404: {"description": "no such account"},
    409: {"description": "the account's status does not allow the change (detail); "
                         "closing a non-empty account: response_code 2009 and every reason"},
}


async def _change_status(request: Request, actor: Actor, account_id: int,
                         action: AccountAction, operation: Operation,
                         reason: str | None) -> AccountDetail:
    by = authorise(actor, operation)
    account = await service_of(request).change_account_status(account_id, action, by,
                                                              reason)
    return AccountDetail.of(account)


@router.post("/accounts/{account_id}/block", tags=["accounts"],
             responses=STATUS_CHANGE_RESPONSES)
async def block_account(account_id: Identifier, body: StatusReason, request: Request,
                        actor: ActorDep) -> AccountDetail:
    """Block an open account: from now on no new transaction takes units out of it (2007)
    or into it (5903, protocol.md 3.3 "suspended, restricted"); its units stay where they
    are, and a transaction proposed before the block runs to its end. Operator only
    (Decree 684 cl. 5); ``reason`` required; 409 unless the account is open, or when it
    is a government account the registry made at start-up (never blocked)."""
    return await _change_status(request, actor, account_id, AccountAction.BLOCK,
                                Operation.BLOCK_ACCOUNT, body.reason)


@router.post("/accounts/{account_id}/unblock", tags=["accounts"],
             responses=STATUS_CHANGE_RESPONSES)
async def unblock_account(account_id: Identifier, request: Request,
                          actor: ActorDep,
                          body: Annotated[OptionalStatusReason | None, Body()] = None
                          ) -> AccountDetail:
    """Open a blocked account again. Operator only; ``reason`` optional; 409 unless the
    account is blocked."""
    return await _change_status(request, actor, account_id, AccountAction.UNBLOCK,
                                Operation.UNBLOCK_ACCOUNT, body.reason if body else None)


@router.post("/accounts/{account_id}/close", tags=["accounts"],
             responses=STATUS_CHANGE_RESPONSES)
async def close_account(account_id: Identifier, body: StatusReason, request: Request,
                        actor: ActorDep) -> AccountDetail:
    """Close an open or blocked account for good: afterwards transfers out of it are
    refused with 2008 and into it with 5906 (protocol.md 3.3). Operator only; ``reason``
    required. 409 when it is closed already or a government account the registry made at
    start-up (never closed); 409 with ``response_code`` 2009 when it is not empty: it holds
    units (reserved or not) or a transaction naming it on either side is not final; the
    detail lists every reason, e.g. "account 1001 holds 500 AAU units of period 2;
    transaction KZ12 is open"."""
    return await _change_status(request, actor, account_id, AccountAction.CLOSE,
                                Operation.CLOSE_ACCOUNT, body.reason)


@router.get("/accounts/{account_id}/holdings", tags=["holdings"])
async def read_account_holdings(
    account_id: Identifier, request: Request, actor: ActorDep,
    after: Annotated[AfterBlock, Query()] = None,
    limit: Annotated[BlockPageSize, Query()] = MAX_BLOCKS_PER_PAGE,
) -> AccountHoldings:
    """One account's totals per unit type and period, its available and reserved units
    (units, from the maintained holdings summaries), and one page of its unit blocks: at
    most ``limit`` (1-1000, default 1000) in (origin, serial) order, after the cursor
    ``after`` (``ORIGIN:SERIAL``, the ``next_after`` of the previous page). A holder's
    representative reads its accounts only (403 otherwise)."""
    authorise_read(actor, [account_id], f"the holdings of account {account_id}")
    svc = service_of(request)
    account = await svc.require_account(account_id)
    rows = await svc.store.units.totals(svc.code, account_id)
    total = sum(r["units"] for r in rows)
    reserved = sum(r["reserved"] for r in rows)
    docs, cursor = await svc.store.units.page({"registry": svc.code, "account_id": account_id},
                                              limit, parse_after(after))
    return AccountHoldings(
        account=AccountView.of(account),
        totals=[_total(r) for r in rows],
        available=total - reserved,
        reserved=reserved,
        blocks=[BlockView.of(d) for d in docs],
        next_after=format_after(cursor),
    )


@router.get("/holdings", tags=["holdings"])
async def read_holdings(request: Request, actor: ActorDep) -> list[HoldingTotal]:
    """Units held in this registry per account, unit type and period (a holder's
    representative: its accounts only), read from the maintained holdings summaries."""
    svc = service_of(request)
    readable = readable_accounts(actor)
    return [_total(r) for r in await svc.store.units.totals(svc.code)
            if readable is None or r["account_id"] in readable]


# transactions


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
    replaced_blocks: list[BlockView] = Field(
        default_factory=list, description="replacement: the tCER/lCER blocks replaced")
    supplementary_type: int = Field(
        default=0, description="the kind within the type (protocol.md 2.6): 47 and 49 share "
                               "of proceeds, 45 Art. 3.7ter, 48 mandatory cancellation, 38/39 "
                               "carry-over")
    notification_id: int | None = None
    decision_id: str | None = None
    reference: str | None
    initiated_by: str | None = Field(
        default=None, description="who asked for it: the role acted in and the person "
        "(holder:1001 kz-holder-1001); null when the registry proposed it by itself (a "
        "decision carried out when due, a share of proceeds) or it came from another "
        "registry")
    approved_by: str | None = Field(
        default=None, description="the second person who approved it (four-eyes "
                                  "approval, docs/adr/0018)")
    approval_id: str | None = None
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
            replaced_blocks=[BlockView.wire(b) for b in
                             doc.get("proposal", {}).get("replaced_blocks", [])],
            supplementary_type=doc.get("proposal", {}).get("supp_transaction_type") or 0,
            notification_id=doc.get("proposal", {}).get("notification_id"),
            decision_id=doc.get("decision_id"),
            reference=doc.get("reference"),
            initiated_by=doc.get("initiated_by"),
            approved_by=doc.get("approved_by"),
            approval_id=doc.get("approval_id"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )


def _ref_view(ref: dict[str, Any] | None) -> AccountRefView | None:
    return None if ref is None else AccountRefView(**ref)


REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "an account named in the request does not exist"},
    422: {"model": RefusalView,
          "description": "refused by the registry's own checks, with a response code"},
}


@router.get("/transactions", tags=["transactions"])
async def list_transactions(
    request: Request,
    actor: ActorDep,
    status_code: int | None = Query(default=None, alias="status", ge=1, le=8),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[TransactionView]:
    """Newest first; a holder's representative sees only those moving units out of or
    into its accounts."""
    docs = await service_of(request).store.transactions(status_code, limit,
                                                        readable_accounts(actor))
    return [TransactionView.of(d) for d in docs]


@router.get("/transactions/{transaction_id}", tags=["transactions"],
            responses={403: {"description": "a holder's representative reads only "
                                            "transactions of its accounts"},
                       404: {"description": "no such transaction"}})
async def read_transaction(transaction_id: str, request: Request,
                           actor: ActorDep) -> TransactionView:
    """A transaction with its status history and the response codes it received."""
    svc = service_of(request)
    doc = await svc.store.transaction(transaction_id)
    if doc is None:
        raise NotFound(f"transaction {transaction_id}")
    authorise_read(actor, transaction_accounts(doc, svc.code), f"transaction {transaction_id}")
    return TransactionView.of(doc)


def transaction_accounts(doc: Document, registry: str) -> list[int]:
    """The accounts of ``registry`` a transaction moves units out of or into."""
    return [side["account_id"] for side in (doc.get("transferring"), doc.get("acquiring"))
            if side is not None and side.get("registry") == registry]


@router.get("/codes/response", tags=["reference"])
async def response_codes() -> dict[int, str]:
    """Every response code the simulator uses, with its meaning."""
    return {int(code): text for code, text in RESPONSE_TEXT.items()}



# share of proceeds (1/CMP.8 para 21)


class ShareOfProceedsRow(BaseModel):
    commitment_period: int = Field(examples=[2])
    kind: ShareOfProceedsKind = Field(description="first_international_transfers_of_aau or "
                                                  "eru_issuance, reported apart")
    transferred: int = Field(description="units levied on: AAUs of the period first "
                                         "transferred abroad, or ERUs issued by conversion")
    due: int = Field(description="2 % of it, rounded down (shared.rules.periods)")
    contributed: int = Field(description="units transferred to the Adaptation Fund "
                                         "(CDM-100-1100) by every transfer of "
                                         "supplementary type 47 or 49, however proposed, "
                                         "counting open ones and the share a first "
                                         "transfer under way has set aside; what the ITL "
                                         "counts once all are final")
    owed: int = Field(description="due less contributed, never negative; while owed the "
                                  "ITL refuses the period's AAU and ERU transfers (4007)")
    transactions: list[str] = Field(description="the share-of-proceeds transactions")


class ShareOfProceedsPayment(BaseModel):
    transferring_account_id: Identifier = Field(description="the account that pays")
    unit_type: UnitTypeField = Field(
        default=UnitType.AAU, description="AAU for first transfers; ERU_FROM_AAU or "
                                          "ERU_FROM_RMU for ERU issuance")


def proceeds_of(request: Request) -> ShareOfProceeds:
    proceeds: ShareOfProceeds | None = request.app.state.proceeds
    if proceeds is None:
        raise NotFound("share of proceeds in the CDM registry")
    return proceeds


@router.get("/share-of-proceeds", tags=["share of proceeds"], dependencies=REGISTRY_READERS,
            responses={404: {"description": "the CDM registry levies no share of proceeds "
                                            "on itself"}})
async def share_of_proceeds(request: Request) -> list[ShareOfProceedsRow]:
    """The second period's share of proceeds per commitment period and kind: what it is
    levied on, due, contributed and owed, and its transactions (external transfers of
    supplementary type 47 and 49 to the Adaptation Fund; 1/CMP.8 para 21). The operator
    and the authorised body read it."""
    return [ShareOfProceedsRow.model_validate(r) for r in await proceeds_of(request).report()]


@router.post("/share-of-proceeds/{period}/{kind}/payment", status_code=status.HTTP_202_ACCEPTED,
             tags=["share of proceeds"],
             responses={**REFUSALS, 403: {"description": "only the operator pays"}})
async def pay_share_of_proceeds(period: Annotated[int, Path(ge=2, le=2)],
                                kind: ShareOfProceedsKind, body: ShareOfProceedsPayment,
                                request: Request,
                                actor: ActorDep) -> TransactionView:
    """Pay what is owed of the share of proceeds from an account (the registry levies it
    by itself after each first transfer or conversion; this is for an account that could
    not pay then). 404 when nothing is owed; 422 with 3002 when the account holds too
    few units."""
    authorise(actor, Operation.SHARE_OF_PROCEEDS)
    tx = await proceeds_of(request).pay(period, kind, body.transferring_account_id,
                                        body.unit_type)
    return TransactionView.of(tx)
