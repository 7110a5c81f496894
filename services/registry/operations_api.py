"""The registry's operations (Decree 684 cl. 3), decisions of the authorised body and
ITL notices. Every endpoint needs a bearer token; the wrong actor gets 403 with the
reason (``permissions``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field

from services.registry.api import (
    REFUSALS,
    REGISTRY_READERS,
    ActorDep,
    RefusalView,
    service_of,
)
from services.registry.approvals import Plan
from services.registry.approvals_api import (
    PROPOSAL_DESCRIPTION,
    PlanRoute,
    Proposal,
    carry_out,
)
from services.registry.decisions import (
    Decision,
    DecisionKind,
    FollowUp,
    WithdrawalGround,
    execution_moment,
    follow_up,
)
from services.registry.handlers import (
    DecisionDesk,
    Operations,
    TransferUnits,
    decision_from_doc,
)
from services.registry.notices import decree_due_at, notice_follow_up
from services.registry.permissions import (
    Actor,
    Operation,
    authorise,
    authorise_read,
    readable_accounts,
)
from shared.bounds import Identifier, Quantity, RequiredName, RequiredText, SimulatedDay
from shared.codes import (
    AccountType,
    LulucfActivity,
    ResponseCode,
    TransactionType,
    UnitType,
)
from shared.contracts import UnitBlockWire, block_from_wire
from shared.errors import NotFound, RuleViolation
from shared.http_types import AccountTypeField, UnitTypeField
from shared.idempotency import IdempotencyKeyHeader
from shared.store import Document, Session

router = APIRouter()
PERMISSION: dict[int | str, dict[str, Any]] = {
    403: {"description": "the request's actor may not start this operation"}}
RESPONSES: dict[int | str, dict[str, Any]] = {**REFUSALS, **PERMISSION}
PROPOSAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES, 202: {"description": PROPOSAL_DESCRIPTION},
    409: {"model": RefusalView, "description": "the decision the operation carries out "
          "does not allow it (another kind, unit type or quantity; executed by itself); "
          "detail and response_code"},
    422: {"description": f"{REFUSALS[422]['description']}; or its Idempotency-Key was "
                         "used before with another request (the detail names the header)",
          "model": REFUSALS[422]["model"]}}


def desk_of(request: Request) -> DecisionDesk:
    desk: DecisionDesk = request.app.state.decisions
    return desk


def operations_of(request: Request) -> Operations:
    operations: Operations = request.app.state.operations
    return operations


# decisions


class DecisionCreate(BaseModel):
    kind: DecisionKind = Field(description="issuance, conversion, external_transfer, "
                               "withdrawal, replacement, cancellation or retirement")
    reference: RequiredName = Field(examples=["MEP order 2013-117"],
                           description="the authorised body's own number for the decision")
    unit_type: UnitTypeField = Field(examples=["AAU"])
    quantity: Quantity = Field(description="units; cancellation and "
                          "retirement: the quantity the commitment sets (cl. 29)")
    account_id: Identifier = Field(default=1, description="account the units come from")
    commitment_period: int = Field(
        default=2, ge=1, le=2, description="period of the units; cancellation and "
        "retirement are decided after its end (cl. 28)")
    ground: WithdrawalGround | None = Field(default=None, description="withdrawal: cl. 22")
    notice_id: Identifier | None = Field(
        default=None, description="the ITL notice it answers (withdrawal: 1, 2; "
        "replacement: 3, 4, 5); its month then counts from the notice's receipt")
    project_id: str | None = Field(default=None, max_length=32,
                                   description="conversion: the JI project")
    lulucf_activity: LulucfActivity | None = Field(default=None,
                                                   description="RMU issuance")
    cancellation_account_type: AccountTypeField | None = None


class DecisionView(BaseModel):
    decision_id: str
    kind: str
    reference: str
    unit_type: str
    quantity: int
    used_quantity: int
    account_id: int
    commitment_period: int
    decided_at: datetime
    due_at: datetime | None = Field(
        description="withdrawal and replacement: one month from the receipt of the notice "
                    "it answers, else from the decision, or from the revision that "
                    "upheld an appeal (cl. 23, 26)")
    executes_at: datetime | None = Field(
        default=None, description="withdrawal and replacement: when the registry carries "
        "it out by itself unless appealed (DECISION_EXECUTION_LEAD_HOURS before due_at)")
    state: str
    follow_up: FollowUp = Field(description="due, overdue, suspended, in_progress, done, "
                                            "done_late (completed after due_at), dropped "
                                            "or open")
    ground: str | None = None
    notice_id: int | None = None
    project_id: str | None = None
    decided_by: str | None = Field(
        default=None, description="who recorded it: role and subject "
                                  "(authorised-body kz-ab-1)")
    transaction_ids: list[str]
    executed_at: datetime | None = None
    appeal: dict[str, Any] | None = None
    revisions: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, doc: Document, now: datetime, lead: timedelta) -> DecisionView:
        decision = decision_from_doc(doc)
        return cls(
            decision_id=decision.decision_id, kind=decision.kind.value,
            reference=decision.reference, unit_type=decision.unit_type.name,
            quantity=decision.quantity, used_quantity=decision.used_quantity,
            account_id=decision.account_id, commitment_period=decision.commitment_period,
            decided_at=decision.decided_at, due_at=decision.due_at,
            executes_at=execution_moment(decision, lead),
            state=decision.state.value, follow_up=follow_up(decision, now),
            ground=decision.ground.value if decision.ground else None,
            notice_id=decision.notice_id, project_id=decision.project_id,
            decided_by=decision.decided_by, transaction_ids=list(decision.transaction_ids),
            executed_at=decision.executed_at,
            appeal=doc.get("appeal"), revisions=doc.get("revisions", []),
        )


class AppealBody(BaseModel):
    grounds: RequiredText


class RevisionBody(BaseModel):
    quantity: Quantity | None = None
    drop: bool = False


class DismissalBody(BaseModel):
    reasons: str = Field(default="", max_length=2000)


def _view(desk: DecisionDesk, doc: Document) -> DecisionView:
    return DecisionView.of(doc, desk.runtime.clock.now(), desk.execution_lead)


@router.post("/decisions", status_code=status.HTTP_201_CREATED, tags=["decisions"],
             responses=RESPONSES)
async def record_decision(body: DecisionCreate, request: Request,
                          actor: ActorDep) -> DecisionView:
    """Record a decision of the authorised body at the simulation clock's time.

    Withdrawal (needs a ``ground``) and replacement (needs a ``notice_id``) decisions are
    due one month after the receipt of the ITL notice they answer, or after the decision
    (cl. 23, 26). Cancellation and retirement decisions are taken after the end of their
    commitment period (cl. 28: 422 otherwise). A notice that asks for another operation
    or is completed: 4005."""
    by = authorise(actor, Operation.RECORD_DECISION)
    desk = desk_of(request)
    decision = Decision(
        decision_id="", kind=body.kind, reference=body.reference,
        decided_at=desk.runtime.clock.now(), unit_type=body.unit_type,
        quantity=body.quantity, account_id=body.account_id,
        commitment_period=body.commitment_period, ground=body.ground,
        notice_id=body.notice_id, project_id=body.project_id,
        lulucf_activity=int(body.lulucf_activity) if body.lulucf_activity else None,
        cancellation_account_type=body.cancellation_account_type, decided_by=by,
    )
    return _view(desk, await desk.record(decision))


@router.get("/decisions", tags=["decisions"])
async def list_decisions(
    request: Request,
    actor: ActorDep,
    follow_up_filter: Annotated[FollowUp | None, Query(alias="follow_up")] = None,
) -> list[DecisionView]:
    """Decisions, newest first, with what is due, overdue and done; a holder's
    representative sees those about its accounts."""
    desk = desk_of(request)
    readable = readable_accounts(actor)
    query = None if readable is None else {"account_id": {"$in": sorted(readable)}}
    views = [_view(desk, d) for d in await desk.store.decisions(query)]
    return [v for v in views if follow_up_filter in (None, v.follow_up)]


@router.get("/decisions/{decision_id}", tags=["decisions"], responses=PERMISSION)
async def read_decision(decision_id: str, request: Request, actor: ActorDep) -> DecisionView:
    """One decision (a holder's representative: one about its accounts)."""
    desk = desk_of(request)
    doc = await desk.store.decision(decision_id)
    if doc is None:
        raise NotFound(f"decision {decision_id}")
    authorise_read(actor, [doc["account_id"]], f"decision {decision_id}")
    return _view(desk, doc)


@router.post("/decisions/{decision_id}/appeal", tags=["decisions"], responses=RESPONSES)
async def appeal_decision(decision_id: str, body: AppealBody, request: Request,
                          actor: ActorDep) -> DecisionView:
    """Appeal a withdrawal or replacement decision within its month (up to ``due_at``
    inclusive) while it is not yet carried out: it is suspended until the authorised body
    revises it or dismisses the appeal; an appeal left unanswered when the month ends
    lapses and the decision is carried out (cl. 23, 26). Too late or already carried
    out: 409. Appealed by the holder of the decision's account (a person or former
    operator holding account) or by the operator; anyone else, the authorised body
    included: 403."""
    desk = desk_of(request)
    decision = await desk.require(decision_id)
    account = await desk.registry.require_account(decision.account_id)
    by = authorise(actor, Operation.APPEAL_DECISION, account)
    return _view(desk, await desk.appeal(decision_id, by, body.grounds))


@router.post("/decisions/{decision_id}/revise", tags=["decisions"], responses=RESPONSES)
async def revise_decision(decision_id: str, body: RevisionBody, request: Request,
                          actor: ActorDep) -> DecisionView:
    """The authorised body changes (new quantity) or drops a decision, within its month
    (409 after ``due_at``: the decision stands). A revision that answers an appeal starts
    a new month from the revision (cl. 23, 26: units "appealed and revised"); one of a
    decision nobody appealed keeps its due date."""
    by = authorise(actor, Operation.REVISE_DECISION)
    desk = desk_of(request)
    return _view(desk, await desk.revise(decision_id, body.quantity, body.drop, by))


@router.post("/decisions/{decision_id}/dismiss-appeal", tags=["decisions"],
             responses=RESPONSES)
async def dismiss_appeal(decision_id: str, request: Request, actor: ActorDep,
                         body: DismissalBody | None = None) -> DecisionView:
    """The authorised body dismisses the appeal: the decision is in force again with its
    original due date, and is carried out at once when its execution moment has passed
    (409 when it is not appealed)."""
    by = authorise(actor, Operation.DISMISS_APPEAL)
    desk = desk_of(request)
    reasons = body.reasons if body is not None else ""
    return _view(desk, await desk.dismiss_appeal(decision_id, reasons, by))


@router.post("/decisions/{decision_id}/execute", status_code=status.HTTP_202_ACCEPTED,
             tags=["decisions"], responses=PROPOSAL_RESPONSES)
async def execute_decision(decision_id: str, request: Request, actor: ActorDep,
                           idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """Carry out a withdrawal or replacement decision now (the registry also does so by
    itself at ``executes_at``, unless appealed, and needs nobody's approval then).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, EXECUTION, DecisionExecution(decision_id=decision_id),
                           actor, idempotency_key)


# notices


class NoticeView(BaseModel):
    notice_id: int
    notice_type: int
    status: int
    required_action: str
    action_due_date: date | None = Field(description="the ITL's deadline")
    target_value: int | None
    fulfilled_quantity: int
    unit_type: int | None = None
    commitment_period: int | None = None
    project_id: str | None = None
    blocks: list[dict[str, Any]]
    text: str
    received_at: datetime = Field(description="first receipt in this registry")
    due_at: datetime | None = Field(
        default=None, description="the Decree's deadline of a withdrawal (1, 2) or "
        "replacement (3, 4, 5) notice: one month from its receipt (cl. 23, 26)")
    follow_up: FollowUp = Field(description="due, overdue, done, done_late (completed "
                                            "after due_at) or open (no Decree deadline)")
    fulfilled_at: datetime | None = Field(
        default=None, description="when the ITL's report of its completion arrived")

    @classmethod
    def of(cls, doc: Document, now: datetime) -> NoticeView:
        received_at = doc["received_at"]
        fields = {k: v for k, v in doc.items() if k in cls.model_fields}
        return cls(**{**fields, "notice_id": doc["_id"],
                      "due_at": decree_due_at(doc["notice_type"], received_at),
                      "follow_up": notice_follow_up(doc["notice_type"], doc["status"],
                                                    received_at, doc.get("fulfilled_at"),
                                                    now)})


@router.get("/notices", tags=["notices"], responses=PERMISSION,
            dependencies=REGISTRY_READERS)
async def list_notices(
    request: Request,
    follow_up_filter: Annotated[FollowUp | None, Query(alias="follow_up")] = None,
) -> list[NoticeView]:
    """ITL notices, newest first, with the action each requires, the ITL's deadline and
    the Decree's, and where each stands (the operator and the authorised body)."""
    desk = desk_of(request)
    now = desk.runtime.clock.now()
    views = [NoticeView.of(d, now) for d in await desk.store.notices()]
    return [v for v in views if follow_up_filter in (None, v.follow_up)]


@router.get("/notices/{notice_id}", tags=["notices"], responses=PERMISSION,
            dependencies=REGISTRY_READERS)
async def read_notice(notice_id: Identifier, request: Request) -> NoticeView:
    """One ITL notice (the operator and the authorised body)."""
    desk = desk_of(request)
    doc = await desk.store.notice(notice_id)
    if doc is None:
        raise NotFound(f"notice {notice_id}")
    return NoticeView.of(doc, desk.runtime.clock.now())


# operations


class IssuanceRequest(BaseModel):
    decision_id: str = Field(description="the issuance decision of the authorised body",
                             examples=["D1"])
    quantity: Quantity | None = Field(default=None,
                                 description="default: what the decision leaves")
    acquiring_account_id: Identifier = Field(default=1, description="Party holding account")


class TransferRequest(BaseModel):
    transferring_account_id: Identifier
    acquiring_account_id: Identifier
    acquiring_account_type: AccountTypeField = Field(default=AccountType.PERSON_HOLDING)
    unit_type: UnitTypeField = Field(examples=["AAU"])
    quantity: Quantity
    commitment_period: int = Field(default=2, ge=1, le=2)
    reference: str | None = Field(default=None, max_length=200)


class ExternalTransferRequest(TransferRequest):
    acquiring_registry: str = Field(pattern=r"^([A-Z]{2}|CDM)$", examples=["JP"])
    decision_id: str | None = Field(default=None, description="ERUs: cl. 16-18")
    notice_id: Identifier | None = Field(default=None, description="notices 6, 12, 13")


class HoldingOperation(BaseModel):
    transferring_account_id: Identifier = 1
    unit_type: UnitTypeField = Field(examples=["AAU"])
    quantity: Quantity
    commitment_period: int = Field(default=2, ge=1, le=2)


class ConversionRequest(HoldingOperation):
    project_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,32}$", examples=["KZ-JI-0001"])
    track: int = Field(ge=1, le=2)
    decision_id: str | None = Field(default=None,
                                    description="track 1: the national decision (cl. 12)")


#: Cancellations the Doha Amendment itself orders, with no decision or notice (O).
TREATY_CANCELLATION_ACCOUNT_TYPES = frozenset({AccountType.ARTICLE_37TER_CANCELLATION,
                                              AccountType.AMBITION_INCREASE_CANCELLATION})


class CancellationRequest(HoldingOperation):
    account_type: AccountTypeField = Field(default=AccountType.VOLUNTARY_CANCELLATION,
                                           description="the cancellation account's type")
    account_id: Identifier | None = Field(
        default=None, description="the cancellation account; by default the one of "
        "account_type for the units' commitment period (another period's: 5903)")
    notice_id: Identifier | None = None
    decision_id: str | None = Field(
        default=None, description="a cancellation decision about these units' period")


class RetirementRequest(BaseModel):
    decision_id: str = Field(description="the retirement decision of the authorised body "
                             "(cl. 27-29): it names the units, account and period",
                             examples=["D7"])
    quantity: Quantity | None = Field(default=None,
                                 description="default: what the decision leaves")


class CarryOverRequest(HoldingOperation):
    commitment_period: int = Field(default=1, ge=1, le=1,
                                   description="the period the units leave")
    notice_id: Identifier | None = None


class ExpiryDateChangeRequest(BaseModel):
    account_id: Identifier = 1
    notice_id: Identifier = Field(description="the ITL notice (type 9) listing the blocks")
    new_expiry_date: SimulatedDay


class ReplacementRequest(BaseModel):
    notice_id: Identifier = Field(description="the ITL notice listing the blocks to replace")
    unit_type: UnitTypeField = Field(description="the replacing units", examples=["AAU"])
    transferring_account_id: Identifier = 1
    commitment_period: int = Field(default=2, ge=1, le=2)


async def plan_issuance(request: Request, body: IssuanceRequest, actor: Actor) -> Plan:
    by = authorise(actor, Operation.ISSUANCE)
    if service_of(request).profile.is_cdm:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            "the CDM registry issues for a project: POST "
                            "/projects/{project_id}/issuances")
    work = operations_of(request).issue_work(body.decision_id, body.quantity,
                                             body.acquiring_account_id)
    return Plan(Operation.ISSUANCE, by, actor.subject, (body.acquiring_account_id,), work)


