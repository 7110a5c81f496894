"""The ITL's own database: transactions, the register of every unit block, Party data.

Collections: ``transactions`` (_id = transaction id), ``units`` (one document per block,
``registry`` being the holding registry), ``parties`` (_id = Party code, one entry per
commitment period), plus the shared ``inbox`` and ``outbox``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.itl.domain import CPR_UNIT_TYPES, JiProject, LedgerEntry, PartyBooks, PartyPeriod
from shared.audit import AuditTrail, side_keys
from shared.codes import (
    OUT_OF_CIRCULATION_ACCOUNT_TYPES,
    TransactionStatus,
    TransactionType,
    UnitType,
)
from shared.logs import log_event
from shared.metrics import statuses_entered
from shared.rules.parties import Mechanism, PartyStanding, reference_standing
from shared.store import (
    Database,
    Document,
    Session,
    after_commit,
    find_known,
    know,
    next_sequence,
)
from shared.store.unit_blocks import HOLDINGS, Tally, UnitBlockStore

log = logging.getLogger("itl.store")
#: The index that makes the ``seq`` of the ITL's messages unique per correlation id.
OUTBOX_SEQ_INDEX = "correlation_id_1_seq_unique"
_CPR_TYPES = frozenset(int(t) for t in CPR_UNIT_TYPES)
_OUT_OF_CIRCULATION = frozenset(int(t) for t in OUT_OF_CIRCULATION_ACCOUNT_TYPES)
_AAU_TYPES = frozenset({int(UnitType.AAU), int(UnitType.ERU_FROM_AAU)})
_RMU_TYPES = frozenset({int(UnitType.RMU), int(UnitType.ERU_FROM_RMU)})


def _reserve_key(doc: Document) -> tuple[Any, ...] | None:
    if (doc["unit_type"] not in _CPR_TYPES or doc["account_type"] in _OUT_OF_CIRCULATION
            or doc.get("issuing")
            or doc.get("reserved_for_type") == int(TransactionType.EXTERNAL_TRANSFER)):
        return None
    return (doc["registry"], doc["applicable_cp"])


#: Units of a Party (its registry holds them) counted for its commitment period reserve
#: in a period: AAU, ERU, RMU and CER (``CPR_UNIT_TYPES``) of that applicable period, in
#: circulation (not in a cancellation, retirement or replacement account), not being
#: issued, not reserved by an open external transfer (protocol.md 4.1 "which holdings
#: count"; checked on every external transfer, 3.2 family 7, code 5001).
CPR_HOLDINGS = Tally("cpr_holdings", ("party", "period"), key=_reserve_key)

#: AAUs a Party has issued for a period, wherever they are now and whatever they became
#: (ERUs converted from them count: conversion gives no issuance back), pending ones too
#: (protocol.md 3.4 "issuance limits", code 4001; ``check_aau_issuance_limit``).
AAUS_ISSUED = Tally(
    "aaus_issued", ("party", "period"),
    key=lambda d: (d["origin"], d["original_cp"]) if d["unit_type"] in _AAU_TYPES else None)

#: RMUs a Party has issued for a period and a LULUCF activity, ERUs converted from them
#: included, pending ones too (protocol.md 3.4, code 4001; ``check_rmu_issuance_limit``).
RMUS_ISSUED = Tally(
    "rmus_issued", ("party", "period", "activity"),
    key=lambda d: ((d["origin"], d["original_cp"], d.get("lulucf_activity"))
                   if d["unit_type"] in _RMU_TYPES else None))

#: Every figure the ITL keeps of its register (docs/adr/0023).
ITL_TALLIES = (HOLDINGS, CPR_HOLDINGS, AAUS_ISSUED, RMUS_ISSUED)


class ItlStore:
    """Repository over the ITL's database. Every write of a transaction, a Party's data,
    a JI project or a notice records itself in the audit trail (``audit``) in the same
    store transaction."""

    def __init__(self, db: Database, audit: AuditTrail | None = None) -> None:
        self.db = db
        know(db.transactions, guard=("status",))
        self.units = UnitBlockStore(db.units, ITL_TALLIES)
        self.audit = audit or AuditTrail(db, "ITL")
        #: Whether the store refuses a second outbox row with the ``seq`` of another of
        #: its correlation id (``ensure_indexes``): then the first message about a
        #: transaction id new to the ITL is given ``seq`` 0 without counting, and a
        #: wrong guess fails on the index instead of being stored.
        self.outbox_seq_unique = False

    async def ensure_indexes(self) -> None:
        """Create every index the ITL's queries use (idempotent), and the unique index of
        the outbox on (correlation id, ``seq``) (``outbox_seq_unique``)."""
        await self.units.ensure_indexes()
        self.outbox_seq_unique = await self._ensure_outbox_seq_unique()
        # walk the register of one registry (GET /units?registry=)
        await self.db.units.create_index(
            [("registry", ASCENDING), ("origin", ASCENDING), ("serial_start", ASCENDING)]
        )
        await self.db.transactions.create_index([("proposer", ASCENDING), ("status", ASCENDING)])
        await self.db.transactions.create_index([("created_at", DESCENDING)])
        # a Party's transactions that others proposed into its accounts (the SEF report)
        await self.db.transactions.create_index([("proposal.acquiring.registry", ASCENDING)])
        await self.db.transactions.create_index([("status", ASCENDING),
                                                 ("updated_at", ASCENDING)])
        await self.db.units.create_index([("unit_type", ASCENDING), ("expiry_date", ASCENDING)])
        await self.db.notices.create_index([("registry", ASCENDING), ("status", ASCENDING)])
        await self.db.esd_transfers.create_index([("state", ASCENDING)])

    async def _ensure_outbox_seq_unique(self) -> bool:
        """Make (correlation id, ``seq``) unique in the ITL's outbox; False, logged as an
        error, when rows stored before break it (then every first ``seq`` is counted)."""
        try:
            await self.db.outbox.create_index(
                [("correlation_id", ASCENDING), ("envelope.seq", ASCENDING)],
                unique=True, name=OUTBOX_SEQ_INDEX)
        except (DuplicateKeyError, OperationFailure) as exc:
            log_event(log, "outbox_seq_not_unique", logging.ERROR, error=str(exc))
            return False
        return True

    # transactions

    async def transaction(self, transaction_id: str, session: Session | None = None
                          ) -> Document | None:
        """The recorded transaction (None: unknown to the ITL); in a store transaction,
        as this process last committed it when it knows it (``find_known``,
        docs/adr/0046)."""
        return await find_known(self.db.transactions, transaction_id, session)

    async def insert_transaction(
        self,
        *,
        transaction_id: str,
        transaction_type: TransactionType,
        proposer: str,
        proposal: Document,
        statuses: list[TransactionStatus],
        evaluation_results: list[Document],
        at: datetime,
        session: Session,
        ledger: list[Document] | None = None,
        deadline: datetime | None = None,
    ) -> None:
        """Record a new transaction that went through ``statuses`` at ``at``; ``ledger``
        holds the Party counters its approval took up, to give back if it fails;
        ``deadline`` is when the registry it now waits for must have acted."""
        await self.db.transactions.insert_one(
            {
                "_id": transaction_id,
                "transaction_type": int(transaction_type),
                "proposer": proposer,
                "proposal": proposal,
                "status": int(statuses[-1]),
                "history": [{"status": int(s), "at": at} for s in statuses],
                "evaluation_results": evaluation_results,
                "ledger": ledger or [],
                "deadline": deadline,
                "created_at": at,
                "updated_at": at,
            },
            session=session,
        )
        after_commit(session, statuses_entered(s.name for s in statuses))
        await self.audit.record(
            session, "proposal_checked", transaction_id=transaction_id,
            accounts=side_keys(proposal.get("transferring"), proposal.get("acquiring")),
            notice_id=proposal.get("notification_id"),
            details={"transaction_type": int(transaction_type), "proposer": proposer,
                     "statuses": [s.name for s in statuses],
                     "response_codes": [r.get("response_code") for r in evaluation_results]})

    async def set_status(
        self,
        transaction_id: str,
        status: TransactionStatus,
        at: datetime,
        session: Session,
        evaluation_results: list[Document] | None = None,
        deadline: datetime | None = None,
        tx: Document | None = None,
    ) -> None:
        """Move a transaction to ``status`` and append it to its history; ``deadline``:
        when the registry it now waits for must have acted. ``tx``: the transaction as
        read in this store transaction, whose accounts the audit record names (they
        never change once it is stored; read again when not given)."""
        fields: Document = {"status": int(status), "updated_at": at}
        if evaluation_results is not None:
            fields["evaluation_results"] = evaluation_results
        if deadline is not None:
            fields["deadline"] = deadline
        await self.db.transactions.update_one(
            {"_id": transaction_id},
            {"$set": fields, "$push": {"history": {"status": int(status), "at": at}}},
            session=session,
        )
        after_commit(session, statuses_entered([status.name]))
        if tx is None:
            tx = await self.db.transactions.find_one(
                {"_id": transaction_id}, {"proposal.transferring": 1, "proposal.acquiring": 1},
                session=session) or {}
        proposal = tx.get("proposal") or {}
        await self.audit.record(
            session, "transaction_status_changed", transaction_id=transaction_id,
            accounts=side_keys(proposal.get("transferring"), proposal.get("acquiring")),
            details={"status": int(status), "status_name": status.name,
                     "response_codes": [r.get("response_code")
                                        for r in evaluation_results or []]})

    async def transactions(
        self, proposer: str | None, status: int | None, limit: int
    ) -> list[Document]:
        """Transactions, newest first, optionally of one proposer and in one status."""
        query: Document = {}
        if proposer is not None:
            query["proposer"] = proposer
        if status is not None:
            query["status"] = status
        cursor = self.db.transactions.find(query).sort("created_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    # Parties

    async def party_books(self, party: str, session: Session | None = None) -> PartyBooks:
        """A Party's standing, period records and counters, in one read."""
        doc = await self.db.parties.find_one({"_id": party}, session=session) or {}
        return _party_books(party, doc)

    async def parties_books(self, parties: Iterable[str], session: Session | None = None
                            ) -> dict[str, PartyBooks]:
        """The books of each of ``parties`` (``party_books``), in one read."""
        wanted = sorted(set(parties))
        if not wanted:
            return {}
        docs = {doc["_id"]: doc for doc in await self.db.parties.find(
            {"_id": {"$in": wanted}}, session=session).to_list()}
        return {party: _party_books(party, docs.get(party, {})) for party in wanted}

    async def party_period(self, party: str, period: int, session: Session | None = None
                           ) -> PartyPeriod | None:
        return (await self.party_books(party, session)).periods.get(period)

    async def record_party_period(self, record: PartyPeriod, at: datetime,
                                  session: Session) -> None:
        """Record (or replace) what is known of a Party for a period; its counters stay."""
        key = f"periods.{record.commitment_period}"
        fields = {
            "assigned_amount": record.assigned_amount,
            "reviewed_inventory": record.reviewed_inventory,
            "average_emissions_2008_2010": record.average_emissions_2008_2010,
            "base_year_emissions": record.base_year_emissions,
            "period_emissions": record.period_emissions,
            "rmu_net_removals": {str(k): v for k, v in record.rmu_net_removals.items()},
            "forest_management_cap": record.forest_management_cap,
            "updated_at": at,
        }
        await self.db.parties.update_one(
            {"_id": record.party}, {"$set": {f"{key}.{k}": v for k, v in fields.items()}},
            upsert=True, session=session)
        await self.audit.record(session, "party_period_recorded",
                                details={"party": record.party,
                                         "commitment_period": record.commitment_period,
                                         **fields})

    async def record_standing(self, standing: PartyStanding, at: datetime,
                              session: Session) -> None:
        """Set a Party's commitment periods and mechanism eligibility."""
        fields = {"commitment_periods": sorted(standing.commitment_periods),
                  "eligible": sorted(m.value for m in standing.eligible), "updated_at": at}
        await self.db.parties.update_one(
            {"_id": standing.code}, {"$set": {"standing": fields}}, upsert=True,
            session=session)
        await self.audit.record(session, "party_standing_recorded",
                                details={"party": standing.code, **fields})

    async def apply_ledger(self, entries: Iterable[LedgerEntry], session: Session) -> None:
        """Add each entry to its Party's counter (negative entries undo)."""
        for entry in entries:
            await self.db.parties.update_one(
                {"_id": entry.party},
                {"$inc": {f"periods.{entry.period}.ledger.{entry.key.value}": entry.quantity}},
                upsert=True, session=session)

    # the register

    async def cpr_holdings(self, party: str, period: int, session: Session | None = None) -> int:
        """Units of ``party`` counted for its reserve in ``period`` (``CPR_HOLDINGS``): in
        circulation, not being issued, not already reserved by an open external transfer.
        A maintained summary: one lookup whatever the size of the register."""
        return await self.units.tally(CPR_HOLDINGS, (party, period), session)

    async def aaus_issued(self, party: str, period: int, session: Session | None = None) -> int:
        """AAUs ``party`` has issued for ``period``, wherever they are now and whatever they
        became (ERUs converted from them count: conversion gives no issuance back),
        pending ones too (``AAUS_ISSUED``, a maintained summary)."""
        return await self.units.tally(AAUS_ISSUED, (party, period), session)

    async def rmus_issued(self, party: str, period: int, activity: int,
                          session: Session | None = None) -> int:
        """RMUs ``party`` has issued for ``period`` and a LULUCF activity, ERUs converted
        from them included, pending ones too (``RMUS_ISSUED``, a maintained summary)."""
        return await self.units.tally(RMUS_ISSUED, (party, period, activity), session)

    # JI projects (track 2 determinations of the JISC)

    async def ji_project(self, project_id: str, session: Session | None = None
                         ) -> JiProject | None:
        doc = await self.db.ji_projects.find_one({"_id": project_id}, session=session)
        if doc is None:
            return None
        return JiProject(doc["_id"], doc["host_party"], doc["track"],
                         doc["approved_quantity"], doc.get("converted", 0))

    async def record_ji_project(self, project: JiProject, session: Session) -> None:
        fields = {"host_party": project.host_party, "track": project.track,
                  "approved_quantity": project.approved_quantity}
        await self.db.ji_projects.update_one(
            {"_id": project.project_id},
            {"$set": fields, "$setOnInsert": {"converted": 0}},
            upsert=True, session=session,
        )
        await self.audit.record(session, "ji_project_recorded",
                                details={"project_id": project.project_id, **fields})

    async def add_converted(self, project_id: str, quantity: int, session: Session) -> None:
        await self.db.ji_projects.update_one(
            {"_id": project_id}, {"$inc": {"converted": quantity}}, upsert=True,
            session=session)

    # notices

    async def insert_notice(self, doc: Document, session: Session) -> Document:
        doc = {**doc, "_id": await next_sequence(self.db, "notice", session)}
        await self.db.notices.insert_one(doc, session=session)
        await self.audit.record(session, "notice_issued", notice_id=doc["_id"],
                                details={k: v for k, v in doc.items() if k != "_id"})
        return doc

    async def notice(self, notice_id: int, session: Session | None = None) -> Document | None:
        return await self.db.notices.find_one({"_id": notice_id}, session=session)

    async def notices(self, registry: str | None, status: int | None) -> list[Document]:
        query: Document = {}
        if registry is not None:
            query["registry"] = registry
        if status is not None:
            query["status"] = status
        return await self.db.notices.find(query).sort("_id", DESCENDING).to_list()

    async def update_notice(self, notice_id: int, fields: Document, session: Session,
                            transaction_id: str | None = None,
                            inc: Document | None = None) -> None:
        """Set ``fields`` (and add ``inc`` to counters) of a notice; ``transaction_id``
        joins the transactions that fulfilled it."""
        update: Document = {"$set": fields}
        if transaction_id:
            update["$push"] = {"transactions": transaction_id}
        if inc:
            update["$inc"] = inc
        await self.db.notices.update_one({"_id": notice_id}, update, session=session)
        await self.audit.record(session, "notice_updated", notice_id=notice_id,
                                transaction_id=transaction_id,
                                details={**fields, **({"inc": inc} if inc else {})})

    async def expiring_unnoticed(self, before: date) -> list[Document]:
        """tCER and lCER blocks that a national registry used (retired or cancelled, so
        they owe a replacement), that expire by ``before`` and have neither been replaced
        nor named in a notice of impending expiry. Unused ones simply expire.

        Due work of every tick (``notify_impending_expiry``), so it reads only tCER and
        lCER blocks expiring by ``before``: per unit type an equality and one range on the
        index ``(unit_type, expiry_date)``, the only shape SecantusDB serves from that
        index (a filter naming more fields scans the whole register, every second: docs/
        adr/0025); the other conditions are checked here."""
        found = []
        for unit_type in (UnitType.TCER, UnitType.LCER):
            found += await self.units.held(
                {"unit_type": int(unit_type), "expiry_date": {"$lte": before.isoformat()}})
        due = [d for d in found
               if d.get("expiry_date") is not None and d["registry"] != "CDM"
               and d["account_type"] in _OUT_OF_CIRCULATION
               and d.get("replaced_by") is None and d.get("expiry_notice") is None
               and not d.get("issuing")]
        return sorted(due, key=lambda d: (d["origin"], d["serial_start"]))

    async def mark_expiry_noticed(self, ids: list[Any], notice_id: int,
                                  session: Session) -> None:
        await self.units.mark_expiry_noticed(ids, notice_id, session)

    # time-outs

    async def waiting(self) -> list[Document]:
        """Transactions that wait for a registry: approved (2) or accepted (8)."""
        cursor = self.db.transactions.find({"status": {"$in": [
            int(TransactionStatus.CHECKED_NO_DISCREPANCY), int(TransactionStatus.ACCEPTED)]}})
        return await cursor.to_list()

    async def forwarded_allowance_transfers(self) -> list[Document]:
        """Allowance transfers forwarded to the acquiring state and not answered yet."""
        return await self.db.esd_transfers.find({"state": "forwarded"}).to_list()

    # message journal

    async def messages(self, correlation_id: str) -> list[tuple[str, datetime, Document]]:
        """(direction, at, row) of every message received or sent for one transaction."""
        received = await self.db.inbox.find({"correlation_id": correlation_id}).to_list()
        sent = await self.db.outbox.find({"correlation_id": correlation_id}).to_list()
        rows: list[tuple[str, datetime, Document]] = [
            ("in", row["received_at"], row) for row in received
        ]
        rows += [("out", _sent_at(row), row) for row in sent]
        return sorted(rows, key=lambda r: (r[1], r[0] == "out"))


