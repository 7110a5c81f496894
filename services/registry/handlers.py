"""One function per command of the operator API and per message from the ITL:
load, call the domain, store, emit. Each runs in one store transaction."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.registry.decisions import (
    WINDOWED_KINDS,
    WITHDRAWAL_ACCOUNT,
    Decision,
    DecisionKind,
    DecisionState,
    WithdrawalGround,
    appeal,
    dismiss_appeal,
    is_to_execute,
    lapse,
    revise,
    to_record,
    use,
)
from services.registry.domain import (
    PER_PERIOD_ACCOUNT_TYPES,
    Account,
    AccountAction,
    AccountStatus,
    Direction,
    Reaction,
    RegistryProfile,
    Side,
    acquiring_refusal,
    change_status,
    check_account_status,
    check_account_types,
    check_closable,
    check_issuance,
    check_openable,
    check_period_account,
    choose_blocks,
    choose_listed_blocks,
    listed_ranges,
    react_to_itl_status,
)
from services.registry.notices import (
    REQUIRED_ACTION,
    WITHDRAWAL_NOTICE_ACCOUNT,
    check_answers,
    decree_due_at,
)
from services.registry.store import RegistryStore
from shared.blocks import SerialRange, UnitAttributes, UnitBlock
from shared.bounds import MAX_SERIAL
from shared.codes import (
    ITL_CODE,
    RESPONSE_TEXT,
    AccountType,
    MessageType,
    NoticeStatus,
    NoticeType,
    ResponseCode,
    SupplementaryType,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.contracts import (
    AccountRef,
    Envelope,
    EvaluationResult,
    MessageAck,
    NoticeIssued,
    ProposalForwarded,
    ProposalSubmitted,
    TransactionStatusNotified,
    TransactionStatusQueried,
    TransactionStatusReported,
    UnitBlockWire,
    block_from_wire,
    block_to_wire,
    replaced_reservation,
    unit_change_of,
)
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.rules.accounts import (
    AccountSide,
    Breach,
    account_rule_breaches,
    rule_for,
    supplementary_type_of,
)
from shared.rules.deadlines import may_act
from shared.rules.periods import true_up_ended
from shared.service import Runtime
from shared.store import Document, Session, next_sequence
from shared.store.unit_blocks import Holder, block_to_doc, doc_to_block, doc_units

log = logging.getLogger("registry")
S = TransactionStatus

#: Called inside the store transaction that makes a transaction final (completed or
#: terminated), with the transaction as it now stands; the CDM registry chains its
#: share-of-proceeds and forwarding transfers on it.
FinalStatusHook = Callable[[Document, Session], Awaitable[None]]
#: Called while a transfer is proposed (see ``RegistryService.proposal_hooks``).
ProposalHook = Callable[["Proposed", Session], Awaitable[None]]
#: Handles an incoming message type the registry engine does not know itself (with its
#: decoded payload); the effort-sharing module adds its allowance-transfer messages.
MessageHandler = Callable[[Envelope, Any], Awaitable[None]]
#: What one store transaction does (``Runtime.commit``): here, propose a transaction
#: and return it.
Work = Callable[[Session], Awaitable[Document]]


@dataclass(frozen=True)
class Proposed:
    """A transfer being proposed: its id, kind, accounts and the exact blocks it moves."""

    transaction_id: str
    transaction_type: TransactionType
    supplementary_type: SupplementaryType
    source: Account
    acquiring: AccountRef
    blocks: tuple[UnitBlock, ...]
    #: Fields the proposal hooks add to the transaction's document (e.g. the share of
    #: proceeds it sets aside, ``share_set_aside``), stored with it.
    fields: dict[str, Any] = field(default_factory=dict)


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
    decision_id: str | None = None


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
    #: None: internal or external transfer, by the acquiring registry.
    transaction_type: TransactionType | None = None
    notification_id: int | None = None
    decision_id: str | None = None
    project_id: str | None = None
    track: int | None = None
    new_expiry_date: date | None = None
    replaced_blocks: tuple[UnitBlock, ...] = ()
    #: None: read from what the transaction does (``supplementary_type_of``).
    supplementary_type: SupplementaryType | None = None

    def kind(self, registry: str) -> TransactionType:
        if self.transaction_type is not None:
            return self.transaction_type
        if self.acquiring_registry == registry:
            return TransactionType.INTERNAL_TRANSFER
        return TransactionType.EXTERNAL_TRANSFER


class RegistryService:
    """The registry's use cases over its store and the ITL."""

    def __init__(self, runtime: Runtime, store: RegistryStore, profile: RegistryProfile,
                 outstanding_after: timedelta = timedelta(hours=1),
                 true_up_ends: Mapping[int, date] | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.profile = profile
        self.outstanding_after = outstanding_after
        #: Last day of each period's true-up: carry-over only after it (4015).
        self.true_up_ends = dict(true_up_ends or {})
        self.code = profile.code
        self.final_status_hooks: list[FinalStatusHook] = []
        #: Called inside the store transaction that completes an outgoing transaction,
        #: before its completion is reported to the ITL: what they propose reaches the
        #: ITL first (the share of proceeds of a first transfer of AAUs).
        self.completion_hooks: list[FinalStatusHook] = []
        #: Called inside the store transaction of a proposal, after its units are
        #: reserved and before it is sent: what it proposes first goes first to the ITL
        #: (the share of proceeds of a first transfer of AAUs).
        self.proposal_hooks: list[ProposalHook] = []
        #: Run once at start-up after the registry's own indexes exist.
        self.startup_tasks: list[Callable[[], Awaitable[None]]] = []
        self.message_handlers: dict[MessageType, MessageHandler] = {}
        #: Accounts units never leave once there (e.g. credits surrendered for effort
        #: sharing), with the reason a transfer out is refused.
        self.locked_accounts: dict[int, str] = {}

    # accounts

    async def create_account(self, account_type: AccountType, holder_name: str,
                             commitment_period: int) -> Account:
        """Open a holding account (``domain.check_openable``: 2004 for a kind the
        registry keeps itself or does not have)."""
        check_openable(self.profile, account_type)

        async def work(session: Session) -> Account:
            return await self.store.create_account(
                account_type, holder_name, commitment_period, self.runtime.clock.now(), session
            )

        return await self.runtime.commit(work)

    async def require_account(self, account_id: int, session: Session | None = None,
                              share_with_request: bool = False) -> Account:
        """The account (``RegistryStore.account``), or ``NotFound``."""
        account = await self.store.account(account_id, session, share_with_request)
        if account is None:
            raise NotFound(f"account {account_id} in registry {self.code}")
        return account

    async def change_account_status(self, account_id: int, action: AccountAction, by: str,
                                    reason: str | None) -> Account:
        """Block, unblock or close an account, recording who (``by``, the actor), when
        (simulation clock) and why. ``NotFound``; ``StatusChangeRefused`` (409) when the
        status does not allow it; closing: ``RuleViolation`` 2009 (409) unless the account
        is empty. One store transaction that writes the account's document, as every
        proposal naming the account does (``RegistryStore.hold_account``)."""

        async def work(session: Session) -> Account:
            account = await self.require_account(account_id, session)
            changed = change_status(account, action, by, self.runtime.clock.now(), reason)
            if action == AccountAction.CLOSE:
                holdings, reserved = await self.store.account_holdings(account_id, session)
                check_closable(account, holdings, reserved,
                               await self.store.open_transactions_naming(account_id, session))
            await self.store.record_status_change(account_id, changed.history[-1], session)
            return changed

        changed = await self.runtime.commit(work)
        log_event(log, "account_status_changed", account_id=account_id,
                  status=changed.status.value, by=by, reason=reason)
        return changed

    async def _admit(self, account: Account | None, side: Side, session: Session) -> None:
        """Apply the account-status rule (``account_status_refusal``) to an account of this
        registry that a new transaction names on ``side``, and hold its document for the
        rest of the store transaction so a concurrent status change conflicts with it.
        ``None``: an account another check refuses (unknown), left alone here."""
        if account is None:
            return
        check_account_status(account, side)
        await self.store.hold_account(account.account_id, session)

    # proposals

    async def propose_issuance(self, command: IssueUnits, session: Session) -> Document:
        """Propose new units to the ITL; they exist only once the ITL approves."""
        account = await self.require_account(command.acquiring_account_id, session)
        check_issuance(self.profile, command.unit_type, account, command.lulucf_activity)
        await self._admit(account, Side.ACQUIRING, session)
        first = await next_sequence(self.store.db, f"serial:{self.code}", session,
                                    command.quantity)
        if first + command.quantity - 1 > MAX_SERIAL:
            # the store transaction is rolled back: the serials stay unallocated
            raise RuleViolation(
                ResponseCode.SERIAL_NUMBERS_EXHAUSTED,
                f"{command.quantity} units would take serial numbers up to "
                f"{first + command.quantity - 1}, beyond {MAX_SERIAL}, the last serial "
                f"number of registry {self.code}")
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
            decision_id=command.decision_id,
        )

    async def issue(self, command: IssueUnits) -> Document:
        async def work(session: Session) -> Document:
            return await self.propose_issuance(command, session)

        return await self.runtime.commit(work)

    async def propose_transfer(self, command: TransferUnits, session: Session,
                               blocks: list[UnitBlock] | None = None,
                               transaction_id: str | None = None) -> Document:
        """Reserve the units and propose an internal or external transfer to the ITL.

        ``blocks`` names the exact units to move; by default the lowest serials of the
        requested type and period are taken. ``transaction_id``: an id taken from the
        registry's counter earlier (a share of proceeds takes its id with the transfer
        that levies it); by default the counter's next.
        """
        source = await self.require_account(command.transferring_account_id, session)
        await self._admit(source, Side.TRANSFERRING, session)
        if source.account_id in self.locked_accounts:
            raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                self.locked_accounts[source.account_id])
        acquiring = AccountRef(
            registry=command.acquiring_registry,
            account_type=command.acquiring_account_type,
            account_id=command.acquiring_account_id,
        )
        transaction_type = command.kind(self.code)
        supplementary = command.supplementary_type or supplementary_type_of(
            transaction_type, acquiring.registry, acquiring.account_type, {command.unit_type})
        target = _side(acquiring)
        check_account_types(transaction_type, supplementary, self.code, source.side, target, [])
        if command.acquiring_registry == self.code:
            await self._check_internal_target(acquiring, session)
        rule = rule_for(transaction_type, supplementary, source.account_type, self.code)
        in_place = rule is not None and rule.keeps_units_in_place
        if blocks is None:
            blocks = await self.choose(source, command, session)
        else:
            refusals = await self.store.units.check_reservable(
                blocks, _holder(source), "", session, in_place=in_place)
            if refusals:
                raise RuleViolation(refusals[0].code, f"block {refusals[0].block.serials} of "
                                    f"account {source.account_id}: "
                                    f"{RESPONSE_TEXT[refusals[0].code]}")
        check_account_types(transaction_type, supplementary, self.code, source.side, target,
                            [b.attributes for b in blocks])
        if transaction_type == TransactionType.CARRY_OVER:
            self._check_true_up_ended(blocks)
        transaction_id = transaction_id or await self.store.next_transaction_id(session)
        reserved = await self.store.units.reserve(blocks, transaction_id, session,
                                                  int(transaction_type))
        if command.replaced_blocks:
            await self._reserve_replaced(list(command.replaced_blocks), transaction_id, session)
        proposed = Proposed(transaction_id, transaction_type, supplementary, source,
                            acquiring, tuple(blocks))
        if _one_document_each(blocks, reserved):
            proposed.fields[RESERVED_IDS_FIELD] = [doc["_id"] for doc in reserved]
        for hook in self.proposal_hooks:
            await hook(proposed, session)
        return await self._submit(
            session, transaction_id, transaction_type, _ref(source), acquiring, blocks,
            command.reference,
            extra={"notification_id": command.notification_id,
                   "project_id": command.project_id, "track": command.track,
                   "new_expiry_date": command.new_expiry_date,
                   "replaced_blocks": [block_to_wire(b) for b in command.replaced_blocks],
                   "supp_transaction_type": supplementary},
            decision_id=command.decision_id, fields=proposed.fields,
        )

    async def choose(self, source: Account, command: TransferUnits,
                      session: Session) -> list[UnitBlock]:
        """The lowest serials of the requested type and period that can move: never
        expired tCERs/lCERs (3007), nothing reserved (3002 when too few).

        A transaction that fulfils a notice listing unit blocks (a cancellation or a
        withdrawal decision on notice 1 or 2, a transfer to the CDM registry on notice 6,
        12 or 13, a carry-over on notice 8, ...) moves only units inside those blocks,
        lowest first (4013 when the account holds too few of them), because the ITL
        refuses any other unit (4013). A replacement acts on the replaced blocks, not
        on the units it chooses here.

        Reads only what it chooses from: the account's blocks of that type and period in
        serial order until the quantity is covered (``UnitBlockStore.walk``), or the
        blocks overlapping the listed ranges (``overlapping``); never the whole books."""
        today = self.runtime.clock.now().date().isoformat()
        prefix: Document = {"registry": self.code, "account_id": source.account_id,
                            "unit_type": int(command.unit_type),
                            "applicable_cp": command.commitment_period}

        def free(doc: Document) -> bool:
            return doc.get("reserved_by") is None and all(doc[k] == v
                                                          for k, v in prefix.items())

        def expired(doc: Document) -> bool:
            return doc.get("expiry_date") is not None and doc["expiry_date"] < today

        listed = await self._listed_blocks(command, session)
        if listed:
            assert command.notification_id is not None
            touched: dict[Any, Document] = {}  # a block may touch several listed ranges
            for origin, ranges in listed_ranges(listed).items():
                for serials in ranges:
                    for doc in await self.store.units.overlapping(origin, serials, session):
                        touched[doc["_id"]] = doc
            inside = [doc_to_block(d) for d in touched.values() if free(d) and not expired(d)]
            return choose_listed_blocks(inside, listed, command.quantity, source,
                                        command.unit_type, command.notification_id)
        available: list[UnitBlock] = []
        read: dict[tuple[str, int], Document] = {}
        units = expired_units = 0
        async with aclosing(self.store.units.walk(prefix, session=session,
                                                  units=command.quantity)) as docs:
            async for doc in docs:
                if not free(doc):
                    continue
                if expired(doc):
                    expired_units += doc_units(doc)
                    continue
                available.append(doc_to_block(doc))
                read[(doc["origin"], doc["serial_start"])] = doc
                units += doc_units(doc)
                if units >= command.quantity:
                    break
        if units < command.quantity and expired_units:
            raise RuleViolation(
                ResponseCode.UNIT_EXPIRED,
                f"account {source.account_id} holds {expired_units} "
                f"{command.unit_type.name} units that have expired")
        chosen = choose_blocks(available, command.quantity, source, command.unit_type)
        for block in chosen:
            # each chosen block is one block just read or its first units: the blocks
            # overlapping it are that one, so its reservation reads nothing more
            origin = block.attributes.originating_registry
            self.store.units.known_overlap(origin, block.serials,
                                           [read[(origin, block.serials.start)]], session)
        return chosen

    async def _listed_blocks(self, command: TransferUnits, session: Session
                             ) -> list[UnitBlock]:
        """The unit blocks listed by the notice ``command`` fulfils, when its units must
        be among them ([] when it names none, the registry has not received it, or it
        lists none; a replacement's listed blocks are the replaced ones)."""
        if command.notification_id is None or \
                command.transaction_type == TransactionType.REPLACEMENT:
            return []
        notice = await self.store.notice(command.notification_id, session)
        if notice is None:
            return []
        return [block_from_wire(UnitBlockWire.model_validate(b))
                for b in notice.get("blocks") or []]

    def _check_true_up_ended(self, blocks: list[UnitBlock]) -> None:
        """Carry-over only after the true-up period of the units' period (4015)."""
        today = self.runtime.clock.now().date()
        for period in sorted({b.attributes.applicable_commitment_period for b in blocks}):
            if not true_up_ended(period, today, self.true_up_ends):
                raise RuleViolation(
                    ResponseCode.TRUE_UP_PERIOD_NOT_ENDED,
                    f"units of period {period} are carried over only after the additional "
                    f"period for fulfilling commitments ends "
                    f"({self.true_up_ends.get(period, 'not configured')})")

    async def _reserve_replaced(self, blocks: list[UnitBlock], transaction_id: str,
                                session: Session) -> None:
        """Reserve the tCER/lCER blocks a replacement replaces, wherever they are held."""
        mark = replaced_reservation(transaction_id)
        refusals = await self.store.units.check_replaceable(blocks, self.code, mark, session)
        if refusals:
            first = refusals[0]
            raise RuleViolation(first.code, f"replaced block {first.block.serials}: "
                                f"{RESPONSE_TEXT[first.code]}")
        await self.store.units.reserve(blocks, mark, session)

    async def transfer(self, command: TransferUnits) -> Document:
        async def work(session: Session) -> Document:
            return await self.propose_transfer(command, session)

        return await self.runtime.commit(work)

    async def _check_internal_target(self, acquiring: AccountRef, session: Session) -> None:
        """The acquiring account of a transaction inside this registry exists with that
        type and its status admits units (5902, 5903, 5906)."""
        target = await self.store.account(acquiring.account_id, session)
        if target is not None and target.account_type != acquiring.account_type:
            target = None
        refusal = acquiring_refusal(target, [], [])
        if refusal is not None:
            raise RuleViolation(
                refusal, f"{RESPONSE_TEXT[refusal]}: {self.code}-{int(acquiring.account_type)}"
                f"-{acquiring.account_id}"
            )
        await self._admit(target, Side.ACQUIRING, session)

    async def _submit(self, session: Session, transaction_id: str,
                      transaction_type: TransactionType, transferring: AccountRef | None,
                      acquiring: AccountRef, blocks: list[UnitBlock],
                      reference: str | None, extra: dict[str, Any] | None = None,
                      decision_id: str | None = None,
                      fields: dict[str, Any] | None = None) -> Document:
        now = self.runtime.clock.now()
        proposal = ProposalSubmitted(
            transaction_id=transaction_id,
            transaction_type=transaction_type,
            transferring=transferring,
            acquiring=acquiring,
            blocks=[block_to_wire(b) for b in blocks],
            **(extra or {}),
        )
        doc = _transaction_doc(proposal, Direction.OUTGOING, now, reference)
        doc["decision_id"] = decision_id
        doc.update(fields or {})
        await self.store.insert_transaction(doc, session)
        # a transaction id this registry has just made (never reused): its first message
        await self.runtime.send(session, message_type=MessageType.PROPOSAL_SUBMITTED,
                                recipient=ITL_CODE, correlation_id=transaction_id,
                                payload=proposal, first=True)
        log_event(log, "transaction_proposed", transaction_id=transaction_id,
                  transaction_type=transaction_type.name, units=_units(blocks))
        return doc

    # messages from the ITL

    async def on_status_notified(self, envelope: Envelope,
                                 payload: TransactionStatusNotified) -> None:
        """Apply the ITL's status to one of this registry's transactions: finalise,
        debit or credit, release on a refusal; a 2 or an 8 whose deadline has passed
        (on the stack's clock) ends the transaction as timed out (docs/adr/0017)."""
        if payload.deadline is not None:
            await self.runtime.catch_up_clock()

        async def effect(session: Session) -> None:
            tx = await self.store.transaction(payload.transaction_id, session)
            if tx is None:
                log_event(log, "status_for_unknown_transaction", logging.WARNING,
                          transaction_id=payload.transaction_id, status=int(payload.status))
                return
            reaction = react_to_itl_status(
                Direction(tx["direction"]), TransactionType(tx["transaction_type"]),
                S(tx["status"]), payload.status,
                in_time=may_act(payload.deadline, self.runtime.clock.now()),
            )
            results = [_result_doc(r) for r in payload.evaluation_results]
            await self._apply(tx, reaction, payload.status, results, envelope, session,
                              payload.deadline)

        await self.runtime.handle_once(envelope, effect)

    async def _apply(self, tx: Document, reaction: Reaction, incoming: TransactionStatus,
                     results: list[Document], envelope: Envelope, session: Session,
                     deadline: datetime | None = None) -> None:
        transaction_id: str = tx["_id"]
        now = self.runtime.clock.now()
        acquiring = Holder(tx["acquiring"]["registry"], tx["acquiring"]["account_type"],
                           tx["acquiring"]["account_id"])
        if reaction == Reaction.IGNORE:
            self._log_ignored(tx, incoming, results)
            return
        if reaction in (Reaction.TERMINATE, Reaction.TIME_OUT):
            await self.store.units.release(transaction_id, session)
            await self.store.units.release(replaced_reservation(transaction_id), session)
            if reaction == Reaction.TIME_OUT:
                results = [_result_doc(timed_out(deadline, now))]
            statuses: list[TransactionStatus] = (
                [incoming] if incoming == S.TERMINATED else [incoming, S.TERMINATED]
            )
            await self.store.record_statuses(transaction_id, statuses, now, session, results,
                                             tx=tx)
            self._log_status(transaction_id, statuses[-1], results)
            await self._run_hooks(tx, statuses[-1], session)
            if reaction == Reaction.TIME_OUT:
                # the ITL learns at once that nothing moved here
                await self.runtime.send(
                    session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                    recipient=ITL_CODE, correlation_id=transaction_id,
                    payload=TransactionStatusNotified(
                        transaction_id=transaction_id, status=S.TERMINATED,
                        evaluation_results=[timed_out(deadline, now)]),
                    causation_id=envelope.message_id)
            return
        blocks = [doc_to_block(d) for d in tx["blocks"]]
        if reaction == Reaction.FINALISE:
            if tx["transaction_type"] == TransactionType.ISSUANCE:
                await self.store.units.insert(blocks, acquiring, session)
            else:
                proposal = ProposalSubmitted.model_validate(tx["proposal"])
                await self.store.units.move_reserved(transaction_id, acquiring, session,
                                                     unit_change_of(proposal))
                await self.store.units.mark_replaced(
                    replaced_reservation(transaction_id), transaction_id, session)
            done: list[TransactionStatus] = [incoming, S.COMPLETED]
        elif reaction == Reaction.DEBIT:
            await self._debit(tx, session)
            done = [incoming, S.COMPLETED]
        else:  # CREDIT
            await self.store.units.insert(blocks, acquiring, session)
            done = [S.COMPLETED]
        await self.store.record_statuses(transaction_id, done, now, session, tx=tx)
        if tx["direction"] == Direction.OUTGOING:
            for hook in self.completion_hooks:
                await hook({**tx, "status": int(S.COMPLETED)}, session)
            await self.runtime.send(
                session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                recipient=ITL_CODE, correlation_id=transaction_id,
                payload=TransactionStatusNotified(transaction_id=transaction_id,
                                                  status=S.COMPLETED),
                causation_id=envelope.message_id,
            )
        self._log_status(transaction_id, S.COMPLETED, [])
        await self._run_hooks(tx, S.COMPLETED, session)

    async def _debit(self, tx: Document, session: Session) -> None:
        """Remove the units an outgoing transfer reserved (they left the registry). When
        its document names the block documents that hold them (``reserved_ids``, one per
        block: reserved blocks are neither split nor merged while reserved), they are
        removed without reading them, the summaries changed by what the document says;
        otherwise (a transaction stored before the field was kept, or one whose blocks
        spanned several documents) they are read by their reservation first."""
        ids = tx.get(RESERVED_IDS_FIELD)
        holder = tx.get("transferring")
        if not ids or holder is None or len(ids) != len(tx["blocks"]):
            await self.store.units.delete_reserved(tx["_id"], session)
            return
        side = {"registry": holder["registry"], "account_type": holder["account_type"],
                "account_id": holder["account_id"], "reserved_by": tx["_id"]}
        await self.store.units.delete_known(
            [{**block, **side, "_id": doc_id}
             for block, doc_id in zip(tx["blocks"], ids, strict=True)], session)

    async def _run_hooks(self, tx: Document, status: TransactionStatus,
                         session: Session) -> None:
        final = {**tx, "status": int(status)}
        for hook in self.final_status_hooks:
            await hook(final, session)

    async def on_proposal_forwarded(self, envelope: Envelope,
                                    payload: ProposalForwarded) -> None:
        """An external transfer into this registry: accept (8) or reject (6) it; after
        the deadline the ITL set for the answer, reject it with 1104 (docs/adr/0017).

        A transaction id this registry already holds (the ITL forwarded it before, under
        another message id) is answered by nothing: the first forward stands. It is not
        looked up first: the insert of the transaction fails on its duplicate key, which
        aborts the store transaction with all it did (as the inbox row does for a
        message handled before, docs/adr/0024), and the message is then handled again
        with the look-up, which finds the transaction and does nothing but record the
        message."""
        if payload.deadline is not None:
            await self.runtime.catch_up_clock()
        answered: list[TransactionStatusNotified] = []

        async def effect(session: Session, look_up: bool) -> None:
            answered.clear()
            if look_up and await self.store.transaction(payload.transaction_id,
                                                        session) is not None:
                return
            now = self.runtime.clock.now()
            blocks = [block_from_wire(b) for b in payload.blocks]
            target = None
            if payload.acquiring.registry == self.code:
                target = await self.store.account(payload.acquiring.account_id, session)
                if target is not None and target.account_type != payload.acquiring.account_type:
                    target = None
            refusal = (acquiring_refusal(target, _breaches(payload), blocks)
                       if may_act(payload.deadline, now)
                       else ResponseCode.TRANSACTION_TIMED_OUT)
            doc = _transaction_doc(payload, Direction.INBOUND, now, None)
            await self.store.insert_transaction(doc, session)
            if refusal is None:
                await self._admit(target, Side.ACQUIRING, session)
                answer = TransactionStatusNotified(transaction_id=payload.transaction_id,
                                                   status=S.ACCEPTED)
                await self.store.record_statuses(payload.transaction_id, [S.ACCEPTED], now,
                                                 session, tx=doc)
            else:
                result = (EvaluationResult(response_code=refusal, message=RESPONSE_TEXT[refusal])
                          if refusal != ResponseCode.TRANSACTION_TIMED_OUT
                          else timed_out(payload.deadline, now))
                answer = TransactionStatusNotified(transaction_id=payload.transaction_id,
                                                   status=S.REJECTED,
                                                   evaluation_results=[result])
                await self.store.record_statuses(payload.transaction_id,
                                                 [S.REJECTED, S.TERMINATED], now, session,
                                                 [_result_doc(result)], tx=doc)
            # the transaction is new here: nothing was sent about it before
            await self.runtime.send(session, message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
                                    recipient=ITL_CODE, correlation_id=payload.transaction_id,
                                    payload=answer, causation_id=envelope.message_id,
                                    first=True)
            answered.append(answer)

        try:
            handled = await self.runtime.handle_once(
                envelope, functools.partial(effect, look_up=False))
        except DuplicateKeyError:
            # the transaction id is known here (or another key clashed: the look-up
            # finds nothing then, and the handling fails as it did)
            handled = await self.runtime.handle_once(
                envelope, functools.partial(effect, look_up=True))
        if handled and answered:
            (answer,) = answered
            self._log_status(payload.transaction_id, answer.status,
                             [_result_doc(r) for r in answer.evaluation_results])

    async def on_message_ack(self, envelope: Envelope, payload: MessageAck) -> None:
        """The ITL's answer about one of this registry's messages. A refusal of one of its
        own proposals (``ProposalSubmitted``, found by its message id in the outbox) while
        the transaction is still proposed terminates it: the ITL refused the message as a
        whole and will send no status, so its units are released as on a refusal and the
        refusal's codes and reason become its evaluation results (docs/adr/0012)."""

        async def effect(session: Session) -> None:
            level = logging.INFO if payload.accepted else logging.WARNING
            log_event(log, "message_acknowledged", level, transaction_id=envelope.correlation_id,
                      acked_message_id=payload.acked_message_id, accepted=payload.accepted,
                      response_codes=[int(c) for c in payload.response_codes],
                      reason=payload.reason)
            if not payload.accepted:
                await self._proposal_refused(payload, envelope, session)

        await self.runtime.handle_once(envelope, effect)

    async def _proposal_refused(self, payload: MessageAck, envelope: Envelope,
                                session: Session) -> None:
        sent = await self.runtime.db.outbox.find_one({"_id": payload.acked_message_id},
                                                     session=session)
        if sent is None or sent.get("message_type") != MessageType.PROPOSAL_SUBMITTED:
            return
        transaction_id = sent["correlation_id"]
        if ResponseCode.DUPLICATE_MESSAGE_DIFFERENT_CONTENT in payload.response_codes:
            # the ITL saw this message id before with other content: ours or another copy
            # under our id came first, so the ITL may hold the transaction; the status
            # query for proposals left without an answer settles it (submitting again
            # when the ITL never took it)
            log_event(log, "proposal_refusal_left_to_status_query", logging.WARNING,
                      transaction_id=transaction_id, acked_message_id=payload.acked_message_id)
            return
        tx = await self.store.transaction(transaction_id, session)
        if tx is None or tx["direction"] != Direction.OUTGOING or tx["status"] != S.PROPOSED:
            return
        results = [{"response_code": int(code),
                    "message": payload.reason or RESPONSE_TEXT.get(code, "")}
                   for code in payload.response_codes]
        log_event(log, "proposal_refused_as_message", logging.WARNING,
                  transaction_id=transaction_id, acked_message_id=payload.acked_message_id,
                  response_codes=[r["response_code"] for r in results], reason=payload.reason)
        await self._apply(tx, Reaction.TERMINATE, S.TERMINATED, results, envelope, session)

    async def query_outstanding(self) -> None:
        """Due work: ask the ITL about proposals left without an answer (protocol.md 1.6,
        GetTransactionStatus); each is asked again only after as long again."""
        now = self.runtime.clock.now()
        cutoff = now - self.outstanding_after
        for tx in await self.store.outstanding(cutoff):
            async def work(session: Session, transaction_id: str = tx["_id"]) -> None:
                await self.store.db.transactions.update_one(
                    {"_id": transaction_id}, {"$set": {"queried_at": now}}, session=session)
                await self.store.record_transaction(transaction_id,
                                                    "transaction_status_queried", session, {})
                await self.runtime.send(
                    session, message_type=MessageType.TRANSACTION_STATUS_QUERIED,
                    recipient=ITL_CODE, correlation_id=transaction_id,
                    payload=TransactionStatusQueried(transaction_id=transaction_id))

            await self.runtime.commit(work)
            log_event(log, "outstanding_transaction_queried", transaction_id=tx["_id"])

    async def on_status_reported(self, envelope: Envelope,
                                 payload: TransactionStatusReported) -> None:
        """The ITL's answer to a status query: apply a status this registry missed, or,
        when the ITL never received the proposal, submit it again (the ITL knows a
        transaction id once, so a second copy has no second effect). A 2 or an 8 carries
        its deadline as when notified."""
        if payload.deadline is not None:
            await self.runtime.catch_up_clock()

        async def effect(session: Session) -> None:
            tx = await self.store.transaction(payload.transaction_id, session)
            log_event(log, "itl_status_reported", transaction_id=payload.transaction_id,
                      status=int(payload.status) if payload.status else None)
            if tx is None or tx["direction"] != Direction.OUTGOING:
                return
            if payload.status is None:
                if tx["status"] == S.PROPOSED:
                    await self.runtime.send(
                        session, message_type=MessageType.PROPOSAL_SUBMITTED,
                        recipient=ITL_CODE, correlation_id=payload.transaction_id,
                        payload=ProposalSubmitted.model_validate(tx["proposal"]),
                        causation_id=envelope.message_id)
                    log_event(log, "proposal_submitted_again",
                              transaction_id=payload.transaction_id)
                return
            reaction = react_to_itl_status(
                Direction.OUTGOING, TransactionType(tx["transaction_type"]), S(tx["status"]),
                payload.status, in_time=may_act(payload.deadline, self.runtime.clock.now()))
            results = [_result_doc(r) for r in payload.evaluation_results]
            await self._apply(tx, reaction, payload.status, results, envelope, session,
                              payload.deadline)

        await self.runtime.handle_once(envelope, effect)

    @staticmethod
    def _log_ignored(tx: Document, incoming: TransactionStatus,
                     results: list[Document]) -> None:
        """Log a status that changes nothing; the ITL ending by time-out a transaction
        this registry completed is an alert: the books differ (docs/adr/0017)."""
        timed_out_here = any(r.get("response_code") == ResponseCode.TRANSACTION_TIMED_OUT
                             for r in results)
        if tx["status"] == S.COMPLETED and incoming == S.TERMINATED and timed_out_here:
            log_event(log, "time_out_after_completion", logging.ERROR, alert=True,
                      transaction_id=tx["_id"])
            return
        log_event(log, "status_ignored", transaction_id=tx["_id"], current=tx["status"],
                  incoming=int(incoming))

    def _log_status(self, transaction_id: str, status: TransactionStatus,
                    results: list[Document]) -> None:
        log_event(log, "transaction_status_changed", transaction_id=transaction_id,
                  status=int(status), status_name=status.name,
                  response_codes=[r["response_code"] for r in results])


