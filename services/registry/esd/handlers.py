"""Effort-sharing use cases of a Member State registry: project facts, surrendering
credits for a year, allowance transfers with other Member States, closing a year.

A surrender is an internal transfer to the ESD account, checked here before it is
proposed (eligibility per block, the year's remaining limit counting open surrenders,
all inside the proposal's store transaction) and booked or released by a final-status
hook when the ITL has decided. Allowance transfers travel through the ITL.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel

from services.registry.domain import Account, choose_blocks
from services.registry.esd.config import ProfileSources
from services.registry.esd.domain import (
    ESD_ACCOUNT_ID,
    ESD_ACCOUNT_TYPE,
    TEMPORARY_UNIT_TYPES,
    Allocation,
    Basis,
    CountryLists,
    ProjectFacts,
    TemporaryCredits,
    YearLedger,
    accept_transfer_in,
    allocate_use,
    apply_replacement,
    book_transfer_in,
    book_transfer_out,
    book_use,
    check_eligibility,
    check_open,
    check_year,
    close_year,
    overdue_replacement,
    release_transfer_in,
    release_transfer_out,
    release_use,
    reserve_transfer_out,
    reserve_use,
)
from services.registry.esd.store import (
    EsdStore,
    allocation_to_doc,
    doc_to_allocation,
    temporary_of,
    temporary_to_doc,
)
from services.registry.handlers import RegistryService, TransferUnits
from shared.blocks import UnitBlock
from shared.codes import ITL_CODE, MessageType, ResponseCode, TransactionStatus, UnitType
from shared.contracts import (
    AllowanceTransferAnswered,
    AllowanceTransferForwarded,
    AllowanceTransferNotified,
    AllowanceTransferSubmitted,
    Envelope,
)
from shared.errors import NotFound, RuleViolation
from shared.logs import log_event
from shared.rules.deadlines import may_act
from shared.service import Runtime
from shared.store import Document, Session, next_sequence
from shared.store.unit_blocks import doc_to_block, doc_units

log = logging.getLogger("registry.esd")

#: Reference of every surrender transaction: ``ESD-<year>``; the hook looks only at these.
SURRENDER_REFERENCE_PREFIX = "ESD-"


@dataclass(frozen=True)
class SurrenderCredits:
    """Use credits towards a year's obligation by moving them to the ESD account."""

    year: int
    transferring_account_id: int
    unit_type: UnitType
    quantity: int
    commitment_period: int
    project_id: str | None = None
    replaces: str | None = None  # a surrender whose tCERs/lCERs these replace


