"""One function per command of the operator API and per message from the ITL:
load, call the domain, store, emit. Each runs in one store transaction."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.registry.domain import (
    Account,
    AccountStatus,
    Direction,
    Reaction,
    RegistryProfile,
    acquiring_refusal,
    check_can_transfer_from,
    check_issuance,
    choose_blocks,
    react_to_itl_status,
)
from services.registry.store import RegistryStore
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.codes import (
    ITL_CODE,
    RESPONSE_TEXT,
    AccountType,
    MessageType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import (
    AccountRef,
    Envelope,
    EvaluationResult,
    MessageAck,
    ProposalForwarded,
    ProposalSubmitted,
    TransactionStatusNotified,
    TransactionStatusReported,
    block_from_wire,
    block_to_wire,
)
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.service import Runtime
from shared.store import Document, Session, next_sequence
from shared.store.unit_blocks import Holder, block_to_doc, doc_to_block

log = logging.getLogger("registry")
S = TransactionStatus

#: Called inside the store transaction that makes a transaction final (completed or
#: terminated), with the transaction as it now stands; the CDM registry chains its
#: share-of-proceeds and forwarding transfers on it.
FinalStatusHook = Callable[[Document, Session], Awaitable[None]]


@dataclass(frozen=True)
class IssueUnits:
    """Create units on a decision of the authorised body (or of the CDM Executive Board)."""

    unit_type: UnitType
    quantity: int
    commitment_period: int
    acquiring_account_id: int
    decision_reference: str
    lulucf_activity: int | None = None
    project_id: str | None = None
    expiry_date: date | None = None


@dataclass(frozen=True)
class TransferUnits:
    """Move units from one of this registry's accounts to an account here or abroad."""

    transferring_account_id: int
    acquiring_registry: str
    acquiring_account_type: AccountType
    acquiring_account_id: int
    unit_type: UnitType
    quantity: int
    commitment_period: int
    reference: str | None = None