ISSUANCE = PlanRoute("issuance", IssuanceRequest, plan_issuance)


@router.post("/transactions/issuance", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_issuance(body: IssuanceRequest, request: Request,
                           actor: ActorDep,
                           idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """1. Issuance of AAUs or RMUs on a decision of the authorised body (cl. 10-15).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, ISSUANCE, body, actor, idempotency_key)


async def plan_conversion(request: Request, body: ConversionRequest, actor: Actor) -> Plan:
    by = authorise(actor, Operation.CONVERSION)
    if body.unit_type not in (UnitType.AAU, UnitType.RMU):
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            "only AAUs and RMUs are converted into ERUs")
    if body.track == 1 and body.decision_id is None:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "a track 1 conversion rests on a decision (decision_id)")
    account = await service_of(request).require_account(body.transferring_account_id)
    command = TransferUnits(
        transaction_type=TransactionType.CONVERSION,
        transferring_account_id=account.account_id, acquiring_registry=account.registry,
        acquiring_account_type=account.account_type, acquiring_account_id=account.account_id,
        unit_type=body.unit_type, quantity=body.quantity,
        commitment_period=body.commitment_period, project_id=body.project_id,
        track=body.track, decision_id=body.decision_id)
    return _plan(request, Operation.CONVERSION, by, actor, command, DecisionKind.CONVERSION)


CONVERSION = PlanRoute("conversion", ConversionRequest, plan_conversion)


@router.post("/transactions/conversion", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_conversion(body: ConversionRequest, request: Request,
                             actor: ActorDep,
                             idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """2. Conversion of AAUs or RMUs into ERUs for a JI project (cl. 12-13): track 1 on a
    national decision, track 2 on the JISC data the ITL holds.
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, CONVERSION, body, actor, idempotency_key)


async def plan_external_transfer(request: Request, body: ExternalTransferRequest,
                                 actor: Actor) -> Plan:
    svc = service_of(request)
    account = await svc.require_account(body.transferring_account_id)
    by = authorise(actor, Operation.EXTERNAL_TRANSFER, account, body.unit_type)
    if body.acquiring_registry == svc.code:
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            "the acquiring registry is this registry: use internal-transfer")
    eru = body.unit_type in (UnitType.ERU_FROM_AAU, UnitType.ERU_FROM_RMU)
    if eru and body.decision_id is None and not svc.profile.is_cdm:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "ERUs leave the registry on a decision of the authorised body "
                            "(cl. 16): decision_id")
    command = _transfer(body, body.acquiring_registry, decision_id=body.decision_id,
                        notification_id=body.notice_id)
    return _plan(request, Operation.EXTERNAL_TRANSFER, by, actor, command,
                 DecisionKind.EXTERNAL_TRANSFER, account_id=account.account_id,
                 unit_type=body.unit_type)