class EsdService:
    """The effort-sharing module of one Member State registry."""

    def __init__(self, registry: RegistryService, store: EsdStore, sources: ProfileSources,
                 lists: CountryLists, commitment_period: int) -> None:
        self.registry = registry
        self.runtime = registry.runtime
        self.store = store
        self.sources = sources
        self.profile = sources.profile
        self.lists = lists
        self.commitment_period = commitment_period
        registry.final_status_hooks.append(self.on_final_status)
        registry.startup_tasks.append(self.start)
        registry.message_handlers[MessageType.ALLOWANCE_TRANSFER_FORWARDED] = (
            self.on_transfer_forwarded)
        registry.message_handlers[MessageType.ALLOWANCE_TRANSFER_NOTIFIED] = (
            self.on_transfer_notified)

    async def start(self) -> None:
        """Indexes and the ESD account (type 100, number 406)."""
        await self.store.ensure_indexes()
        await self.registry.store.ensure_account(
            Account(self.registry.code, ESD_ACCOUNT_TYPE, ESD_ACCOUNT_ID,
                    "Effort-sharing account (Decision 406/2009/EC Art. 5)",
                    self.commitment_period),
            self.runtime.clock.now(),
        )

    def today(self) -> date:
        return self.runtime.clock.now().date()

    # project facts

    async def record_project(self, facts: ProjectFacts) -> ProjectFacts:
        async def work(session: Session) -> None:
            await self.store.save_project(facts, session)

        await self.runtime.commit(work)
        log_event(log, "esd_project_recorded", project_id=facts.project_id,
                  host_country=facts.host_country)
        return facts

    async def require_project(self, project_id: str) -> ProjectFacts:
        facts = await self.store.project(project_id)
        if facts is None:
            raise NotFound(f"effort-sharing facts of project {project_id}")
        return facts

    # surrender of credits

    async def surrender(self, command: SurrenderCredits) -> Document:
        """Check and propose the use of credits for ``command.year``."""

        async def work(session: Session) -> Document:
            return await self._surrender(command, session)

        return await self.runtime.commit(work)

    async def _surrender(self, command: SurrenderCredits, session: Session) -> Document:
        check_year(command.year)
        ledger = await self.store.ledger(command.year, session)
        check_open(ledger)
        blocks = await self._choose_blocks(command, session)
        today = self.today()
        overdue = 0
        if any(b.attributes.unit_type in TEMPORARY_UNIT_TYPES for b in blocks):
            overdue = overdue_replacement(await self.store.temporary_credits(session), today)
        by_basis: Counter[Basis] = Counter()
        by_paragraph: Counter[str] = Counter()
        temporary: Counter[date] = Counter()
        for block in blocks:
            project_id = block.attributes.project_id
            facts = await self.store.project(project_id, session) if project_id else None
            eligibility = check_eligibility(block, facts, self.profile, self.lists,
                                            command.year, today, overdue)
            by_basis[eligibility.basis] += block.quantity
            by_paragraph[eligibility.paragraph] += block.quantity
            if block.attributes.expiry_date and block.attributes.unit_type in \
                    TEMPORARY_UNIT_TYPES:
                temporary[block.attributes.expiry_date] += block.quantity
        if command.replaces is None:
            allocation = allocate_use(ledger, self.profile, by_basis[Basis.GENERAL],
                                      by_basis[Basis.LDC_SIDS], by_basis[Basis.COMMUNITY])
        else:
            # replacing credits were counted when first used; they are not counted again
            allocation = Allocation()
            await self._reserve_replacement(command, session)
        tx = await self.registry.propose_transfer(
            TransferUnits(
                transferring_account_id=command.transferring_account_id,
                acquiring_registry=self.registry.code,
                acquiring_account_type=ESD_ACCOUNT_TYPE,
                acquiring_account_id=ESD_ACCOUNT_ID,
                unit_type=command.unit_type,
                quantity=command.quantity,
                commitment_period=command.commitment_period,
                reference=f"{SURRENDER_REFERENCE_PREFIX}{command.year}",
            ),
            session,
            blocks=blocks,
        )
        now = self.runtime.clock.now()
        doc: Document = {
            "_id": tx["_id"],
            "year": command.year,
            "state": "proposed",
            "unit_type": int(command.unit_type),
            "quantity": command.quantity,
            "transferring_account_id": command.transferring_account_id,
            "allocation": allocation_to_doc(allocation),
            "paragraphs": dict(sorted(by_paragraph.items())),
            "temporary": temporary_to_doc([TemporaryCredits(d, q)
                                           for d, q in sorted(temporary.items())]),
            "replaces": command.replaces,
            "replacement_reserved": 0,
            "response_codes": [],
            "history": [{"state": "proposed", "at": now}],
            "created_at": now,
        }
        await self.store.insert_surrender(doc, session)
        await self.store.save_ledger(reserve_use(ledger, allocation), session)
        log_event(log, "esd_surrender_proposed", transaction_id=tx["_id"], year=command.year,
                  units=command.quantity, general=allocation.general, extra=allocation.extra,
                  community=allocation.community)
        return doc

    async def _choose_blocks(self, command: SurrenderCredits,
                             session: Session) -> list[UnitBlock]:
        account = await self.registry.require_account(command.transferring_account_id,
                                                      session)
        prefix: Document = {
            "registry": self.registry.code,
            "account_id": account.account_id,
            "unit_type": int(command.unit_type),
            "applicable_cp": command.commitment_period,
        }
        held: list[UnitBlock] = []
        units = 0
        # the lowest serials first, read only until the quantity is covered
        async with aclosing(self.registry.store.units.walk(
                prefix, session=session, units=command.quantity)) as docs:
            async for doc in docs:
                if doc.get("reserved_by") is not None or (
                        command.project_id is not None
                        and doc.get("project_id") != command.project_id):
                    continue
                held.append(doc_to_block(doc))
                units += doc_units(doc)
                if units >= command.quantity:
                    break
        return choose_blocks(held, command.quantity, account, command.unit_type)

    async def _reserve_replacement(self, command: SurrenderCredits, session: Session) -> None:
        assert command.replaces is not None
        target = await self.store.surrender(command.replaces, session)
        if target is None or target["state"] != "completed" or not target.get("temporary"):
            raise RuleViolation(ResponseCode.ESD_REPLACEMENT_INVALID,
                                f"{command.replaces} is no completed surrender of tCERs/lCERs")
        if target["year"] != command.year:
            raise RuleViolation(ResponseCode.ESD_REPLACEMENT_INVALID,
                                f"{command.replaces} was used for {target['year']}, "
                                f"not {command.year}")
        outstanding = (sum(e.outstanding for e in temporary_of(target))
                       - target["replacement_reserved"])
        if command.quantity > outstanding:
            raise RuleViolation(ResponseCode.ESD_REPLACEMENT_INVALID,
                                f"{command.quantity} units exceed the {outstanding} temporary "
                                f"credits of {command.replaces} still to replace")
        await self.store.update_surrender(
            command.replaces,
            {"replacement_reserved": target["replacement_reserved"] + command.quantity},
            session)

    async def on_final_status(self, tx: Document, session: Session) -> None:
        """Book a completed surrender as used, release a refused one."""
        if not (tx.get("reference") or "").startswith(SURRENDER_REFERENCE_PREFIX):
            return
        doc = await self.store.surrender(tx["_id"], session)
        if doc is None or doc["state"] != "proposed":
            return
        completed = tx["status"] == TransactionStatus.COMPLETED
        allocation = doc_to_allocation(doc["allocation"])
        ledger = await self.store.ledger(doc["year"], session)
        ledger = book_use(ledger, allocation) if completed else release_use(ledger, allocation)
        await self.store.save_ledger(ledger, session)
        if doc.get("replaces"):
            await self._settle_replacement(doc, completed, session)
        state = "completed" if completed else "refused"
        final = await self.registry.store.transaction(tx["_id"], session) or tx
        codes = [r["response_code"] for r in final.get("evaluation_results", [])]
        await self.store.update_surrender(
            tx["_id"], {"state": state, "response_codes": codes}, session,
            history={"state": state, "at": self.runtime.clock.now()})
        log_event(log, "esd_surrender_" + state, transaction_id=tx["_id"], year=doc["year"],
                  units=doc["quantity"], response_codes=codes)

    async def _settle_replacement(self, doc: Document, completed: bool,
                                  session: Session) -> None:
        target = await self.store.surrender(doc["replaces"], session)
        if target is None:
            return
        fields: Document = {
            "replacement_reserved": target["replacement_reserved"] - doc["quantity"]}
        if completed:
            fields["temporary"] = temporary_to_doc(
                apply_replacement(temporary_of(target), doc["quantity"]))
        await self.store.update_surrender(doc["replaces"], fields, session)

    # allowance transfers between Member States (par. 6)

    async def transfer_allowance(self, year: int, acquiring_state: str,
                                 quantity: int) -> Document:
        """Reserve unused 3 % of ``year`` and propose it to another Member State."""

        async def work(session: Session) -> Document:
            check_year(year)
            ledger = await self.store.ledger(year, session)
            ledger = reserve_transfer_out(ledger, self.profile, quantity, acquiring_state)
            number = await next_sequence(self.store.db, "esd_transfer", session)
            transfer_id = f"{self.registry.code}ESD{number}"
            now = self.runtime.clock.now()
            doc: Document = {
                "_id": transfer_id, "direction": "outgoing", "year": year,
                "quantity": quantity, "transferring_state": self.registry.code,
                "acquiring_state": acquiring_state, "state": "proposed",
                "response_code": None, "reason": "",
                "history": [{"state": "proposed", "at": now}], "created_at": now,
            }
            await self.store.insert_transfer(doc, session)
            await self.store.save_ledger(ledger, session)
            await self.runtime.send(
                session, message_type=MessageType.ALLOWANCE_TRANSFER_SUBMITTED,
                recipient=ITL_CODE, correlation_id=transfer_id,
                payload=AllowanceTransferSubmitted(
                    transfer_id=transfer_id, year=year, quantity=quantity,
                    transferring_state=self.registry.code, acquiring_state=acquiring_state),
            )
            log_event(log, "esd_allowance_transfer_proposed", transfer_id=transfer_id,
                      year=year, units=quantity, acquiring_state=acquiring_state)
            return doc

        return await self.runtime.commit(work)

    async def on_transfer_forwarded(self, envelope: Envelope, payload: BaseModel) -> None:
        """Another Member State transfers allowance to this one: accept it, holding the
        amount (``reserved_in``) until the ITL records the outcome, or refuse; after the
        deadline the ITL set for the answer, refuse with 1104 (docs/adr/0017)."""
        assert isinstance(payload, AllowanceTransferForwarded)
        if payload.deadline is not None:
            await self.runtime.catch_up_clock()

        async def effect(session: Session) -> None:
            if await self.store.transfer(payload.transfer_id, session) is not None:
                return
            now = self.runtime.clock.now()
            refusal: RuleViolation | None = None
            try:
                if payload.acquiring_state != self.registry.code:
                    raise RuleViolation(ResponseCode.SENDER_MISMATCH,
                                        f"transfer is for {payload.acquiring_state}, "
                                        f"not {self.registry.code}")
                if not may_act(payload.deadline, now):
                    raise RuleViolation(ResponseCode.TRANSACTION_TIMED_OUT,
                                        f"answered at {now.isoformat()}, after the deadline "
                                        f"{payload.deadline}")
                check_year(payload.year)
                ledger = await self.store.ledger(payload.year, session)
                await self.store.save_ledger(accept_transfer_in(ledger, payload.quantity),
                                             session)
            except RuleViolation as exc:
                refusal = exc
            state = "pending" if refusal is None else "refused"
            await self.store.insert_transfer({
                "_id": payload.transfer_id, "direction": "inbound", "year": payload.year,
                "quantity": payload.quantity,
                "transferring_state": payload.transferring_state,
                "acquiring_state": payload.acquiring_state, "state": state,
                "response_code": int(refusal.code) if refusal else None,
                "reason": refusal.reason if refusal else "",
                "history": [{"state": state, "at": now}], "created_at": now,
            }, session)
            await answer_transfer(self.runtime, session, envelope, payload.transfer_id, refusal)

        await self.runtime.handle_once(envelope, effect)

    async def on_transfer_notified(self, envelope: Envelope, payload: BaseModel) -> None:
        """The ITL reports the outcome it recorded of a transfer: the transferring state
        books or releases what it reserved, the acquiring state books or releases what
        it held since it accepted; both follow the ITL (docs/adr/0017)."""
        assert isinstance(payload, AllowanceTransferNotified)

        async def effect(session: Session) -> None:
            doc = await self.store.transfer(payload.transfer_id, session)
            waiting = {"outgoing": "proposed", "inbound": "pending"}
            if doc is None or doc["state"] != waiting[doc["direction"]]:
                log_event(log, "esd_transfer_outcome_ignored", logging.WARNING,
                          transfer_id=payload.transfer_id, accepted=payload.accepted,
                          state=doc["state"] if doc else None)
                return
            ledger = await self.store.ledger(doc["year"], session)
            outgoing = doc["direction"] == "outgoing"
            book, release = ((book_transfer_out, release_transfer_out) if outgoing
                             else (book_transfer_in, release_transfer_in))
            if payload.accepted:
                ledger, state = book(ledger, doc["quantity"]), "accepted"
            else:
                ledger, state = release(ledger, doc["quantity"]), "refused"
            await self.store.save_ledger(ledger, session)
            code = int(payload.response_code) if payload.response_code else None
            await self.store.update_transfer(
                payload.transfer_id,
                {"state": state, "response_code": code, "reason": payload.reason},
                session, {"state": state, "at": self.runtime.clock.now()})
            log_event(log, "esd_allowance_transfer_" + state, transfer_id=payload.transfer_id,
                      year=doc["year"], units=doc["quantity"], response_code=code)

        await self.runtime.handle_once(envelope, effect)

    async def require_transfer(self, transfer_id: str) -> Document:
        doc = await self.store.transfer(transfer_id)
        if doc is None:
            raise NotFound(f"allowance transfer {transfer_id}")
        return doc

    # year end

    async def close_year(self, year: int) -> tuple[YearLedger, YearLedger | None]:
        """Close ``year`` and carry its unused limit into the next year (par. 6)."""

        async def work(session: Session) -> tuple[YearLedger, YearLedger | None]:
            check_year(year)
            ledger = await self.store.ledger(year, session)
            following = await self.store.ledger(year + 1, session)
            closed, nxt = close_year(ledger, self.profile, self.today(), following)
            await self.store.save_ledger(closed, session)
            if nxt is not None:
                await self.store.save_ledger(nxt, session)
            log_event(log, "esd_year_closed", year=year, carried_forward=closed.carried_out)
            return closed, nxt

        return await self.runtime.commit(work)

    async def ledger(self, year: int) -> YearLedger:
        check_year(year)
        return await self.store.ledger(year)