def _side(ref: AccountRef) -> AccountSide:
    return AccountSide(ref.registry, int(ref.account_type), ref.account_id)


def _breaches(proposal: ProposalForwarded) -> list[Breach]:
    """How a forwarded proposal breaks the account-type table, as the acquiring registry
    reads it (its supplementary type carried or read from what it does)."""
    blocks = [block_from_wire(b) for b in proposal.blocks]
    supplementary = proposal.supp_transaction_type or supplementary_type_of(
        proposal.transaction_type, proposal.acquiring.registry, proposal.acquiring.account_type,
        {b.attributes.unit_type for b in blocks})
    transferring = _side(proposal.transferring) if proposal.transferring else None
    proposer = (proposal.transferring or proposal.acquiring).registry
    return account_rule_breaches(proposal.transaction_type, supplementary, proposer,
                                 transferring, _side(proposal.acquiring),
                                 [b.attributes for b in blocks])


#: Field of an outgoing transaction's document: the ``_id`` of the block document
#: reserving each of its blocks, in order (absent when a block spanned several).
RESERVED_IDS_FIELD = "reserved_ids"


def _one_document_each(blocks: list[UnitBlock], reserved: list[Document]) -> bool:
    """Whether the reservation of ``blocks`` wrote exactly one block document per block,
    holding exactly its serials (``UnitBlockStore.reserve``'s answer, in order)."""
    return len(blocks) == len(reserved) and all(
        (doc["origin"], doc["serial_start"], doc["serial_end"])
        == (b.attributes.originating_registry, b.serials.start, b.serials.end)
        for b, doc in zip(blocks, reserved, strict=True))


