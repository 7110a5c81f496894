"""Four-eyes approval of the operations a person starts (docs/adr/0018).

An operation the registry's ``FOUR_EYES_OPERATIONS`` lists (by default the external
transfer), started by one person, waits for a second person's approval before it is
proposed to the ITL:

- the request is checked as any other (its 4xx at once), its writes dropped unsent (or
  its store transaction abandoned): nothing is proposed, reserved or counted, and the
  pending approval is stored (status ``pending``, ``expires_at`` = now +
  ``APPROVAL_EXPIRY_HOURS`` simulated hours);
- another person allowed to start the same operation on the same account (the same
  ``permissions.authorise`` rule; the initiator: 403) approves it: the operation runs
  again, every check against the books of that moment, and is proposed in the store
  transaction that closes the approval, so it is proposed once however many approvals
  race (the second meets a write conflict, then a closed approval: 409). A refusal at
  that moment (the units moved away: 3002) changes nothing and leaves it pending;
- anyone allowed to start it, the initiator too, may reject it with a reason; a pending
  approval not approved by ``expires_at`` expires (due work on the simulation clock).

Who initiated and who approved are kept on the transaction (``initiated_by``,
``approved_by``, as records keep actors: ``holder:1001 kz-holder-1001``). What the
registry proposes by itself (decisions carried out when their month ends, the share of
proceeds it levies, the CDM registry's forwarding) needs no approval.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pymongo import ASCENDING, DESCENDING

from services.registry.handlers import RegistryService, Work
from services.registry.permissions import Actor, Operation, authorise
from services.registry.store import checking_only
from shared.audit import account_key
from shared.auth import Forbidden
from shared.codes import UnitType
from shared.errors import NotFound
from shared.logs import log_event, rehearsing
from shared.store import Document, Session, find_known, know, next_sequence
from shared.store.batching import discarding

log = logging.getLogger("registry.approvals")

#: Operations a person starts that propose a transaction to the ITL: the ones four-eyes
#: approval can cover. (The operator's payment of an owed share of proceeds is not among
#: them: its amount and destination are the rule's, not the operator's choice.)
APPROVABLE_OPERATIONS = frozenset({
    Operation.ISSUANCE, Operation.CONVERSION, Operation.EXTERNAL_TRANSFER,
    Operation.INTERNAL_TRANSFER, Operation.WITHDRAWAL, Operation.EXPIRY_DATE_CHANGE,
    Operation.CANCELLATION, Operation.CARRY_OVER, Operation.RETIREMENT,
    Operation.REPLACEMENT,
})
#: Work run in the store transaction that proposes (or keeps pending) an operation, with
#: the transaction's (or the approval's) document.
Then = Callable[[Session, Document], Awaitable[None]]
#: Builds, inside the store transaction that approves, the plan of a pending approval
#: (its document as read there) for the approver, after checking the approver's right.
PlanFor = Callable[[Document, Session], Awaitable["Plan"]]
#: Covered unless configured otherwise: transfers out of the registry.
DEFAULT_FOUR_EYES_OPERATIONS = ("EXTERNAL_TRANSFER",)


def operation_named(name: str) -> Operation:
    """The operation of ``permissions.Operation`` called ``name``: its member name
    (``EXTERNAL_TRANSFER``, any case) or its value (``external transfer``);
    ``ValueError`` naming the approvable ones otherwise."""
    text = name.strip()
    key = text.upper().replace("-", "_").replace(" ", "_")
    operation = Operation.__members__.get(key) or Operation._value2member_map_.get(text)
    if not isinstance(operation, Operation) or operation not in APPROVABLE_OPERATIONS:
        names = ", ".join(sorted(o.name for o in APPROVABLE_OPERATIONS))
        raise ValueError(f"FOUR_EYES_OPERATIONS: {name!r} is not an operation four-eyes "
                         f"approval covers; one of {names}")
    return operation


def four_eyes_operations(names: Iterable[str]) -> frozenset[Operation]:
    return frozenset(operation_named(n) for n in names)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalConflict(Exception):
    """The approval is no longer pending (HTTP 409 with the reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Plan:
    """An operation a person asked for, checked and ready to run: ``work`` proposes its
    transaction in a store transaction; ``by`` is who asked, as records keep it,
    ``subject`` the person (the token's ``sub``), ``accounts`` the accounts of this
    registry it names; ``account_id`` and ``unit_type`` what ``permissions.authorise``
    decided on (who else may approve or reject it)."""

    operation: Operation
    by: str
    subject: str
    accounts: tuple[int, ...]
    work: Work
    account_id: int | None = None
    unit_type: UnitType | None = None


class _Rehearsed(Exception):
    """Ends a check that had to send its writes: its store transaction is abandoned."""


class ApprovalDesk:
    """Pending approvals of a registry (collection ``approvals``, ids ``A1``, ``A2``...).

    ``operations``: the operations that need a second person; ``expiry``: how long a
    pending approval waits (simulated time)."""

    def __init__(self, registry: RegistryService, operations: Iterable[Operation],
                 expiry: timedelta) -> None:
        self.registry = registry
        self.runtime = registry.runtime
        self.operations = frozenset(operations)
        self.expiry = expiry
        self.collection = registry.store.db.approvals
        know(self.collection, guard=("status",))
        self.audit = registry.store.audit
        registry.startup_tasks.append(self.ensure_indexes)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
        await self.collection.create_index([("accounts", ASCENDING)])

    def covers(self, operation: Operation) -> bool:
        return operation in self.operations

    def _now(self) -> datetime:
        """The simulation clock to the millisecond, as the store keeps it."""
        now = self.runtime.clock.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    # starting

    async def propose(self, plan: Plan, then: Then | None = None) -> Document:
        """Propose at once an operation nobody needs to approve; the transaction keeps
        who initiated it. ``then`` runs in the same store transaction with the proposed
        transaction (an idempotency key remembers its answer)."""

        async def work(session: Session) -> Document:
            tx = await plan.work(session)
            tx = await self._mark(tx, {"initiated_by": plan.by}, session)
            if then is not None:
                await then(session, tx)
            return tx

        return await self.runtime.commit(work)

    async def request(self, route: str, body: Document, plan: Plan,
                      then: Then | None = None) -> Document:
        """Check ``plan`` as if it were proposed now (its refusal is raised as it would
        be), then store it as a pending approval. ``route``: how to run it again
        (``operations_api``); ``body``: the request as JSON; ``then`` runs in the store
        transaction that stores the approval, with it.

        The check runs ``plan.work`` in the store transaction that then stores the
        approval, its writes dropped unsent (``shared.store.batching.discarding``):
        nothing of it is kept, and no transaction is abandoned for it. When the check had
        to send its writes (it read what it had written: a first transfer setting its
        share aside), that transaction is abandoned and the approval stored in another,
        as a check in its own store transaction always did."""

        async def store(session: Session) -> Document:
            now = self._now()
            number = await next_sequence(self.registry.store.db, "approval", session)
            doc: Document = {
                "_id": f"A{number}", "operation": plan.operation.value,
                "operation_name": plan.operation.name, "route": route, "request": body,
                "accounts": sorted(set(plan.accounts)),
                "authorised_on": {"account_id": plan.account_id,
                                  "unit_type": int(plan.unit_type) if plan.unit_type
                                  else None},
                "initiated_by": plan.by,
                "initiator": plan.subject, "initiated_at": now,
                "expires_at": now + self.expiry, "status": ApprovalStatus.PENDING.value,
                "approved_by": None, "approved_at": None, "rejected_by": None,
                "rejected_at": None, "reason": None, "expired_at": None,
                "transaction_id": None,
            }
            await self.collection.insert_one(doc, session=session)
            await self._record(doc, "approval_requested", session,
                               {"operation": plan.operation.value, "route": route,
                                "request": body, "expires_at": doc["expires_at"]})
            if then is not None:
                await then(session, doc)
            return doc

        async def checked_then_stored(session: Session) -> Document:
            with rehearsing(), checking_only(), discarding(session) as checked:
                await plan.work(session)
            if not checked.clean:
                raise _Rehearsed
            return await store(session)

        try:
            doc = await self.runtime.commit(checked_then_stored)
        except _Rehearsed:
            doc = await self.runtime.commit(store)
        log_event(log, "approval_requested", approval_id=doc["_id"],
                  operation=doc["operation"], initiated_by=plan.by,
                  expires_at=doc["expires_at"])
        return doc

    # deciding

    async def require(self, approval_id: str, session: Session | None = None) -> Document:
        """The approval (``NotFound``); in a store transaction, as this process last
        committed it when it knows it (``find_known``, docs/adr/0046)."""
        doc = await find_known(self.collection, approval_id, session)
        if doc is None:
            raise NotFound(f"approval {approval_id}")
        return doc

    async def _pending(self, approval_id: str, session: Session) -> Document:
        doc = await self.require(approval_id, session)
        if doc["status"] != ApprovalStatus.PENDING:
            raise ApprovalConflict(f"approval {approval_id} is {doc['status']}, not pending")
        return doc

    async def authorise(self, approval: Document, actor: Actor,
                        session: Session | None = None) -> str:
        """Who ``actor`` decides on ``approval`` as (as records keep it): someone allowed
        to start its operation on its account (``permissions.authorise``), else
        ``Forbidden`` naming the approval. With ``session``, the account is read in that
        store transaction (before it writes any), and that read also answers the request's
        later reads of it (``RegistryStore.account``, ``share_with_request``)."""
        rule = approval.get("authorised_on") or {}
        account = (await self.registry.require_account(rule["account_id"], session,
                                                       share_with_request=True)
                   if rule.get("account_id") is not None else None)
        unit_type = UnitType(rule["unit_type"]) if rule.get("unit_type") else None
        try:
            return authorise(actor, Operation(approval["operation"]), account, unit_type)
        except Forbidden as exc:
            raise Forbidden(f"approval {approval['_id']}: {exc.reason}") from exc

    async def approve(self, approval_id: str, plan_for: PlanFor) -> Document:
        """Approve, in one store transaction that reads the approval and its account once:
        the approval must be pending (else ``ApprovalConflict``; ``NotFound``); then
        ``plan_for`` checks the approver (the initiator: ``Forbidden``; someone not
        allowed to start it: ``Forbidden``) and builds the operation again for the
        approver; an approval whose time has come expires (``ApprovalConflict``);
        otherwise the plan proposes its transaction in the transaction that closes the
        approval. A check that fails now: its refusal, and the approval stays pending."""

        async def work(session: Session) -> tuple[Document | None, str]:
            current = await self._pending(approval_id, session)
            plan = await plan_for(current, session)
            check_second_person(current, plan.subject)
            now = self._now()
            if now >= current["expires_at"]:
                await self._close(current, ApprovalStatus.EXPIRED, now, session)
                return None, plan.by
            tx = await plan.work(session)
            tx = await self._mark(tx, {"initiated_by": current["initiated_by"],
                                       "approved_by": plan.by,
                                       "approval_id": approval_id}, session)
            await self._close(current, ApprovalStatus.APPROVED, now, session, by=plan.by,
                              transaction_id=tx["_id"])
            return tx, plan.by

        tx, by = await self.runtime.commit(work)
        if tx is None:
            raise ApprovalConflict(f"approval {approval_id} has expired")
        log_event(log, "approval_approved", approval_id=approval_id, approved_by=by,
                  transaction_id=tx["_id"])
        return tx

    async def reject(self, approval_id: str, by: str, reason: str) -> Document:
        """Reject a pending approval (``by``: who, as records keep it); nothing is
        proposed. No longer pending or expired: ``ApprovalConflict``."""

        async def work(session: Session) -> Document | None:
            current = await self._pending(approval_id, session)
            now = self._now()
            if now >= current["expires_at"]:
                await self._close(current, ApprovalStatus.EXPIRED, now, session)
                return None
            return await self._close(current, ApprovalStatus.REJECTED, now, session, by=by,
                                     reason=reason)

        doc = await self.runtime.commit(work)
        if doc is None:
            raise ApprovalConflict(f"approval {approval_id} has expired")
        log_event(log, "approval_rejected", approval_id=approval_id, rejected_by=by,
                  reason=reason)
        return doc

    async def expire_due(self) -> None:
        """Due work: every pending approval whose ``expires_at`` has come expires."""
        now = self._now()
        due = await self.collection.find(
            {"status": ApprovalStatus.PENDING.value, "expires_at": {"$lte": now}},
            {"_id": 1}).to_list()
        for doc in due:
            await self.runtime.commit(functools.partial(self._expire, doc["_id"]))

    async def _expire(self, approval_id: str, session: Session) -> None:
        current = await self.require(approval_id, session)
        now = self._now()
        if current["status"] == ApprovalStatus.PENDING and now >= current["expires_at"]:
            await self._close(current, ApprovalStatus.EXPIRED, now, session)
            log_event(log, "approval_expired", approval_id=approval_id,
                      expires_at=current["expires_at"])

    async def _close(self, current: Document, status: ApprovalStatus, now: datetime,
                     session: Session, by: str | None = None, reason: str | None = None,
                     transaction_id: str | None = None) -> Document:
        """Move a pending approval to ``status`` (written in ``session``, so a concurrent
        decision on it conflicts) and record it."""
        fields: Document = {"status": status.value}
        if status == ApprovalStatus.APPROVED:
            fields |= {"approved_by": by, "approved_at": now, "transaction_id": transaction_id}
        elif status == ApprovalStatus.REJECTED:
            fields |= {"rejected_by": by, "rejected_at": now, "reason": reason}
        else:
            fields |= {"expired_at": now}
        await self.collection.update_one({"_id": current["_id"]}, {"$set": fields},
                                         session=session)
        closed = {**current, **fields}
        await self._record(closed, f"approval_{status.value}", session,
                           {k: v for k, v in fields.items() if v is not None})
        return closed

    async def _record(self, doc: Document, action: str, session: Session,
                      details: Document) -> None:
        await self.audit.record(
            session, action, approval_id=doc["_id"], transaction_id=doc.get("transaction_id"),
            accounts=[account_key(self.registry.code, a) for a in doc["accounts"]],
            details=details)

    async def _mark(self, tx: Document, fields: Document, session: Session) -> Document:
        """Keep who initiated (and approved) on the transaction."""
        await self.registry.store.db.transactions.update_one(
            {"_id": tx["_id"]}, {"$set": fields}, session=session)
        return {**tx, **fields}

    # reading

    async def list(self, status: ApprovalStatus | None, operation: Operation | None,
                   accounts: frozenset[int] | None, limit: int) -> list[Document]:
        """Newest first; with ``accounts``, only those naming one of them."""
        query: Document = {}
        if status is not None:
            query["status"] = status.value
        if operation is not None:
            query["operation"] = operation.value
        if accounts is not None:
            query["accounts"] = {"$in": sorted(accounts)}
        cursor = self.collection.find(query).sort("initiated_at", DESCENDING).limit(limit)
        return await cursor.to_list()


def check_second_person(approval: Document, subject: str) -> None:
    """The approver is not the person who initiated it (``Forbidden`` with the reason)."""
    if subject == approval["initiator"]:
        raise Forbidden(f"approval {approval['_id']} was initiated by {subject} "
                        f"({approval['initiated_by']}): a second person approves it")