EXTERNAL_TRANSFER = PlanRoute("external-transfer", ExternalTransferRequest,
                              plan_external_transfer)


@router.post("/transactions/external-transfer", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_external_transfer(body: ExternalTransferRequest, request: Request,
                                    actor: ActorDep,
                                    idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """3. Transfer to an account of another registry (cl. 16-20); ERUs on a decision.
    By default it awaits a second person's approval (FOUR_EYES_OPERATIONS).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, EXTERNAL_TRANSFER, body, actor, idempotency_key)


async def plan_internal_transfer(request: Request, body: TransferRequest,
                                 actor: Actor) -> Plan:
    svc = service_of(request)
    account = await svc.require_account(body.transferring_account_id)
    by = authorise(actor, Operation.INTERNAL_TRANSFER, account, body.unit_type)
    return _plan(request, Operation.INTERNAL_TRANSFER, by, actor, _transfer(body, svc.code),
                 account_id=account.account_id, unit_type=body.unit_type,
                 accounts=(account.account_id, body.acquiring_account_id))


INTERNAL_TRANSFER = PlanRoute("internal-transfer", TransferRequest, plan_internal_transfer)


@router.post("/transactions/internal-transfer", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_internal_transfer(body: TransferRequest, request: Request,
                                    actor: ActorDep,
                                    idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """4. Transfer between two accounts of this registry, on the instruction of the
    holder of the transferring account (cl. 21).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, INTERNAL_TRANSFER, body, actor, idempotency_key)


async def plan_cancellation(request: Request, body: CancellationRequest,
                            actor: Actor) -> Plan:
    by = authorise(actor, Operation.CANCELLATION)
    treaty = body.account_type in TREATY_CANCELLATION_ACCOUNT_TYPES
    if body.notice_id is None and body.decision_id is None and not treaty:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            "a cancellation rests on an ITL notice (notice_id) or a "
                            "decision of the authorised body (decision_id)")
    svc = service_of(request)
    target = body.account_id or await _fixed_account(request, body.account_type,
                                                     body.commitment_period)
    command = TransferUnits(
        transaction_type=TransactionType.CANCELLATION,
        transferring_account_id=body.transferring_account_id, acquiring_registry=svc.code,
        acquiring_account_type=body.account_type, acquiring_account_id=target,
        unit_type=body.unit_type, quantity=body.quantity,
        commitment_period=body.commitment_period, notification_id=body.notice_id,
        decision_id=body.decision_id)
    return _plan(request, Operation.CANCELLATION, by, actor, command,
                 DecisionKind.CANCELLATION)