def _ref(account: Account) -> AccountRef:
    return AccountRef(registry=account.registry, account_type=account.account_type,
                      account_id=account.account_id)


def _holder(account: Account) -> Holder:
    return Holder(account.registry, account.account_type, account.account_id)


def _units(blocks: list[UnitBlock]) -> int:
    return sum(b.quantity for b in blocks)


def timed_out(deadline: datetime | None, now: datetime) -> EvaluationResult:
    """The evaluation result of a transaction this registry ends because the ITL's
    deadline passed before it could act (1104)."""
    when = deadline.isoformat() if deadline else "?"
    return EvaluationResult(
        response_code=ResponseCode.TRANSACTION_TIMED_OUT,
        message=f"the deadline {when} had passed when the registry could act "
                f"({now.isoformat()}): nothing moved")


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
        "proposal": wire,
        "reference": reference,
        "created_at": now,
        "updated_at": now,
    }


__all__ = ["AccountStatus", "IssueUnits", "RegistryService", "TransferUnits"]


# Decisions of the authorised body (Decree 684 cl. 10-29) and ITL notices


def decision_from_doc(doc: Document) -> Decision:
    return Decision(
        decision_id=doc["_id"], kind=DecisionKind(doc["kind"]), reference=doc["reference"],
        decided_at=doc["decided_at"], unit_type=UnitType(doc["unit_type"]),
        quantity=doc["quantity"], account_id=doc["account_id"],
        commitment_period=doc["commitment_period"], due_at=doc.get("due_at"),
        state=DecisionState(doc["state"]), used_quantity=doc.get("used_quantity", 0),
        ground=WithdrawalGround(doc["ground"]) if doc.get("ground") else None,
        notice_id=doc.get("notice_id"), project_id=doc.get("project_id"),
        lulucf_activity=doc.get("lulucf_activity"),
        cancellation_account_type=(AccountType(doc["cancellation_account_type"])
                                   if doc.get("cancellation_account_type") else None),
        transaction_ids=tuple(doc.get("transaction_ids", [])),
        executed_at=doc.get("executed_at"), decided_by=doc.get("decided_by"),
    )