class RegistryService:
    """The registry's use cases over its store and the ITL."""

    def __init__(self, runtime: Runtime, store: RegistryStore, profile: RegistryProfile) -> None:
        self.runtime = runtime
        self.store = store
        self.profile = profile
        self.code = profile.code
        self.final_status_hooks: list[FinalStatusHook] = []
        #: Run once at start-up after the registry's own indexes exist.
        self.startup_tasks: list[Callable[[], Awaitable[None]]] = []

    # accounts

    async def create_account(self, account_type: AccountType, holder_name: str,
                             commitment_period: int) -> Account:
        async def work(session: Session) -> Account:
            return await self.store.create_account(
                account_type, holder_name, commitment_period, self.runtime.clock.now(), session
            )

        return await self.runtime.commit(work)

    async def require_account(self, account_id: int, session: Session | None = None) -> Account:
        account = await self.store.account(account_id, session)
        if account is None:
            raise NotFound(f"account {account_id} in registry {self.code}")
        return account

    # proposals

    async def propose_issuance(self, command: IssueUnits, session: Session) -> Document:
        """Propose new units to the ITL; they exist only once the ITL approves."""
        account = await self.require_account(command.acquiring_account_id, session)
        check_issuance(self.profile, command.unit_type, account, command.lulucf_activity)
        first = await next_sequence(self.store.db, f"serial:{self.code}", session,
                                    command.quantity)
        block = UnitBlock(
            UnitAttributes(
                originating_registry=self.code,
                unit_type=command.unit_type,
                original_commitment_period=command.commitment_period,
                applicable_commitment_period=command.commitment_period,
                lulucf_activity=command.lulucf_activity,
                project_id=command.project_id,
                expiry_date=command.expiry_date,
            ),
            SerialRange(first, first + command.quantity - 1),
        )
        transaction_id = await self.store.next_transaction_id(session)
        return await self._submit(
            session, transaction_id, TransactionType.ISSUANCE, None,
            _ref(account), [block], command.decision_reference,
        )

    async def issue(self, command: IssueUnits) -> Document:
        async def work(session: Session) -> Document:
            return await self.propose_issuance(command, session)

        return await self.runtime.commit(work)

    async def propose_transfer(self, command: TransferUnits, session: Session,
                               blocks: list[UnitBlock] | None = None) -> Document:
        """Reserve the units and propose an internal or external transfer to the ITL.

        ``blocks`` names the exact units to move; by default the lowest serials of the
        requested type and period are taken.
        """
        source = await self.require_account(command.transferring_account_id, session)
        check_can_transfer_from(source)
        acquiring = AccountRef(
            registry=command.acquiring_registry,
            account_type=command.acquiring_account_type,
            account_id=command.acquiring_account_id,
        )
        if command.acquiring_registry == self.code:
            transaction_type = TransactionType.INTERNAL_TRANSFER
            await self._check_internal_target(source, acquiring, session)
        else:
            transaction_type = TransactionType.EXTERNAL_TRANSFER
        if blocks is None:
            held = await self.store.units.held(
                {
                    "registry": self.code,
                    "account_id": source.account_id,
                    "unit_type": int(command.unit_type),
                    "applicable_cp": command.commitment_period,
                    "reserved_by": None,
                },
                session,
            )
            blocks = choose_blocks([doc_to_block(d) for d in held], command.quantity, source,
                                   command.unit_type)
        else:
            refusals = await self.store.units.check_reservable(
                blocks, _holder(source), "", session)
            if refusals:
                raise RuleViolation(refusals[0].code, f"block {refusals[0].block.serials} of "
                                    f"account {source.account_id}: "
                                    f"{RESPONSE_TEXT[refusals[0].code]}")
        transaction_id = await self.store.next_transaction_id(session)
        await self.store.units.reserve(blocks, transaction_id, session, int(transaction_type))
        return await self._submit(session, transaction_id, transaction_type, _ref(source),
                                  acquiring, blocks, command.reference)

    async def transfer(self, command: TransferUnits) -> Document:
        async def work(session: Session) -> Document:
            return await self.propose_transfer(command, session)

        return await self.runtime.commit(work)

    async def _check_internal_target(self, source: Account, acquiring: AccountRef,
                                     session: Session) -> None:
        target = await self.store.account(acquiring.account_id, session)
        if target is not None and target.account_type != acquiring.account_type:
            target = None
        refusal = acquiring_refusal(target, [])
        if refusal is not None:
            raise RuleViolation(
                refusal, f"{RESPONSE_TEXT[refusal]}: {self.code}-{int(acquiring.account_type)}"
                f"-{acquiring.account_id}"
            )
        if target is not None and target.account_id == source.account_id:
            raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                "transferring and acquiring account are the same")

    async def _submit(self, session: Session, transaction_id: str,
                      transaction_type: TransactionType, transferring: AccountRef | None,
                      acquiring: AccountRef, blocks: list[UnitBlock],
                      reference: str | None) -> Document:
        now = self.runtime.clock.now()
        proposal = ProposalSubmitted(
            transaction_id=transaction_id,
            transaction_type=transaction_type,
            transferring=transferring,
            acquiring=acquiring,
            blocks=[block_to_wire(b) for b in blocks],
        )
        doc = _transaction_doc(proposal, Direction.OUTGOING, now, reference)
        await self.store.insert_transaction(doc, session)
        await self.runtime.send(session, message_type=MessageType.PROPOSAL_SUBMITTED,
                                recipient=ITL_CODE, correlation_id=transaction_id,
                                payload=proposal)
        log_event(log, "transaction_proposed", transaction_id=transaction_id,
                  transaction_type=transaction_type.name, units=_units(blocks))
        return doc

    # messages from the ITL

    async def on_status_notified(self, envelope: Envelope,
                                 payload: TransactionStatusNotified) -> None:
        async def effect(session: Session) -> None:
            tx = await self.store.transaction(payload.transaction_id, session)
            if tx is None:
                log_event(log, "status_for_unknown_transaction", logging.WARNING,
                          transaction_id=payload.transaction_id, status=int(payload.status))
                return
            reaction = react_to_itl_status(
                Direction(tx["direction"]), TransactionType(tx["transaction_type"]),
                S(tx["status"]), payload.status,
            )
            results = [_result_doc(r) for r in payload.evaluation_results]
            await self._apply(tx, reaction, payload.status, results, envelope, session)

        await self.runtime.handle_once(envelope, effect)

    async def _apply(self, tx: Document, reaction: Reaction, incoming: TransactionStatus,
                     results: list[Document], envelope: Envelope, session: Session) -> None:
        transaction_id: str = tx["_id"]
        now = self.runtime.clock.now()
        acquiring = Holder(tx["acquiring"]["registry"], tx["acquiring"]["account_type"],
                           tx["acquiring"]["account_id"])
        if reaction == Reaction.IGNORE:
            log_event(log, "status_ignored", transaction_id=transaction_id,
                      current=tx["status"], incoming=int(incoming))
            return
        if reaction == Reaction.TERMINATE:
            await self.store.units.release(transaction_id, session)
            statuses: list[TransactionStatus] = (
                [incoming] if incoming == S.TERMINATED else [incoming, S.TERMINATED]
            )
            await self.store.record_statuses(transaction_id, statuses, now, session, results)
            self._log_status(transaction_id, statuses[-1], results)
            await self._run_hooks(tx, statuses[-1], session)
            return
        blocks = [doc_to_block(d) for d in tx["blocks"]]
        if reaction == Reaction.FINALISE:
            if tx["transaction_type"] == TransactionType.ISSUANCE:
                await self.store.units.insert(blocks, acquiring, session)
            else:
                await self.store.units.move_reserved(transaction_id, acquiring, session)
            done: list[TransactionStatus] = [incoming, S.COMPLETED]
        elif reaction == Reaction.DEBIT:
            await self.store.units.delete_reserved(transaction_id, session)
            done = [incoming, S.COMPLETED]
        else:  # CREDIT
            await self.store.units.insert(blocks, acquiring, session)
            done = [S.COMPLETED]
        await self.store.record_statuses(transaction_id, done, now, session)
        if tx["direction"] == Direction.OUTGOING:
            await self.runtime.send(
                session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                recipient=ITL_CODE, correlation_id=transaction_id,
                payload=TransactionStatusNotified(transaction_id=transaction_id,
                                                  status=S.COMPLETED),
                causation_id=envelope.message_id,
            )
        self._log_status(transaction_id, S.COMPLETED, [])
        await self._run_hooks(tx, S.COMPLETED, session)

    async def _run_hooks(self, tx: Document, status: TransactionStatus,
                         session: Session) -> None:
        final = {**tx, "status": int(status)}
        for hook in self.final_status_hooks:
            await hook(final, session)

    async def on_proposal_forwarded(self, envelope: Envelope,
                                    payload: ProposalForwarded) -> None:
        """An external transfer into this registry: accept (8) or reject (6) it."""

        async def effect(session: Session) -> None:
            if await self.store.transaction(payload.transaction_id, session) is not None:
                return
            now = self.runtime.clock.now()
            blocks = [block_from_wire(b) for b in payload.blocks]
            target = None
            if payload.acquiring.registry == self.code:
                target = await self.store.account(payload.acquiring.account_id, session)
                if target is not None and target.account_type != payload.acquiring.account_type:
                    target = None
            refusal = acquiring_refusal(target, blocks)
            doc = _transaction_doc(payload, Direction.INBOUND, now, None)
            await self.store.insert_transaction(doc, session)
            if refusal is None:
                answer = TransactionStatusNotified(transaction_id=payload.transaction_id,
                                                   status=S.ACCEPTED)
                await self.store.record_statuses(payload.transaction_id, [S.ACCEPTED], now,
                                                 session)
            else:
                result = EvaluationResult(response_code=refusal, message=RESPONSE_TEXT[refusal])
                answer = TransactionStatusNotified(transaction_id=payload.transaction_id,
                                                   status=S.REJECTED,
                                                   evaluation_results=[result])
                await self.store.record_statuses(payload.transaction_id,
                                                 [S.REJECTED, S.TERMINATED], now, session,
                                                 [_result_doc(result)])
            await self.runtime.send(session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                                    recipient=ITL_CODE, correlation_id=payload.transaction_id,
                                    payload=answer, causation_id=envelope.message_id)
            self._log_status(payload.transaction_id, answer.status,
                             [_result_doc(r) for r in answer.evaluation_results])

        await self.runtime.handle_once(envelope, effect)

    async def on_message_ack(self, envelope: Envelope, payload: MessageAck) -> None:
        async def effect(session: Session) -> None:
            level = logging.INFO if payload.accepted else logging.WARNING
            log_event(log, "message_acknowledged", level, transaction_id=envelope.correlation_id,
                      acked_message_id=payload.acked_message_id, accepted=payload.accepted,
                      response_codes=[int(c) for c in payload.response_codes],
                      reason=payload.reason)

        await self.runtime.handle_once(envelope, effect)

    async def on_status_reported(self, envelope: Envelope,
                                 payload: TransactionStatusReported) -> None:
        async def effect(session: Session) -> None:
            log_event(log, "itl_status_reported", transaction_id=payload.transaction_id,
                      status=int(payload.status) if payload.status else None)

        await self.runtime.handle_once(envelope, effect)

    def _log_status(self, transaction_id: str, status: TransactionStatus,
                    results: list[Document]) -> None:
        log_event(log, "transaction_status_changed", transaction_id=transaction_id,
                  status=int(status), status_name=status.name,
                  response_codes=[r["response_code"] for r in results])


