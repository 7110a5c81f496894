"""One handler per message the ITL receives: load, call the domain, store, emit.

Each runs through ``Runtime.handle_once``: the effect, the inbox id and the outgoing
messages (outbox) commit in one store transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from services.itl.domain import (
    RESERVE_WITHOUT_ASSIGNED_AMOUNT,
    AccountKey,
    Discrepancy,
    ItlReaction,
    ProposalRefused,
    ProposalView,
    aau_issuance_by_period,
    check_aau_issuance_limit,
    check_commitment_period_reserve,
    check_data_integrity,
    check_registries_known,
    check_sender,
    check_version,
    commitment_period_reserve,
    cpr_units_leaving_by_period,
    needs_cpr_check,
    react_to_status,
    refuse_if_any,
    registry_code_of,
    sender_role,
)
from services.itl.store import ItlStore, PartyPeriod
from shared.codes import (
    RESPONSE_TEXT,
    MessageType,
    ResponseCode,
    TransactionStatus,
    TransactionType,
)
from shared.contracts import (
    SUPPORTED_SCHEMA_VERSIONS,
    AccountRef,
    Envelope,
    EvaluationResult,
    MessageAck,
    ProposalForwarded,
    ProposalSubmitted,
    TransactionStatusNotified,
    TransactionStatusQueried,
    TransactionStatusReported,
    block_from_wire,
)
from shared.errors import NotFound
from shared.logs import log_event
from shared.service import Runtime
from shared.store import Document, Session
from shared.store.unit_blocks import Holder

log = logging.getLogger("itl")
S = TransactionStatus


class ItlService:
    """The ITL's reactions to registry messages, over its store and outbox."""

    def __init__(self, runtime: Runtime, store: ItlStore, registries: Collection[str]) -> None:
        self.runtime = runtime
        self.store = store
        self.registries = frozenset(registries)

    # ProposalSubmitted

    async def on_proposal_submitted(self, envelope: Envelope, payload: ProposalSubmitted
                                    ) -> None:
        """Check a proposal; reserve its blocks and route it, or refuse it (3 then 5)."""

        async def effect(session: Session) -> None:
            if await self.store.transaction(payload.transaction_id, session) is not None:
                log_event(log, "proposal_already_known", transaction_id=payload.transaction_id,
                          sender=envelope.sender)
                return
            proposal = proposal_view(payload)
            try:
                await self._evaluate(envelope, proposal, session)
            except ProposalRefused as refusal:
                await self._refuse(envelope, payload, refusal, session)
                return
            await self._accept(envelope, payload, proposal, session)

        await self.runtime.handle_once(envelope, effect)

    async def _evaluate(self, envelope: Envelope, proposal: ProposalView, session: Session
                        ) -> None:
        """Run the check families in order; the first that fails raises ProposalRefused."""
        check_version(envelope.schema_version, SUPPORTED_SCHEMA_VERSIONS)
        check_sender(envelope.sender, proposal)
        check_registries_known(envelope.sender, proposal, self.registries)
        check_data_integrity(envelope.sender, proposal)
        await self._check_units(proposal, session)
        await self._check_issuance_limits(proposal, session)
        if needs_cpr_check(proposal):
            await self._check_reserve(proposal, session)

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
            refusals = await self.store.units.check_reservable(
                list(proposal.blocks), holder(proposal.transferring), proposal.transaction_id,
                session,
            )
            found = [Discrepancy(r.code, RESPONSE_TEXT[r.code], r.block) for r in refusals]
        refuse_if_any(found)

    async def _check_issuance_limits(self, proposal: ProposalView, session: Session) -> None:
        party = proposal.proposing_registry
        for period, quantity in sorted(aau_issuance_by_period(proposal).items()):
            record = await self.store.party_period(party, period, session)
            issued = await self.store.aaus_issued(party, period, session)
            check_aau_issuance_limit(
                party, period, record.assigned_amount if record else None, issued, quantity)

    async def _check_reserve(self, proposal: ProposalView, session: Session) -> None:
        party = proposal.proposing_registry
        for period, leaving in sorted(cpr_units_leaving_by_period(proposal).items()):
            record = await self.store.party_period(party, period, session)
            reserve = (
                commitment_period_reserve(record.assigned_amount, record.reviewed_inventory)
                if record else RESERVE_WITHOUT_ASSIGNED_AMOUNT
            )
            holdings = await self.store.cpr_holdings(party, period, session)
            check_commitment_period_reserve(party, period, holdings, leaving, reserve)

    async def _refuse(self, envelope: Envelope, payload: ProposalSubmitted,
                      refusal: ProposalRefused, session: Session) -> None:
        results = [evaluation_result(d) for d in refusal.discrepancies]
        # A transaction id is recorded only for the registry it names, so that no
        # other registry can take an id away from its owner by proposing it first.
        if registry_code_of(payload.transaction_id) == envelope.sender:
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
        else:
            log_event(log, "proposal_refused_unrecorded", logging.WARNING,
                      transaction_id=payload.transaction_id, sender=envelope.sender,
                      response_codes=[int(r.response_code) for r in results])
        await self._notify(session, envelope.sender, payload.transaction_id,
                           S.CHECKED_DISCREPANCY, envelope.message_id, results)

    async def _accept(self, envelope: Envelope, payload: ProposalSubmitted,
                      proposal: ProposalView, session: Session) -> None:
        tx_id = proposal.transaction_id
        blocks = list(proposal.blocks)
        if proposal.transaction_type == TransactionType.ISSUANCE:
            await self.store.units.insert(blocks, holder(proposal.acquiring), session,
                                          reserved_by=tx_id, issuing=True)
        else:
            await self.store.units.reserve(blocks, tx_id, session,
                                           transaction_type=int(proposal.transaction_type))
        statuses = [S.PROPOSED, S.CHECKED_NO_DISCREPANCY]
        await self.store.insert_transaction(
            transaction_id=tx_id,
            transaction_type=proposal.transaction_type,
            proposer=envelope.sender,
            proposal=payload.model_dump(mode="json"),
            statuses=statuses,
            evaluation_results=[],
            at=self.runtime.clock.now(),
            session=session,
        )
        for status in statuses:
            self._log_status(tx_id, status, [])
        if proposal.is_external:
            await self.runtime.send(
                session,
                message_type=MessageType.PROPOSAL_FORWARDED,
                recipient=proposal.acquiring.registry,
                correlation_id=tx_id,
                payload=ProposalForwarded.model_validate(payload.model_dump()),
                causation_id=envelope.message_id,
            )
        else:
            await self._notify(session, envelope.sender, tx_id, S.CHECKED_NO_DISCREPANCY,
                               envelope.message_id)

    # operator commands

    async def record_party_period(self, record: PartyPeriod) -> PartyPeriod:
        """Record a Party's assigned amount and latest reviewed inventory for a period."""
        await self.store.record_party_period(record, self.runtime.clock.now())
        log_event(log, "party_period_recorded", party=record.party,
                  commitment_period=record.commitment_period,
                  assigned_amount=record.assigned_amount,
                  reviewed_inventory=record.reviewed_inventory)
        return record

    async def party_period(self, party: str, period: int) -> PartyPeriod:
        """What the ITL records for a Party and period; NotFound when nothing is."""
        record = await self.store.party_period(party, period)
        if record is None:
            raise NotFound(f"assigned amount of {party} for commitment period {period}")
        return record

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
                log_event(log, "status_ignored", transaction_id=tx_id, sender=envelope.sender,
                          current_status=int(current), incoming_status=int(payload.status))
                return
            await self._apply(envelope, payload, tx, proposal, reaction, reaction.status,
                              session)

        await self.runtime.handle_once(envelope, effect)

    async def _apply(self, envelope: Envelope, payload: TransactionStatusNotified,
                     tx: Document, proposal: ProposalSubmitted, reaction: ItlReaction,
                     status: TransactionStatus, session: Session) -> None:
        tx_id = payload.transaction_id
        now = self.runtime.clock.now()
        results = list(payload.evaluation_results)
        if reaction == ItlReaction.REJECT:
            await self.store.units.release(tx_id, session)
        if reaction == ItlReaction.FINALISE:
            await self.store.units.move_reserved(
                tx_id, holder(account_key(proposal.acquiring)), session)
        await self.store.set_status(
            tx_id, status, now, session,
            evaluation_results=([r.model_dump(mode="json") for r in results]
                                if reaction == ItlReaction.REJECT else None),
        )
        self._log_status(tx_id, status, results)
        if reaction in (ItlReaction.ACCEPT, ItlReaction.REJECT):
            await self._notify(session, tx["proposer"], tx_id, status, envelope.message_id,
                               results)
        elif proposal.transaction_type == TransactionType.EXTERNAL_TRANSFER:
            await self._notify(session, proposal.acquiring.registry, tx_id, status,
                               envelope.message_id)

    # TransactionStatusQueried

    async def on_status_queried(self, envelope: Envelope, payload: TransactionStatusQueried
                                ) -> None:
        """Report the ITL's status of a transaction (None when it never saw it)."""

        async def effect(session: Session) -> None:
            tx = await self.store.transaction(payload.transaction_id, session)
            report = TransactionStatusReported(
                transaction_id=payload.transaction_id,
                status=S(tx["status"]) if tx else None,
                status_at=tx["history"][-1]["at"] if tx else None,
                evaluation_results=[EvaluationResult.model_validate(r)
                                    for r in tx["evaluation_results"]] if tx else [],
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

    async def _notify(self, session: Session, recipient: str, transaction_id: str,
                      status: TransactionStatus, causation_id: str,
                      results: list[EvaluationResult] | None = None) -> None:
        await self.runtime.send(
            session,
            message_type=MessageType.TRANSACTION_STATUS_NOTIFIED,
            recipient=recipient,
            correlation_id=transaction_id,
            payload=TransactionStatusNotified(transaction_id=transaction_id, status=status,
                                              evaluation_results=results or []),
            causation_id=causation_id,
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