def decision_to_doc(decision: Decision, extra: Document | None = None) -> Document:
    doc: Document = {
        "_id": decision.decision_id, "kind": decision.kind.value,
        "reference": decision.reference, "decided_at": decision.decided_at,
        "unit_type": int(decision.unit_type), "quantity": decision.quantity,
        "account_id": decision.account_id, "commitment_period": decision.commitment_period,
        "due_at": decision.due_at, "state": decision.state.value,
        "used_quantity": decision.used_quantity,
        "ground": decision.ground.value if decision.ground else None,
        "notice_id": decision.notice_id, "project_id": decision.project_id,
        "lulucf_activity": decision.lulucf_activity,
        "cancellation_account_type": (int(decision.cancellation_account_type)
                                      if decision.cancellation_account_type else None),
        "transaction_ids": list(decision.transaction_ids),
        "executed_at": decision.executed_at, "decided_by": decision.decided_by,
    }
    return {**doc, **(extra or {})}


class DecisionDesk:
    """The registry's record of the authorised body's decisions and ITL notices, and the
    operations carried out on them.

    ``execution_lead``: how long before its due date the registry carries out an
    unappealed withdrawal or replacement decision by itself (simulated time)."""

    def __init__(self, registry: RegistryService,
                 execution_lead: timedelta = timedelta(hours=24)) -> None:
        self.registry = registry
        self.store = registry.store
        self.runtime = registry.runtime
        self.execution_lead = execution_lead
        registry.final_status_hooks.append(self.on_final_status)

    def _now(self) -> datetime:
        """The simulation clock's time to the millisecond, as the store keeps it, so
        that what a command answers is what is read back later."""
        now = self.runtime.clock.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def record(self, decision: Decision) -> Document:
        """Record a decision, taken now (its ``decided_at`` becomes the clock's time) by
        ``decision.decided_by``, checked (cl. 22-29); withdrawal and replacement get their
        due date: one month from the receipt of the notice they answer, else from the
        decision (cl. 23, 26)."""

        async def work(session: Session) -> Document:
            received_at = None
            if decision.notice_id is not None:
                notice = await self.store.notice(decision.notice_id, session)
                if notice is None:
                    raise NotFound(f"notice {decision.notice_id}")
                check_answers(decision.kind, decision.notice_id, notice["notice_type"],
                              notice["status"])
                received_at = notice["received_at"]
            recorded = to_record(replace(decision, decided_at=self._now()), received_at)
            await self.registry.require_account(recorded.account_id, session)
            doc = await self.store.insert_decision(
                {k: v for k, v in decision_to_doc(recorded).items() if k != "_id"}, session)
            log_event(log, "decision_recorded", decision_id=doc["_id"], kind=doc["kind"],
                      due_at=doc["due_at"], quantity=doc["quantity"],
                      notice_id=doc["notice_id"])
            return doc

        return await self.runtime.commit(work)

    async def require(self, decision_id: str, session: Session | None = None) -> Decision:
        return decision_from_doc(await self._stored(decision_id, session))

    async def _stored(self, decision_id: str, session: Session | None) -> Document:
        """The stored decision document, or ``NotFound``."""
        doc = await self.store.decision(decision_id, session)
        if doc is None:
            raise NotFound(f"decision {decision_id}")
        return doc

    async def appeal(self, decision_id: str, appellant: str, grounds: str) -> Document:
        """Suspend a decision on an appeal filed now by ``appellant`` (who, as records
        keep it: ``holder:1001 kz-holder-7``)."""

        async def work(session: Session) -> Document:
            current = await self._stored(decision_id, session)
            now = self._now()
            appealed = appeal(decision_from_doc(current), now)
            doc = decision_to_doc(appealed, {**_kept(current, False),
                                             "appeal": {"by": appellant, "grounds": grounds,
                                                        "filed_at": now}})
            await self._save(doc, session, "decision_appealed")
            return doc

        return await self.runtime.commit(work)

    async def revise(self, decision_id: str, quantity: int | None, drop: bool,
                     by: str) -> Document:
        """Revise a decision now (``by``: who, as records keep it)."""

        async def work(session: Session) -> Document:
            current = await self._stored(decision_id, session)
            now = self._now()
            revised = revise(decision_from_doc(current), now, quantity, drop)
            revisions = [*current.get("revisions", []),
                         {"at": now, "quantity": quantity, "dropped": drop, "by": by}]
            appealed = current.get("appeal")
            if appealed and "outcome" not in appealed:
                appealed = {**appealed, "outcome": "revised", "answered_at": now,
                            "answered_by": by}
            doc = decision_to_doc(revised, {"revisions": revisions, "appeal": appealed,
                                            "auto_attempted": False})
            await self._save(doc, session, "decision_revised")
            return doc

        return await self.runtime.commit(work)

    async def dismiss_appeal(self, decision_id: str, reasons: str, by: str) -> Document:
        """The authorised body (``by``: who, as records keep it) dismisses the appeal: the
        decision is in force again with its original due date, and is carried out at once
        if its execution moment has passed."""

        async def work(session: Session) -> Document:
            current = await self._stored(decision_id, session)
            now = self._now()
            dismissed = dismiss_appeal(decision_from_doc(current))
            appealed = {**(current.get("appeal") or {}), "outcome": "dismissed",
                        "answered_at": now, "answered_by": by, "reasons": reasons}
            doc = decision_to_doc(dismissed, {"revisions": current.get("revisions", []),
                                              "appeal": appealed, "auto_attempted": False})
            await self._save(doc, session, "decision_appeal_dismissed")
            return doc

        await self.runtime.commit(work)
        await self.runtime.run_due_work()
        return await self._stored(decision_id, None)

    async def _save(self, doc: Document, session: Session, event: str) -> None:
        await self.store.replace_decision(doc, session, event)
        log_event(log, event, decision_id=doc["_id"], state=doc["state"],
                  due_at=doc.get("due_at"))

    async def execute_due(self) -> None:
        """Due work: carry out every unappealed withdrawal or replacement whose execution
        moment (``execution_lead`` before its due date) has come, and every one whose
        appeal lapsed with its month.

        Each is attempted once by itself; a refusal leaves it for the operator."""
        now = self._now()
        horizon = now + self.execution_lead
        states = [DecisionState.RECORDED.value, DecisionState.APPEALED.value]
        for doc in await self.store.decisions({"state": {"$in": states},
                                               "auto_attempted": {"$ne": True},
                                               "due_at": {"$ne": None, "$lte": horizon}}):
            if is_to_execute(decision_from_doc(doc), now, self.execution_lead):
                try:
                    await self.execute(doc["_id"], automatic=True)
                except (RuleViolation, NotFound) as exc:
                    log_event(log, "decision_execution_refused", logging.WARNING,
                              decision_id=doc["_id"], reason=str(exc))

    async def execute(self, decision_id: str, automatic: bool = False) -> Document:
        """Propose the transaction a withdrawal or replacement decision orders."""
        try:
            return await self.runtime.commit(self.execution_work(decision_id, automatic))
        except (RuleViolation, NotFound):
            if automatic:
                await self._mark_attempted(decision_id)
            raise

    def execution_work(self, decision_id: str, automatic: bool = False) -> Work:
        """The store work that carries a withdrawal or replacement decision out: its
        transaction proposed, the decision executing (``automatic``: by the registry
        itself, once)."""

        async def work(session: Session) -> Document:
            current = await self._stored(decision_id, session)
            now = self._now()
            stored = decision_from_doc(current)
            decision = lapse(stored, now)
            kept = _kept(current, automatic)
            if decision is not stored:
                kept["appeal"] = {**(current.get("appeal") or {}), "outcome": "lapsed",
                                  "answered_at": now}
            command = await self._command_for(decision, session)
            used = use(decision, decision.kind, decision.unit_type, decision.quantity)
            await check_target_period(self.registry, command, session)
            tx = await self.registry.propose_transfer(command, session)
            executing = replace(used, state=DecisionState.EXECUTING,
                                transaction_ids=(*used.transaction_ids, tx["_id"]))
            await self._save(decision_to_doc(executing, kept), session, "decision_executing")
            return tx

        return work

    async def _mark_attempted(self, decision_id: str) -> None:
        async def work(session: Session) -> None:
            current = await self.store.decision(decision_id, session)
            if current is not None:
                await self.store.replace_decision({**current, "auto_attempted": True},
                                                  session, "decision_execution_refused")

        await self.runtime.commit(work)

    async def period_account(self, account_type: AccountType, period: int,
                             session: Session | None = None) -> Account:
        """This registry's account of ``account_type`` for units of commitment period
        ``period`` (the one account of a type kept once, e.g. the PPSR)."""
        account = await self.store.account_of_type(
            account_type, period if account_type in PER_PERIOD_ACCOUNT_TYPES else None,
            session)
        if account is None:
            raise NotFound(f"{account_type.name} account of commitment period {period}")
        return account

    async def _command_for(self, decision: Decision, session: Session) -> TransferUnits:
        if decision.kind == DecisionKind.WITHDRAWAL:
            assert decision.ground is not None
            target = WITHDRAWAL_ACCOUNT[decision.ground]
            if decision.notice_id is not None:
                notice = await self.store.notice(decision.notice_id, session)
                if notice is not None:
                    target = WITHDRAWAL_NOTICE_ACCOUNT.get(notice["notice_type"], target)
            account = await self.period_account(target, decision.commitment_period, session)
            return TransferUnits(
                transaction_type=TransactionType.CANCELLATION,
                transferring_account_id=decision.account_id, acquiring_registry=self.registry.code,
                acquiring_account_type=target, acquiring_account_id=account.account_id,
                unit_type=decision.unit_type, quantity=decision.quantity,
                commitment_period=decision.commitment_period, reference=decision.reference,
                notification_id=decision.notice_id, decision_id=decision.decision_id)
        if decision.kind == DecisionKind.REPLACEMENT:
            return await self.replacement_command(
                decision.notice_id, decision.unit_type, decision.account_id,
                decision.commitment_period, decision.reference, decision.decision_id,
                session)
        raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                            f"a {decision.kind.value} decision is used by its operation, "
                            "not executed by itself", http_status=409)

    async def replacement_command(self, notice_id: int | None, unit_type: UnitType,
                                  account_id: int, period: int, reference: str | None,
                                  decision_id: str | None, session: Session) -> TransferUnits:
        """Replace the tCER/lCER blocks an ITL notice lists with units of ``unit_type``
        and commitment period ``period``, into that period's replacement account."""
        if notice_id is None:
            raise RuleViolation(ResponseCode.MISSING_FIELD,
                                "a replacement names the ITL notice listing the blocks")
        notice = await self.store.notice(notice_id, session)
        if notice is None:
            raise NotFound(f"notice {notice_id}")
        replaced = [block_from_wire(UnitBlockWire.model_validate(b)) for b in notice["blocks"]]
        if not replaced:
            raise RuleViolation(ResponseCode.MISSING_FIELD,
                                f"notice {notice_id} lists no blocks to replace")
        replaced_type = replaced[0].attributes.unit_type
        target = REPLACEMENT_ACCOUNT.get((replaced_type, notice["notice_type"]))
        if target is None:
            raise RuleViolation(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                                f"notice {notice_id} asks for no replacement")
        account = await self.period_account(target, period, session)
        return TransferUnits(
            transaction_type=TransactionType.REPLACEMENT,
            transferring_account_id=account_id, acquiring_registry=self.registry.code,
            acquiring_account_type=target, acquiring_account_id=account.account_id,
            unit_type=unit_type, quantity=sum(b.quantity for b in replaced),
            commitment_period=period, reference=reference, notification_id=notice_id,
            decision_id=decision_id, replaced_blocks=tuple(replaced))

    async def use_decision(self, decision_id: str, kind: DecisionKind, unit_type: UnitType,
                           quantity: int, session: Session,
                           period: int | None = None) -> Decision:
        """Count an operation against the decision that authorises it (issuance,
        conversion, external transfer of ERUs, cancellation, retirement); ``period`` is
        the commitment period of the units it moves."""
        current = await self._stored(decision_id, session)
        decision = decision_from_doc(current)
        if decision.kind in WINDOWED_KINDS:
            raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                f"a {decision.kind.value} decision is carried out within its "
                                "month by the registry, or by POST /decisions/{id}/execute",
                                http_status=409)
        used = use(decision, kind, unit_type, quantity, period)
        await self.store.replace_decision(decision_to_doc(used, _kept(current, False)),
                                          session, "decision_used")
        return used

    async def attach(self, decision_id: str, transaction_id: str, session: Session) -> None:
        await self.store.db.decisions.update_one(
            {"_id": decision_id}, {"$push": {"transaction_ids": transaction_id}},
            session=session)

    async def on_final_status(self, tx: Document, session: Session) -> None:
        """A decision's transaction ended: done when completed and fully used (at the
        registry's time of completion); refused units count against the decision no
        more."""
        decision_id = tx.get("decision_id")
        if not decision_id:
            return
        current = await self.store.decision(decision_id, session)
        if current is None:
            return
        decision = decision_from_doc(current)
        now = self._now()
        if tx["status"] == TransactionStatus.COMPLETED:
            if decision.used_quantity >= decision.quantity:
                decision = replace(decision, state=DecisionState.EXECUTED, executed_at=now)
        else:
            decision = replace(decision, used_quantity=decision.used_quantity - tx["quantity"],
                               state=DecisionState.RECORDED)
        await self._save(decision_to_doc(decision, _kept(current, False)), session,
                         "decision_transaction_final")

    async def on_notice(self, envelope: Envelope, payload: NoticeIssued) -> None:
        """Record a notice from the ITL (new, or a change of its status). Its receipt,
        from which the Decree counts the month (cl. 23, 26), is the first one; a
        completed notice keeps the moment it was first reported completed."""

        async def effect(session: Session) -> None:
            now = self._now()
            known = await self.store.notice(payload.notice_id, session)
            doc = payload.model_dump(mode="json")
            doc["_id"] = payload.notice_id
            doc["required_action"] = REQUIRED_ACTION[payload.notice_type]
            doc["received_at"] = known["received_at"] if known else now
            doc["updated_at"] = now
            fulfilled_at = known.get("fulfilled_at") if known else None
            doc["fulfilled_at"] = (fulfilled_at or now) \
                if payload.status == NoticeStatus.COMPLETED else None
            await self.store.upsert_notice(doc, session)
            log_event(log, "notice_received", notice_id=payload.notice_id,
                      notice_type=int(payload.notice_type), status=int(payload.status),
                      action_due_date=str(payload.action_due_date),
                      decree_due_at=decree_due_at(payload.notice_type, doc["received_at"]))

        await self.runtime.handle_once(envelope, effect)