async def answer_transfer(runtime: Runtime, session: Session, envelope: Envelope,
                          transfer_id: str, refusal: RuleViolation | None) -> None:
    """Send the acquiring state's answer to the ITL inside ``session``."""
    answer = AllowanceTransferAnswered(
        transfer_id=transfer_id, accepted=refusal is None,
        response_code=refusal.code if refusal else None,
        reason=refusal.reason if refusal else "",
    )
    await runtime.send(session, message_type=MessageType.ALLOWANCE_TRANSFER_ANSWERED,
                       recipient=ITL_CODE, correlation_id=transfer_id, payload=answer,
                       causation_id=envelope.message_id)
    log_event(log, "esd_allowance_transfer_answered", transfer_id=transfer_id,
              accepted=answer.accepted,
              response_code=int(answer.response_code) if answer.response_code else None)


class NotMemberState:
    """A registry without the effort-sharing module refuses allowance transfers (4113)."""

    def __init__(self, registry: RegistryService) -> None:
        self.runtime = registry.runtime
        self.code = registry.code
        registry.message_handlers[MessageType.ALLOWANCE_TRANSFER_FORWARDED] = (
            self.on_transfer_forwarded)
        registry.message_handlers[MessageType.ALLOWANCE_TRANSFER_NOTIFIED] = (
            self.on_transfer_notified)

    async def on_transfer_notified(self, envelope: Envelope, payload: BaseModel) -> None:
        """The outcome of a transfer it was offered and refused, or never answered (the
        ITL timed it out): it holds nothing, so nothing changes."""
        assert isinstance(payload, AllowanceTransferNotified)
        log_event(log, "esd_transfer_outcome_ignored", transfer_id=payload.transfer_id,
                  accepted=payload.accepted, reason="not a Member State")

    async def on_transfer_forwarded(self, envelope: Envelope, payload: BaseModel) -> None:
        assert isinstance(payload, AllowanceTransferForwarded)

        async def effect(session: Session) -> None:
            refusal = RuleViolation(ResponseCode.ESD_NOT_A_MEMBER_STATE,
                                    f"registry {self.code} is not configured as an EU Member "
                                    f"State (ESD_ENABLED is not set)")
            await answer_transfer(self.runtime, session, envelope, payload.transfer_id,
                                  refusal)

        await self.runtime.handle_once(envelope, effect)