CANCELLATION = PlanRoute("cancellation", CancellationRequest, plan_cancellation)


@router.post("/transactions/cancellation", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_cancellation(body: CancellationRequest, request: Request,
                               actor: ActorDep,
                               idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """5./7. Withdrawal on an ITL notice (cl. 22) or cancellation on a decision taken
    after the end of the commitment period (cl. 27-29), into the cancellation account of
    the units' commitment period. The Doha Amendment's cancellations (Art. 3.7ter into
    270, ambition increase into 280, period-2 AAUs of the Party holding account) rest on
    the treaty itself: the ITL holds the Art. 3.7ter quantity and refuses more (4010).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, CANCELLATION, body, actor, idempotency_key)


async def plan_expiry_date_change(request: Request, body: ExpiryDateChangeRequest,
                                  actor: Actor) -> Plan:
    by = authorise(actor, Operation.EXPIRY_DATE_CHANGE)
    svc = service_of(request)
    notice = await desk_of(request).store.notice(body.notice_id)
    if notice is None:
        raise NotFound(f"notice {body.notice_id}")
    blocks = [block_from_wire(UnitBlockWire.model_validate(b)) for b in notice["blocks"]]
    if not blocks:
        raise RuleViolation(ResponseCode.MISSING_FIELD,
                            f"notice {body.notice_id} lists no blocks")
    account = await svc.require_account(body.account_id)
    command = TransferUnits(
        transaction_type=TransactionType.EXPIRY_DATE_CHANGE,
        transferring_account_id=account.account_id, acquiring_registry=svc.code,
        acquiring_account_type=account.account_type, acquiring_account_id=account.account_id,
        unit_type=blocks[0].attributes.unit_type, quantity=sum(b.quantity for b in blocks),
        commitment_period=blocks[0].attributes.applicable_commitment_period,
        notification_id=body.notice_id, new_expiry_date=body.new_expiry_date)
    return Plan(Operation.EXPIRY_DATE_CHANGE, by, actor.subject, (account.account_id,),
                operations_of(request).move_work(command, blocks=blocks))


EXPIRY_DATE_CHANGE = PlanRoute("expiry-date-change", ExpiryDateChangeRequest,
                               plan_expiry_date_change)


@router.post("/transactions/expiry-date-change", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_expiry_date_change(body: ExpiryDateChangeRequest, request: Request,
                                     actor: ActorDep,
                                     idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """6. Change of the expiry date of the tCERs/lCERs an ITL notice lists.
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, EXPIRY_DATE_CHANGE, body, actor, idempotency_key)


async def plan_carry_over(request: Request, body: CarryOverRequest, actor: Actor) -> Plan:
    by = authorise(actor, Operation.CARRY_OVER)
    svc = service_of(request)
    if body.unit_type == UnitType.AAU:
        target_type = AccountType.PREVIOUS_PERIOD_SURPLUS_RESERVE
        target = await _fixed_account(request, target_type)
    else:
        account = await svc.require_account(body.transferring_account_id)
        target_type, target = account.account_type, account.account_id
    command = TransferUnits(
        transaction_type=TransactionType.CARRY_OVER,
        transferring_account_id=body.transferring_account_id, acquiring_registry=svc.code,
        acquiring_account_type=target_type, acquiring_account_id=target,
        unit_type=body.unit_type, quantity=body.quantity,
        commitment_period=body.commitment_period, notification_id=body.notice_id)
    return _plan(request, Operation.CARRY_OVER, by, actor, command)


CARRY_OVER = PlanRoute("carry-over", CarryOverRequest, plan_carry_over)


@router.post("/transactions/carry-over", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_carry_over(body: CarryOverRequest, request: Request,
                             actor: ActorDep,
                             idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """8. Carry-over into the next commitment period (AAUs into the previous period
    surplus reserve; CERs and ERUs from AAUs in their account, within 2.5 %).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, CARRY_OVER, body, actor, idempotency_key)


async def plan_retirement(request: Request, body: RetirementRequest, actor: Actor) -> Plan:
    by = authorise(actor, Operation.RETIREMENT)
    desk = desk_of(request)
    decided = await desk.require(body.decision_id)

    async def prepare(session: Session) -> TransferUnits:
        decision = await desk.require(body.decision_id, session)
        target = await desk.period_account(AccountType.RETIREMENT, decision.commitment_period,
                                           session)
        return TransferUnits(
            transaction_type=TransactionType.RETIREMENT,
            transferring_account_id=decision.account_id, acquiring_registry=desk.registry.code,
            acquiring_account_type=AccountType.RETIREMENT,
            acquiring_account_id=target.account_id, unit_type=decision.unit_type,
            quantity=body.quantity or decision.remaining,
            commitment_period=decision.commitment_period, reference=decision.reference,
            decision_id=decision.decision_id)

    return Plan(Operation.RETIREMENT, by, actor.subject, (decided.account_id,),
                operations_of(request).move_work(prepare, DecisionKind.RETIREMENT))


RETIREMENT = PlanRoute("retirement", RetirementRequest, plan_retirement)


@router.post("/transactions/retirement", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_retirement(body: RetirementRequest, request: Request,
                             actor: ActorDep,
                             idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """Retirement for compliance (cl. 27-29; protocol.md 2.6, type 5) on a retirement
    decision taken after the end of its commitment period: units of the decision's type
    valid for that period leave the decision's account (a holding account or the
    previous period surplus reserve) for that period's retirement account. 409 when the
    decision is of another kind, not in force or leaves fewer units.
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, RETIREMENT, body, actor, idempotency_key)


async def plan_replacement(request: Request, body: ReplacementRequest, actor: Actor) -> Plan:
    by = authorise(actor, Operation.REPLACEMENT)
    desk = desk_of(request)

    async def prepare(session: Session) -> TransferUnits:
        return await desk.replacement_command(
            body.notice_id, body.unit_type, body.transferring_account_id,
            body.commitment_period, None, None, session)

    return Plan(Operation.REPLACEMENT, by, actor.subject, (body.transferring_account_id,),
                operations_of(request).move_work(prepare))


REPLACEMENT = PlanRoute("replacement", ReplacementRequest, plan_replacement)


@router.post("/transactions/replacement", status_code=status.HTTP_202_ACCEPTED,
             tags=["operations"], responses=PROPOSAL_RESPONSES)
async def propose_replacement(body: ReplacementRequest, request: Request,
                              actor: ActorDep,
                              idempotency_key: IdempotencyKeyHeader = None) -> Proposal:
    """Replacement of the tCERs/lCERs an ITL notice lists (cl. 24-26), with units of
    unlimited validity (or tCERs for tCERs).
    Retried with the same ``Idempotency-Key``, it answers the first answer and
    proposes nothing again (shared/idempotency.py)."""
    return await carry_out(request, REPLACEMENT, body, actor, idempotency_key)


class DecisionExecution(BaseModel):
    decision_id: str = Field(description="a withdrawal or replacement decision")


async def plan_execution(request: Request, body: DecisionExecution, actor: Actor) -> Plan:
    desk = desk_of(request)
    decision = await desk.require(body.decision_id)
    operation = (Operation.WITHDRAWAL if decision.kind == DecisionKind.WITHDRAWAL
                 else Operation.REPLACEMENT)
    by = authorise(actor, operation)
    return Plan(operation, by, actor.subject, (decision.account_id,),
                desk.execution_work(body.decision_id))


EXECUTION = PlanRoute("execute-decision", DecisionExecution, plan_execution)

#: Every operation started here, by the name a pending approval keeps (approvals_api).
PLAN_ROUTES: dict[str, PlanRoute[Any]] = {route.name: route for route in (
    ISSUANCE, CONVERSION, EXTERNAL_TRANSFER, INTERNAL_TRANSFER, CANCELLATION,
    EXPIRY_DATE_CHANGE, CARRY_OVER, RETIREMENT, REPLACEMENT, EXECUTION)}


def _plan(request: Request, operation: Operation, by: str, actor: Actor,
          command: TransferUnits, decision_kind: DecisionKind | None = None,
          account_id: int | None = None, unit_type: UnitType | None = None,
          accounts: tuple[int, ...] | None = None) -> Plan:
    """The plan of moving units by ``command`` (counted against its decision)."""
    return Plan(operation, by, actor.subject,
                accounts or (command.transferring_account_id,),
                operations_of(request).move_work(command, decision_kind),
                account_id=account_id, unit_type=unit_type)


async def _fixed_account(request: Request, account_type: AccountType,
                         period: int | None = None) -> int:
    """The government account of ``account_type`` (of ``period`` for the accounts kept
    per commitment period)."""
    if period is not None:
        return (await desk_of(request).period_account(account_type, period)).account_id
    account = await service_of(request).store.account_of_type(account_type)
    if account is None:
        raise NotFound(f"{account_type.name} account")
    return account.account_id


def _transfer(body: TransferRequest, acquiring_registry: str, **extra: Any) -> TransferUnits:
    return TransferUnits(
        transferring_account_id=body.transferring_account_id,
        acquiring_registry=acquiring_registry,
        acquiring_account_type=body.acquiring_account_type,
        acquiring_account_id=body.acquiring_account_id, unit_type=body.unit_type,
        quantity=body.quantity, commitment_period=body.commitment_period,
        reference=body.reference, **extra)