#: The replacement account for a replaced unit type and the notice that asks for it.
REPLACEMENT_ACCOUNT: dict[tuple[UnitType, int], AccountType] = {
    (UnitType.TCER, NoticeType.IMPENDING_EXPIRY): AccountType.TCER_REPLACEMENT_EXPIRY,
    (UnitType.LCER, NoticeType.IMPENDING_EXPIRY): AccountType.LCER_REPLACEMENT_EXPIRY,
    (UnitType.LCER, NoticeType.REVERSAL_OF_STORAGE): AccountType.LCER_REPLACEMENT_REVERSAL,
    (UnitType.LCER, NoticeType.NON_SUBMISSION_OF_CERTIFICATION_REPORT):
        AccountType.LCER_REPLACEMENT_NON_SUBMISSION,
}


def _kept(current: Document, automatic: bool) -> Document:
    """Fields of a stored decision that its domain form does not carry."""
    kept: Document = {k: current[k] for k in ("appeal", "revisions", "auto_attempted")
                      if k in current}
    if automatic:
        kept["auto_attempted"] = True
    return kept


class Operations:
    """Operations that may rest on a decision, each proposed in one store transaction."""

    def __init__(self, registry: RegistryService, desk: DecisionDesk) -> None:
        self.registry = registry
        self.desk = desk

    async def issue(self, decision_id: str, quantity: int | None,
                    acquiring_account_id: int) -> Document:
        """Issue AAUs or RMUs on an issuance decision (cl. 10-11, 14-15)."""
        return await self.registry.runtime.commit(
            self.issue_work(decision_id, quantity, acquiring_account_id))

    def issue_work(self, decision_id: str, quantity: int | None,
                   acquiring_account_id: int) -> Work:
        """The store work of ``issue``."""

        async def work(session: Session) -> Document:
            decision = await self.desk.require(decision_id, session)
            amount = quantity if quantity is not None else decision.remaining
            await self.desk.use_decision(decision_id, DecisionKind.ISSUANCE,
                                         decision.unit_type, amount, session)
            tx = await self.registry.propose_issuance(IssueUnits(
                unit_type=decision.unit_type, quantity=amount,
                commitment_period=decision.commitment_period,
                acquiring_account_id=acquiring_account_id,
                decision_reference=decision.reference,
                lulucf_activity=decision.lulucf_activity, decision_id=decision_id), session)
            await self.desk.attach(decision_id, tx["_id"], session)
            return tx

        return work

    async def move(self, command: TransferUnits | Callable[[Session], Awaitable[TransferUnits]],
                   decision_kind: DecisionKind | None = None,
                   blocks: list[UnitBlock] | None = None) -> Document:
        """Propose ``command`` (or the command a builder makes inside the transaction),
        counting it against its decision when it names one."""
        return await self.registry.runtime.commit(self.move_work(command, decision_kind, blocks))

    def move_work(self, command: TransferUnits | Callable[[Session], Awaitable[TransferUnits]],
                  decision_kind: DecisionKind | None = None,
                  blocks: list[UnitBlock] | None = None) -> Work:
        """The store work of ``move``."""

        async def work(session: Session) -> Document:
            current = command if isinstance(command, TransferUnits) else await command(session)
            if current.decision_id is not None:
                if decision_kind is None:
                    raise RuleViolation(ResponseCode.TYPE_ACCOUNT_COMBINATION_NOT_ALLOWED,
                                        "this operation rests on no decision")
                await self.desk.use_decision(current.decision_id, decision_kind,
                                             current.unit_type, current.quantity, session,
                                             current.commitment_period)
            await check_target_period(self.registry, current, session)
            tx = await self.registry.propose_transfer(current, session, blocks)
            if current.decision_id is not None:
                await self.desk.attach(current.decision_id, tx["_id"], session)
            return tx

        return work


async def check_target_period(registry: RegistryService, command: TransferUnits,
                              session: Session) -> None:
    """Units go to the cancellation, retirement or replacement account of their own
    commitment period: a target of another period is refused (5903)."""
    if (command.acquiring_registry != registry.code
            or command.acquiring_account_type not in PER_PERIOD_ACCOUNT_TYPES):
        return
    target = await registry.store.account(command.acquiring_account_id, session)
    if target is not None and target.account_type == command.acquiring_account_type:
        check_period_account(target, command.commitment_period)
