"""One handler per message the ITL receives: load, call the domain, store, emit.

Each runs through ``Runtime.handle_once``: the effect, the inbox id and the outgoing
messages (outbox) commit in one store transaction.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from services.itl.domain import (
    IMPENDING_EXPIRY_NOTICE_DAYS,
    NOTICE_FULFILMENT,
    RESERVE_WITHOUT_ASSIGNED_AMOUNT,
    AccountKey,
    Discrepancy,
    ItlReaction,
    JiProject,
    LedgerKey,
    NoticeView,
    PartyBooks,
    PartyPeriod,
    ProposalRefused,
    ProposalView,
    aau_issuance_by_period,
    approval_effects,
    awaits_proposer,
    check_aau_issuance_limit,
    check_ar_cdm_limit,
    check_article_37ter,
    check_carry_over,
    check_commitment_period_reserve,
    check_conversion,
    check_data_integrity,
    check_eligibility,
    check_issued_expiry,
    check_new_expiry_date,
    check_not_expired,
    check_notice,
    check_ppsr,
    check_registries_known,
    check_rmu_issuance_limit,
    check_share_of_proceeds,
    completion_effects,
    cpr_units_leaving_by_period,
    entries_from_docs,
    entries_to_docs,
    fulfilled_by,
    fulfilment_after,
    needs_cpr_check,
    notice_status_after,
    react_to_status,
    refuse_if_any,
    rmu_issuance_by_activity,
    sender_role,
)
from services.itl.domain.proposal import refuse
from services.itl.store import ItlStore
from shared.codes import (
    CDM_CODE,
    RESPONSE_TEXT,
    MessageType,
    NoticeStatus,
    NoticeType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
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
from shared.errors import RuleViolation
from shared.logs import HeldLogs, holding_logs, log_event
from shared.metrics import proposal_checked
from shared.rules.deadlines import deadline_after
from shared.rules.parties import PartyStanding
from shared.service import Runtime
from shared.store import Document, MessageIdReused, Session, after_commit
from shared.store.unit_blocks import Holder, doc_to_block

log = logging.getLogger("itl")
S = TransactionStatus


class ItlService:
    """The ITL's reactions to registry messages, over its store and outbox."""

    def __init__(self, runtime: Runtime, store: ItlStore, registries: Collection[str],
                 timeout: timedelta = timedelta(hours=24),
                 true_up_ends: Mapping[int, date] | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.registries = frozenset(registries)
        #: How long a registry has to act on a status or a forwarded proposal (simulated
        #: time; ``TRANSACTION_TIMEOUT_HOURS``): each wait gets its deadline from it.
        self.timeout = timeout
        #: Last day of each period's additional period for fulfilling commitments.
        self.true_up_ends = dict(true_up_ends or {})
        #: Registries set inconsistent as a whole by an ITL administrator, with the
        #: reason (``services.itl.reconciliation.Reconciliations.inconsistent``): their
        #: new proposals are refused with 1203 (protocol.md 5, O).
        self.inconsistent_registries: Mapping[str, str] = {}

    # ProposalSubmitted

    async def on_proposal_submitted(self, envelope: Envelope, payload: ProposalSubmitted
                                    ) -> None:
        """Check a proposal; reserve its blocks and route it, or refuse it (3 then 5). A
        transaction id proposed before with other content is refused as a message (1105,
        ``MessageAck``), the recorded transaction unchanged; the same proposal again has
        no effect.

        Handled first as a transaction id new to the ITL, the usual case
        (``_handle_as_new``): without reading whether it is known, and with the first
        ``seq`` of its messages 0 without counting. When that guess is wrong the store
        says so: the transaction's insert fails on its id's duplicate key (or its first
        message on the outbox's unique ``seq``), which aborts the whole store
        transaction, and the proposal is handled again reading the transaction
        recorded under its id (``_handle_reading``), as the inbox tells a redelivery
        (``shared.store.inbox``)."""
        if not await self._handle_as_new(envelope, payload):
            await self._handle_reading(envelope, payload)

    async def _handle_as_new(self, envelope: Envelope, payload: ProposalSubmitted) -> bool:
        """Handle the proposal as one of a transaction id the ITL has not recorded; False
        when the store refused a write of it as a duplicate (the id is known, or messages
        about it were stored before): nothing of it was stored, nor logged. True when it
        is done (or the message was handled before)."""
        logged: list[HeldLogs] = []

        async def effect(session: Session) -> None:
            with holding_logs() as held:
                logged[:] = [held]  # an attempt retried by the store logs anew
                await self._check_and_record(envelope, payload, session,
                                             first=self.store.outbox_seq_unique)

        try:
            handled = await self.runtime.handle_once(envelope, effect)
        except DuplicateKeyError:
            return False
        except MessageIdReused:
            raise
        except Exception:
            for held in logged:  # a failure stands: what it did is logged, as before
                held.emit()
            raise
        if handled:
            for held in logged:
                held.emit()
        return True

    async def _handle_reading(self, envelope: Envelope, payload: ProposalSubmitted) -> None:
        """Handle the proposal after reading the transaction recorded under its id."""

        async def effect(session: Session) -> None:
            known = await self.store.transaction(payload.transaction_id, session)
            if known is not None:
                if known["proposal"] == payload.model_dump(mode="json"):
                    # the same proposal again (a registry that submits it again after a
                    # status query): one effect
                    log_event(log, "proposal_already_known",
                              transaction_id=payload.transaction_id, sender=envelope.sender)
                    return
                await self._refuse_message(
                    session, envelope, ResponseCode.TRANSACTION_ID_REUSED,
                    f"transaction id {payload.transaction_id} was proposed before with other "
                    f"content (status {known['status']}); a transaction id is used once")
                return
            await self._check_and_record(envelope, payload, session, first=False)

        await self.runtime.handle_once(envelope, effect)

    async def _check_and_record(self, envelope: Envelope, payload: ProposalSubmitted,
                                session: Session, first: bool) -> None:
        """Check a proposal of a transaction id not recorded yet and record it, approved
        or refused. ``first``: its first message gets ``seq`` 0 without counting
        (``Runtime.send``)."""
        proposal = proposal_view(payload)
        try:
            await self._evaluate(envelope, proposal, session)
        except ProposalRefused as refusal:
            await self._refuse(envelope, payload, refusal, session, first)
            return
        await self._accept(envelope, payload, proposal, session, first)

    async def _evaluate(self, envelope: Envelope, proposal: ProposalView, session: Session
                        ) -> None:
        """Run the check families in order; the first that fails raises ProposalRefused.

        Version and sender (family 1) were checked on the message, before it came here
        (``shared.contracts.validity``)."""
        check_registries_known(proposal, self.registries)
        if proposal.proposing_registry in self.inconsistent_registries:
            refuse(ResponseCode.REGISTRY_INCONSISTENT,
                   f"registry {proposal.proposing_registry} is set inconsistent by "
                   f"reconciliation: "
                   f"{self.inconsistent_registries[proposal.proposing_registry]}")
        check_data_integrity(envelope.sender, proposal)
        parties = [proposal.proposing_registry]
        if proposal.is_external:
            parties.append(proposal.acquiring.registry)
        books = await self.store.parties_books([p for p in parties if p != CDM_CODE],
                                               session)
        proposer = books.get(proposal.proposing_registry)
        acquiring = books.get(proposal.acquiring.registry) if proposal.is_external else None
        check_eligibility(proposal, proposer, acquiring)
        await self._check_units(proposal, session)
        await self._check_issuance_limits(proposal, proposer, session)
        await self._check_type_specific(proposal, proposer, acquiring, session)
        if needs_cpr_check(proposal) and proposer is not None:
            await self._check_reserve(proposal, proposer, session)

    async def _check_units(self, proposal: ProposalView, session: Session) -> None:
        """Issued serials are new; transferred blocks are held, in circulation, free."""
        found: list[Discrepancy] = []
        if proposal.transaction_type == TransactionType.ISSUANCE:
            for block in proposal.blocks:
                existing = await self.store.units.overlapping(
                    block.attributes.originating_registry, block.serials, session)
                if existing:
                    found.append(Discrepancy(
                        ResponseCode.BLOCK_IN_ANOTHER_REGISTRY,
                        f"serials {block.serials.start}-{block.serials.end} of "
                        f"{block.attributes.originating_registry} already exist",
                        block,
                    ))
        else:
            assert proposal.transferring is not None  # data integrity made sure
            rule = proposal.rule
            refusals = await self.store.units.check_reservable(
                list(proposal.blocks), holder(proposal.transferring), proposal.transaction_id,
                session, in_place=rule is not None and rule.keeps_units_in_place,
            )
            found = [Discrepancy(r.code, RESPONSE_TEXT[r.code], r.block) for r in refusals]
            if proposal.replaced_blocks:
                replaced = await self.store.units.check_replaceable(
                    list(proposal.replaced_blocks), proposal.transferring.registry,
                    replaced_reservation(proposal.transaction_id), session)
                found += [Discrepancy(r.code, f"replaced block: {RESPONSE_TEXT[r.code]}",
                                      r.block) for r in replaced]
        refuse_if_any(found)

    async def _check_type_specific(self, proposal: ProposalView, proposer: PartyBooks | None,
                                   acquiring: PartyBooks | None, session: Session) -> None:
        """Expiry, JI projects, the second period's limits and notices (3007, 4002-4015)."""
        today = self.runtime.clock.now().date()
        if proposal.transaction_type != TransactionType.ISSUANCE:
            check_not_expired(proposal, today)
        check_issued_expiry(proposal)
        check_new_expiry_date(proposal, today)
        if proposal.transaction_type == TransactionType.CONVERSION and proposal.project_id:
            check_conversion(proposal, await self.store.ji_project(proposal.project_id,
                                                                   session))
        if proposer is not None:
            check_carry_over(proposal, today, self.true_up_ends, proposer)
            check_article_37ter(proposal, proposer)
            check_ppsr(proposal, proposer, acquiring)
            check_share_of_proceeds(proposal, proposer)
        check_ar_cdm_limit(proposal, acquiring)
        notice = (await self.store.notice(proposal.notification_id, session)
                  if proposal.notification_id is not None else None)
        check_notice(proposal, notice_view(notice))

    async def _check_issuance_limits(self, proposal: ProposalView, books: PartyBooks | None,
                                     session: Session) -> None:
        """AAUs within the assigned amount (less Art. 3.7ter until cancelled), RMUs within
        each LULUCF activity's limit (4001)."""
        if books is None:
            return
        party = books.code
        for period, quantity in sorted(aau_issuance_by_period(proposal).items()):
            issued = await self.store.aaus_issued(party, period, session)
            check_aau_issuance_limit(party, period, books.periods.get(period), issued,
                                     books.count(period, LedgerKey.ARTICLE_37TER_CANCELLED),
                                     quantity)
        for (period, activity), quantity in sorted(rmu_issuance_by_activity(proposal).items()):
            issued = await self.store.rmus_issued(party, period, activity, session)
            check_rmu_issuance_limit(party, period, activity, books.periods.get(period),
                                     issued, quantity)

    async def _check_reserve(self, proposal: ProposalView, books: PartyBooks,
                             session: Session) -> None:
        party = books.code
        for period, leaving in sorted(cpr_units_leaving_by_period(proposal, books).items()):
            record = books.periods.get(period)
            reserve = record.reserve if record else RESERVE_WITHOUT_ASSIGNED_AMOUNT
            holdings = await self.store.cpr_holdings(party, period, session)
            check_commitment_period_reserve(party, period, holdings, leaving, reserve)

    async def _refuse(self, envelope: Envelope, payload: ProposalSubmitted,
                      refusal: ProposalRefused, session: Session, first: bool) -> None:
        results = [evaluation_result(d) for d in refusal.discrepancies]
        after_commit(session, proposal_checked(d.code for d in refusal.discrepancies))
        # The id is the sender's own: the message-level checks refused any other.
        statuses = [S.PROPOSED, S.CHECKED_DISCREPANCY, S.TERMINATED]
        await self.store.insert_transaction(
            transaction_id=payload.transaction_id,
            transaction_type=payload.transaction_type,
            proposer=envelope.sender,
            proposal=payload.model_dump(mode="json"),
            statuses=statuses,
            evaluation_results=[r.model_dump(mode="json") for r in results],
            at=self.runtime.clock.now(),
            session=session,
        )
        for status in statuses:
            self._log_status(payload.transaction_id, status, results)
        await self._notify(session, envelope.sender, payload.transaction_id,
                           S.CHECKED_DISCREPANCY, envelope.message_id, results, first=first)

    async def _accept(self, envelope: Envelope, payload: ProposalSubmitted,
                      proposal: ProposalView, session: Session, first: bool) -> None:
        tx_id = proposal.transaction_id
        blocks = list(proposal.blocks)
        after_commit(session, proposal_checked(()))
        if proposal.transaction_type == TransactionType.ISSUANCE:
            await self.store.units.insert(blocks, holder(proposal.acquiring), session,
                                          reserved_by=tx_id, issuing=True)
        else:
            await self.store.units.reserve(blocks, tx_id, session,
                                           transaction_type=int(proposal.transaction_type))
            await self.store.units.reserve(list(proposal.replaced_blocks),
                                           replaced_reservation(tx_id), session)
        statuses = [S.PROPOSED, S.CHECKED_NO_DISCREPANCY]
        deadline = self.deadline()
        effects = approval_effects(proposal)
        await self.store.apply_ledger(effects, session)
        if proposal.transaction_type == TransactionType.CONVERSION and proposal.project_id:
            await self.store.add_converted(proposal.project_id, proposal.quantity, session)
        if proposal.notification_id is not None:
            await self.store.update_notice(
                proposal.notification_id, {"updated_at": self.runtime.clock.now()}, session,
                inc={"pending_quantity": fulfilled_by(proposal)})
        await self.store.insert_transaction(
            transaction_id=tx_id,
            transaction_type=proposal.transaction_type,
            proposer=envelope.sender,
            proposal=payload.model_dump(mode="json"),
            statuses=statuses,
            evaluation_results=[],
            at=self.runtime.clock.now(),
            session=session,
            ledger=entries_to_docs(effects),
            deadline=deadline,
        )
        for status in statuses:
            self._log_status(tx_id, status, [])
        if proposal.is_external:
            await self.runtime.send(
                session,
                message_type=MessageType.PROPOSAL_FORWARDED,
                recipient=proposal.acquiring.registry,
                correlation_id=tx_id,
                payload=ProposalForwarded.model_validate(
                    {**payload.model_dump(), "deadline": deadline}),
                causation_id=envelope.message_id,
                first=first,
            )
        else:
            await self._notify(session, envelope.sender, tx_id, S.CHECKED_NO_DISCREPANCY,
                               envelope.message_id, deadline=deadline, first=first)

    def deadline(self) -> datetime:
        """The deadline of a wait that starts now (``shared.rules.deadlines``)."""
        return deadline_after(self.runtime.clock.now(), self.timeout)

    # operator commands

    async def record_party_period(self, record: PartyPeriod) -> PartyPeriod:
        """Record a Party's assigned amount and latest reviewed inventory for a period,
        and send it notice 7 with its reserve, in one store transaction."""

        async def work(session: Session) -> None:
            await self.store.record_party_period(record, self.runtime.clock.now(), session)
            if record.party in self.registries:
                reserve = record.reserve
                await self._issue_notice({
                    "notice_type": int(NoticeType.COMMITMENT_PERIOD_RESERVE),
                    "registry": record.party, "target_value": reserve,
                    "commitment_period": record.commitment_period,
                    "text": f"commitment period reserve for period "
                            f"{record.commitment_period}: {reserve} units",
                }, session)

        await self.runtime.commit(work)
        log_event(log, "party_period_recorded", party=record.party,
                  commitment_period=record.commitment_period,
                  assigned_amount=record.assigned_amount,
                  reviewed_inventory=record.reviewed_inventory)
        return record

    async def record_standing(self, standing: PartyStanding) -> None:
        """Set a Party's commitment periods and mechanism eligibility."""

        async def work(session: Session) -> None:
            await self.store.record_standing(standing, self.runtime.clock.now(), session)

        await self.runtime.commit(work)

    async def record_ji_project(self, project: JiProject) -> JiProject:
        """Record a JI project and, for track 2, the JISC's approved ERU quantity."""

        async def work(session: Session) -> None:
            await self.store.record_ji_project(project, session)

        await self.runtime.commit(work)
        log_event(log, "ji_project_recorded", project_id=project.project_id,
                  host_party=project.host_party, track=project.track,
                  approved_quantity=project.approved_quantity)
        return project

    # TransactionStatusNotified

    async def on_status_notified(self, envelope: Envelope, payload: TransactionStatusNotified
                                 ) -> None:
        """Apply a registry's status to the ITL's record of the transaction."""

        async def effect(session: Session) -> None:
            tx_id = payload.transaction_id
            tx = await self.store.transaction(tx_id, session)
            if tx is None:
                await self._refuse_message(
                    session, envelope, ResponseCode.OUT_OF_SEQUENCE,
                    f"transaction {tx_id} is unknown to the ITL")
                return
            proposal = ProposalSubmitted.model_validate(tx["proposal"])
            transaction_type = TransactionType(tx["transaction_type"])
            role = sender_role(envelope.sender, tx["proposer"], transaction_type,
                               proposal.acquiring.registry)
            if role is None:
                await self._refuse_message(
                    session, envelope, ResponseCode.SENDER_MISMATCH,
                    f"{envelope.sender} takes no part in transaction {tx_id}")
                return
            current = S(tx["status"])
            reaction = react_to_status(current, transaction_type, role, payload.status)
            if reaction.status is None:
                self._log_ignored(tx, envelope, payload)
                return
            await self._apply(envelope, payload, tx, proposal, reaction, reaction.status,
                              session)

        await self.runtime.handle_once(envelope, effect)

    def _log_ignored(self, tx: Document, envelope: Envelope,
                     payload: TransactionStatusNotified) -> None:
        """Log a status that changes nothing; a completion that comes after the ITL ended
        the transaction by time-out is an alert: the proposer's books moved units the
        ITL's did not (docs/adr/0017, the window that remains)."""
        timed_out = any(r.get("response_code") == ResponseCode.TRANSACTION_TIMED_OUT
                        for r in tx.get("evaluation_results", []))
        if tx["status"] == S.TERMINATED and payload.status == S.COMPLETED and timed_out:
            log_event(log, "completion_after_time_out", logging.ERROR, alert=True,
                      transaction_id=tx["_id"], sender=envelope.sender,
                      sent_at=envelope.sent_at.isoformat(),
                      deadline=str(tx.get("deadline")))
            return
        log_event(log, "status_ignored", transaction_id=tx["_id"], sender=envelope.sender,
                  current_status=int(tx["status"]), incoming_status=int(payload.status))

    async def _apply(self, envelope: Envelope, payload: TransactionStatusNotified,
                     tx: Document, proposal: ProposalSubmitted, reaction: ItlReaction,
                     status: TransactionStatus, session: Session) -> None:
        tx_id = payload.transaction_id
        now = self.runtime.clock.now()
        results = list(payload.evaluation_results)
        undone = reaction in (ItlReaction.REJECT, ItlReaction.TIMED_OUT)
        if undone:
            await self._undo_approval(tx, proposal_view(proposal), session)
        if reaction == ItlReaction.FINALISE:
            await self._finalise(proposal, session)
        # accepted: the proposer now has until this deadline to complete
        deadline = self.deadline() if reaction == ItlReaction.ACCEPT else None
        await self.store.set_status(
            tx_id, status, now, session,
            evaluation_results=([r.model_dump(mode="json") for r in results]
                                if undone else None),
            deadline=deadline, tx=tx,
        )
        self._log_status(tx_id, status, results)
        if reaction in (ItlReaction.ACCEPT, ItlReaction.REJECT):
            await self._notify(session, tx["proposer"], tx_id, status, envelope.message_id,
                               results, deadline=deadline)
        elif proposal.transaction_type == TransactionType.EXTERNAL_TRANSFER:
            await self._notify(session, proposal.acquiring.registry, tx_id, status,
                               envelope.message_id)

    async def _finalise(self, payload: ProposalSubmitted, session: Session) -> None:
        """Update the register as the completed transaction says, its counters and its
        notice."""
        tx_id = payload.transaction_id
        proposal = proposal_view(payload)
        # The ITL reserved exactly the proposal's blocks under its id (``_accept``): the
        # blocks and their merges' neighbours are read in one look-up.
        await self.store.units.move_reserved(
            tx_id, holder(account_key(payload.acquiring)), session, unit_change_of(payload),
            blocks=proposal.blocks)
        if proposal.transaction_type == TransactionType.REPLACEMENT:
            await self.store.units.mark_replaced(replaced_reservation(tx_id), tx_id, session)
        await self.store.apply_ledger(completion_effects(proposal), session)
        if proposal.notification_id is not None:
            await self._advance_notice(proposal, session)

    async def _undo_approval(self, tx: Document, proposal: ProposalView,
                             session: Session) -> None:
        """An approved transaction failed (refused by the acquiring registry, or timed
        out): its units are released and what it took up is given back."""
        await self.store.units.release(proposal.transaction_id, session)
        await self.store.apply_ledger(
            [e.reversed() for e in entries_from_docs(tx.get("ledger", []))], session)
        if proposal.notification_id is not None:
            await self.store.update_notice(
                proposal.notification_id, {"updated_at": self.runtime.clock.now()}, session,
                inc={"pending_quantity": -fulfilled_by(proposal)})

    async def _advance_notice(self, proposal: ProposalView, session: Session) -> None:
        assert proposal.notification_id is not None
        notice = await self.store.notice(proposal.notification_id, session)
        if notice is None:
            return
        quantity = fulfilled_by(proposal)
        fulfilled = fulfilment_after(notice.get("target_value"), notice["fulfilled_quantity"],
                                     quantity)
        status = notice_status_after(notice.get("target_value"), fulfilled)
        await self.store.update_notice(
            notice["_id"], {"fulfilled_quantity": fulfilled, "status": status,
                            "updated_at": self.runtime.clock.now()},
            session, transaction_id=proposal.transaction_id,
            inc={"pending_quantity": -quantity})
        await self._send_notice({**notice, "fulfilled_quantity": fulfilled, "status": status},
                                session)

    # notices

    async def issue_notice(self, fields: Document) -> Document:
        """Record a notice and send it to its registry (AcceptITLNotice)."""

        async def work(session: Session) -> Document:
            return await self._issue_notice(fields, session)

        return await self.runtime.commit(work)

    async def _issue_notice(self, fields: Document, session: Session) -> Document:
        if fields["notice_type"] == NoticeType.NOTIFICATION_UPDATE:
            await self._amend_notice(fields, session)
        now = self.runtime.clock.now()
        informative = NOTICE_FULFILMENT.get(fields["notice_type"]) is None
        status = NoticeStatus.COMPLETED if informative else NoticeStatus.OPEN
        doc = await self.store.insert_notice(
            {**fields, "status": int(status), "fulfilled_quantity": 0,
             "transactions": [], "issued_at": now, "updated_at": now}, session)
        await self._send_notice(doc, session)
        log_event(log, "notice_issued", notice_id=doc["_id"], notice_type=doc["notice_type"],
                  registry=doc["registry"], target_value=doc.get("target_value"),
                  action_due_date=doc.get("action_due_date"))
        return doc

    async def _amend_notice(self, update: Document, session: Session) -> None:
        """Notice 10 amends an earlier notice (target, dates, blocks); the registry gets
        the amended notice again."""
        amended_id = update.get("amends")
        original = await self.store.notice(amended_id, session) if amended_id else None
        if original is None:
            raise RuleViolation(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                                f"notice 10 amends an earlier notice: {amended_id} is unknown")
        if original["registry"] != update["registry"]:
            raise RuleViolation(ResponseCode.NOTICE_UNKNOWN_OR_CLOSED,
                                f"notice {amended_id} is addressed to {original['registry']}")
        changes = {k: update[k] for k in ("target_value", "target_date", "action_due_date",
                                          "text") if update.get(k) is not None}
        if update.get("blocks"):
            changes["blocks"] = update["blocks"]
        changes["updated_at"] = self.runtime.clock.now()
        if changes.get("target_value") is not None and original["status"] != NoticeStatus.OPEN:
            changes["status"] = notice_status_after(changes["target_value"],
                                                    original["fulfilled_quantity"])
        await self.store.update_notice(original["_id"], changes, session)
        await self._send_notice({**original, **changes}, session)

    async def _send_notice(self, doc: Document, session: Session) -> None:
        await self.runtime.send(
            session, message_type=MessageType.NOTICE_ISSUED, recipient=doc["registry"],
            correlation_id=f"N{doc['_id']}", payload=notice_message(doc))

    async def notify_impending_expiry(self) -> None:
        """Due work: notice 3 for tCER/lCER blocks expiring within the notice period."""
        today = self.runtime.clock.now().date()
        docs = await self.store.expiring_unnoticed(
            today + timedelta(days=IMPENDING_EXPIRY_NOTICE_DAYS))
        by_registry: dict[str, list[Document]] = {}
        for doc in docs:
            by_registry.setdefault(doc["registry"], []).append(doc)
        for registry, blocks in sorted(by_registry.items()):
            await self.runtime.commit(functools.partial(self._notice_expiry, registry, blocks))

    async def _notice_expiry(self, registry: str, docs: list[Document],
                             session: Session) -> None:
        blocks = [doc_to_block(d) for d in docs]
        notice = await self._issue_notice({
            "notice_type": int(NoticeType.IMPENDING_EXPIRY),
            "registry": registry,
            "target_value": sum(b.quantity for b in blocks),
            "action_due_date": min(str(d["expiry_date"]) for d in docs),
            "blocks": [block_to_wire(b).model_dump(mode="json") for b in blocks],
            "text": "tCERs/lCERs expire: replace them by the action due date",
        }, session)
        await self.store.mark_expiry_noticed([d["_id"] for d in docs], notice["_id"], session)

    # time-outs (services/itl/timeouts.py decides when; docs/adr/0017)

    async def time_out(self, tx: Document, deadline: datetime, session: Session) -> None:
        """End a transaction whose registry did not act by ``deadline``: status 5 with
        1104, its register blocks released (issued ones deleted), what its approval took
        up of the Party ledgers and its notice given back; its parties are told."""
        tx_id = tx["_id"]
        proposal = ProposalSubmitted.model_validate(tx["proposal"])
        acquiring = proposal.acquiring.registry
        waited = (f"{tx['proposer']} did not complete it"
                  if awaits_proposer(S(tx["status"]), proposal.transaction_type)
                  else f"{acquiring} did not answer")
        result = EvaluationResult(
            response_code=ResponseCode.TRANSACTION_TIMED_OUT,
            message=f"{waited} by the deadline {deadline.isoformat()} "
                    f"({self.timeout.total_seconds() / 3600:g} hours)")
        await self._undo_approval(tx, proposal_view(proposal), session)
        await self.store.set_status(tx_id, S.TERMINATED, self.runtime.clock.now(), session,
                                    evaluation_results=[result.model_dump(mode="json")], tx=tx)
        self._log_status(tx_id, S.TERMINATED, [result])
        recipients = [tx["proposer"]]
        if proposal.transaction_type == TransactionType.EXTERNAL_TRANSFER:
            recipients.append(acquiring)
        for recipient in recipients:
            await self._notify(session, recipient, tx_id, S.TERMINATED, None, [result])

    # TransactionStatusQueried

    async def on_status_queried(self, envelope: Envelope, payload: TransactionStatusQueried
                                ) -> None:
        """Report the ITL's status of a transaction (None when it never saw it). Only the
        proposer and, for an external transfer, the acquiring registry learn it: to any
        other registry the transaction is unknown."""

        async def effect(session: Session) -> None:
            tx = await self.store.transaction(payload.transaction_id, session)
            if tx is not None and not self._party_to(tx, envelope.sender):
                log_event(log, "status_query_by_a_stranger", logging.WARNING,
                          transaction_id=payload.transaction_id, sender=envelope.sender)
                tx = None
            report = TransactionStatusReported(
                transaction_id=payload.transaction_id,
                status=S(tx["status"]) if tx else None,
                status_at=tx["history"][-1]["at"] if tx else None,
                evaluation_results=[EvaluationResult.model_validate(r)
                                    for r in tx["evaluation_results"]] if tx else [],
                deadline=(tx.get("deadline") if tx and awaits_proposer(
                    S(tx["status"]), TransactionType(tx["transaction_type"])) else None),
            )
            await self.runtime.send(
                session,
                message_type=MessageType.TRANSACTION_STATUS_REPORTED,
                recipient=envelope.sender,
                correlation_id=payload.transaction_id,
                payload=report,
                causation_id=envelope.message_id,
            )

        await self.runtime.handle_once(envelope, effect)

    # helpers

    @staticmethod
    def _party_to(tx: Document, registry: str) -> bool:
        """Whether ``registry`` takes part in a transaction the ITL recorded."""
        proposal = ProposalSubmitted.model_validate(tx["proposal"])
        return sender_role(registry, tx["proposer"], proposal.transaction_type,
                           proposal.acquiring.registry) is not None

    async def _notify(self, session: Session, recipient: str, transaction_id: str,
                      status: TransactionStatus, causation_id: str | None,
                      results: list[EvaluationResult] | None = None,
                      deadline: datetime | None = None, first: bool = False) -> None:
        await self.runtime.send(
            session,
            message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
            recipient=recipient,
            correlation_id=transaction_id,
            payload=TransactionStatusNotified(transaction_id=transaction_id, status=status,
                                              evaluation_results=results or [],
                                              deadline=deadline),
            causation_id=causation_id,
            first=first,
        )

    async def _refuse_message(self, session: Session, envelope: Envelope, code: ResponseCode,
                              reason: str) -> None:
        log_event(log, "message_refused", logging.WARNING,
                  transaction_id=envelope.correlation_id, sender=envelope.sender,
                  message_id=envelope.message_id, response_code=int(code), reason=reason)
        await self.runtime.send(
            session,
            message_type=MessageType.MESSAGE_ACK,
            recipient=envelope.sender,
            correlation_id=envelope.correlation_id,
            payload=MessageAck(acked_message_id=envelope.message_id, accepted=False,
                               response_codes=[code], reason=reason),
            causation_id=envelope.message_id,
        )

    def _log_status(self, transaction_id: str, status: TransactionStatus,
                    results: list[EvaluationResult]) -> None:
        log_event(log, "transaction_status_changed", transaction_id=transaction_id,
                  status=int(status), status_name=status.name,
                  response_codes=[int(r.response_code) for r in results])


def proposal_view(payload: ProposalSubmitted) -> ProposalView:
    """The domain's view of a wire proposal."""
    return ProposalView(
        transaction_id=payload.transaction_id,
        transaction_type=payload.transaction_type,
        transferring=account_key(payload.transferring) if payload.transferring else None,
        acquiring=account_key(payload.acquiring),
        blocks=tuple(block_from_wire(b) for b in payload.blocks),
        notification_id=payload.notification_id,
        project_id=payload.project_id,
        track=payload.track,
        new_expiry_date=payload.new_expiry_date,
        replaced_blocks=tuple(block_from_wire(b) for b in payload.replaced_blocks),
        supplementary_type=payload.supp_transaction_type,
    )


def notice_view(doc: Document | None) -> NoticeView | None:
    """The check's view of a stored notice."""
    if doc is None:
        return None
    return NoticeView(
        doc["_id"], doc["notice_type"], doc["registry"], doc["status"],
        doc.get("target_value"), doc["fulfilled_quantity"], doc.get("pending_quantity", 0),
        doc.get("unit_type"), doc.get("project_id"), doc.get("commitment_period"),
        tuple(block_from_wire(UnitBlockWire.model_validate(b)) for b in doc.get("blocks", [])),
        date.fromisoformat(doc["target_date"]) if doc.get("target_date") else None)


def notice_message(doc: Document) -> NoticeIssued:
    """The wire form of a stored notice."""
    return NoticeIssued(
        notice_id=doc["_id"],
        notice_type=NoticeType(doc["notice_type"]),
        status=NoticeStatus(doc["status"]),
        project_id=doc.get("project_id"),
        unit_type=doc.get("unit_type"),
        target_value=doc.get("target_value"),
        target_date=doc.get("target_date"),
        lulucf_activity=doc.get("lulucf_activity"),
        commitment_period=doc.get("commitment_period"),
        action_due_date=doc.get("action_due_date"),
        blocks=[UnitBlockWire.model_validate(b) for b in doc.get("blocks", [])],
        fulfilled_quantity=doc.get("fulfilled_quantity", 0),
        text=doc.get("text", ""),
    )


def account_key(ref: AccountRef) -> AccountKey:
    return AccountKey(ref.registry, int(ref.account_type), ref.account_id)


def holder(account: AccountKey) -> Holder:
    """The register's holder of an account."""
    return Holder(account.registry, account.account_type, account.account_id)


def evaluation_result(discrepancy: Discrepancy) -> EvaluationResult:
    """A discrepancy on the wire, naming its block when it concerns one."""
    block = discrepancy.block
    return EvaluationResult(
        response_code=discrepancy.code,
        message=discrepancy.reason,
        serial_start=block.serials.start if block else None,
        originating_registry=block.attributes.originating_registry if block else None,
    )