def _ref(account: Account) -> AccountRef:
    return AccountRef(registry=account.registry, account_type=account.account_type,
                      account_id=account.account_id)


def _holder(account: Account) -> Holder:
    return Holder(account.registry, account.account_type, account.account_id)


def _units(blocks: list[UnitBlock]) -> int:
    return sum(b.quantity for b in blocks)


def _result_doc(result: EvaluationResult) -> Document:
    doc = result.model_dump(mode="json")
    if not doc.get("message"):
        doc["message"] = RESPONSE_TEXT.get(result.response_code, "")
    return doc


def _transaction_doc(proposal: ProposalSubmitted | ProposalForwarded, direction: Direction,
                     now: Any, reference: str | None) -> Document:
    blocks = [block_from_wire(b) for b in proposal.blocks]
    wire = proposal.model_dump(mode="json")
    return {
        "_id": proposal.transaction_id,
        "transaction_type": int(proposal.transaction_type),
        "direction": direction.value,
        "status": int(S.PROPOSED),
        "history": [{"status": int(S.PROPOSED), "at": now}],
        "evaluation_results": [],
        "transferring": wire["transferring"],
        "acquiring": wire["acquiring"],
        "unit_type": int(blocks[0].attributes.unit_type),
        "quantity": _units(blocks),
        "blocks": [block_to_doc(b) for b in blocks],
        "reference": reference,
        "created_at": now,
        "updated_at": now,
    }


__all__ = ["AccountStatus", "IssueUnits", "RegistryService", "TransferUnits"]