def _party_period(party: str, period: int, entry: Document) -> PartyPeriod:
    return PartyPeriod(
        party, period, entry["assigned_amount"], entry.get("reviewed_inventory"),
        entry.get("average_emissions_2008_2010"), entry.get("base_year_emissions"),
        entry.get("period_emissions"),
        {int(k): v for k, v in (entry.get("rmu_net_removals") or {}).items()},
        entry.get("forest_management_cap"))


def _standing(party: str, stored: Document | None) -> PartyStanding:
    """The stored standing of a Party, else the reference data's."""
    reference = reference_standing(party)
    if stored is None:
        return reference
    return PartyStanding(party, reference.name, frozenset(stored["commitment_periods"]),
                         frozenset(Mechanism(m) for m in stored["eligible"]))


def _sent_at(row: Document) -> datetime:
    at: Any = row["envelope"]["sent_at"]
    return datetime.fromisoformat(at) if isinstance(at, str) else at


def _party_books(party: str, doc: Document) -> PartyBooks:
    """A Party's books from its document (empty when it has none)."""
    periods: dict[int, PartyPeriod] = {}
    ledgers: dict[int, dict[str, int]] = {}
    for key, entry in doc.get("periods", {}).items():
        ledgers[int(key)] = entry.get("ledger", {})
        if "assigned_amount" in entry:
            periods[int(key)] = _party_period(party, int(key), entry)
    return PartyBooks(_standing(party, doc.get("standing")), periods, ledgers)
