"""Four-eyes approval over HTTP (docs/adr/0018): how an operation is started
(``carry_out``) and the routes of pending approvals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field, StringConstraints

from services.registry.api import ActorDep, TransactionView
from services.registry.approvals import (
    ApprovalConflict,
    ApprovalDesk,
    ApprovalStatus,
    Plan,
    check_second_person,
    operation_named,
)
from services.registry.permissions import Actor, authorise_read, readable_accounts
from shared.api_errors import invalid_input
from shared.bounds import Identifier
from shared.idempotency import IdempotencyKeys, Remember, once
from shared.store import Document, Session

B = TypeVar("B", bound=BaseModel)


@dataclass(frozen=True)
class PlanRoute(Generic[B]):
    """An operation that may need approval: its request model and how a request is
    checked and turned into a ``Plan`` for a caller (whose right to start it is checked
    first: ``Forbidden``). ``name`` is kept with a pending approval to run it again."""

    name: str
    body: type[B]
    plan: Callable[[Request, B, Actor], Awaitable[Plan]]


class ApprovalView(BaseModel):
    approval_id: str = Field(examples=["A3"])
    operation: str = Field(description="the operation (permissions.Operation)",
                           examples=["external transfer"])
    operation_name: str = Field(examples=["EXTERNAL_TRANSFER"])
    request: dict[str, Any] = Field(description="the request as it was made")
    accounts: list[int] = Field(description="accounts of this registry it names")
    status: ApprovalStatus = Field(description="pending, approved, rejected or expired")
    initiated_by: str = Field(examples=["holder:1001 kz-holder-1001"],
                              description="who asked: the role acted in and the person")
    initiated_at: datetime = Field(description="simulation clock, UTC")
    expires_at: datetime = Field(description="it expires unless approved before (simulated "
                                             "time; APPROVAL_EXPIRY_HOURS after initiated_at)")
    approved_by: str | None = None
    approved_at: datetime | None = None
    transaction_id: str | None = Field(default=None,
                                       description="the transaction its approval proposed")
    rejected_by: str | None = None
    rejected_at: datetime | None = None
    reason: str | None = Field(default=None, description="why it was rejected")
    expired_at: datetime | None = None

    @classmethod
    def of(cls, doc: Document) -> ApprovalView:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields}
        return cls(approval_id=doc["_id"], **fields)


#: What starting an operation answers (HTTP 202).
Proposal = TransactionView | ApprovalView
PROPOSAL_DESCRIPTION = ("the transaction proposed to the ITL, or, when the registry's "
                        "FOUR_EYES_OPERATIONS lists the operation, the approval it awaits "
                        "from a second person (status pending; docs/adr/0018)")


def approvals_of(request: Request) -> ApprovalDesk:
    desk: ApprovalDesk = request.app.state.approvals
    return desk


async def carry_out(request: Request, route: PlanRoute[B], body: B, actor: Actor,
                    idempotency_key: str | None = None) -> Proposal:
    """Start an operation: checked and proposed at once, or, when it needs a second
    person, checked and kept pending (``ApprovalView``). With ``idempotency_key`` (the
    ``Idempotency-Key`` header) it runs once per key of the caller: a repeated request
    answers the first answer (``IdempotentReplay``), another request under the key is
    ``IdempotencyKeyReused`` (422), and the key is remembered in the store transaction
    that proposes (shared/idempotency.py)."""
    desk = approvals_of(request)
    keys: IdempotencyKeys = request.app.state.idempotency
    made = keys.request(idempotency_key, actor.subject, route.name,
                        body.model_dump(mode="json"))

    async def run(remember: Remember | None) -> Proposal:
        plan = await route.plan(request, body, actor)
        if desk.covers(plan.operation):
            async def pending(session: Session, doc: Document) -> None:
                if remember is not None:
                    await remember(session, ApprovalView.of(doc).model_dump(mode="json"))

            return ApprovalView.of(await desk.request(
                route.name, body.model_dump(mode="json"), plan, pending))

        async def proposed(session: Session, doc: Document) -> None:
            if remember is not None:
                await remember(session, TransactionView.of(doc).model_dump(mode="json"))

        return TransactionView.of(await desk.propose(plan, proposed))

    return await once(made, run, status.HTTP_202_ACCEPTED)


router = APIRouter(tags=["approvals"])
NOT_PENDING: dict[int | str, dict[str, Any]] = {
    409: {"description": "the approval is no longer pending (approved, rejected or "
                         "expired)"}}
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                          max_length=500)]


class Rejection(BaseModel):
    reason: Reason = Field(examples=["the acquiring account is not the one agreed"])


@router.get("/approvals")
async def list_approvals(
    request: Request,
    actor: ActorDep,
    status_filter: Annotated[ApprovalStatus | None, Query(alias="status")] = None,
    operation: Annotated[str | None, Query(
        max_length=64, description="EXTERNAL_TRANSFER, ISSUANCE, ...")] = None,
    account: Annotated[Identifier | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ApprovalView]:
    """Approvals, newest first, by status, operation and account; a holder's
    representative sees those naming its accounts."""
    readable = readable_accounts(actor)
    if account is not None:
        authorise_read(actor, [account], f"the approvals of account {account}")
        readable = frozenset({account})
    try:
        wanted = operation_named(operation) if operation else None
    except ValueError as exc:
        raise invalid_input(("query", "operation"), str(exc), operation) from exc
    docs = await approvals_of(request).list(status_filter, wanted, readable, limit)
    return [ApprovalView.of(d) for d in docs]


@router.get("/approvals/{approval_id}", responses={403: {"description": "not of the "
                                                         "caller's accounts"}})
async def read_approval(approval_id: str, request: Request, actor: ActorDep) -> ApprovalView:
    """One approval (a holder's representative: one naming its accounts)."""
    doc = await approvals_of(request).require(approval_id)
    authorise_read(actor, doc["accounts"], f"approval {approval_id}")
    return ApprovalView.of(doc)


@router.post("/approvals/{approval_id}/approve", status_code=status.HTTP_202_ACCEPTED,
             responses={**NOT_PENDING,
                        403: {"description": "the initiator, or someone who may not start "
                                             "the operation on its account"},
                        422: {"description": "a check of the operation fails now (its "
                                             "response code); the approval stays pending"}})
async def approve(approval_id: str, request: Request, actor: ActorDep) -> TransactionView:
    """Approve a pending operation: a person other than its initiator, allowed to start
    the same operation on the same account (403 otherwise), runs it again against the
    books of this moment, and its transaction is proposed to the ITL, once (a second
    approval: 409; expired: 409). A check that fails now answers its refusal (422 with
    the response code) and leaves the approval pending."""
    desk = approvals_of(request)
    routes: Mapping[str, PlanRoute[Any]] = request.app.state.plan_routes

    async def plan_for(doc: Document, session: Session) -> Plan:
        check_second_person(doc, actor.subject)
        await desk.authorise(doc, actor, session)
        route = routes[doc["route"]]
        return await route.plan(request, route.body.model_validate(doc["request"]), actor)

    return TransactionView.of(await desk.approve(approval_id, plan_for))


@router.post("/approvals/{approval_id}/reject", responses={
    **NOT_PENDING, 403: {"description": "someone who may not start the operation"}})
async def reject(approval_id: str, body: Rejection, request: Request,
                 actor: ActorDep) -> ApprovalView:
    """Reject a pending operation with a reason: nothing is proposed. Anyone allowed to
    start it on the same account, its initiator included (who withdraws it)."""
    desk = approvals_of(request)
    doc = await _pending(desk, approval_id)
    by = await desk.authorise(doc, actor)
    return ApprovalView.of(await desk.reject(approval_id, by, body.reason))


async def _pending(desk: ApprovalDesk, approval_id: str) -> Document:
    doc = await desk.require(approval_id)
    if doc["status"] != ApprovalStatus.PENDING:
        raise ApprovalConflict(f"approval {approval_id} is {doc['status']}, not pending")
    return doc
